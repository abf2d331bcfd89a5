// The built-in `erlang` Python module (multi-phase init, one instance per interpreter) and the
// Python types that stand for Erlang terms with no Python equivalent.
#pragma once

#include <Python.h>
#include <erl_nif.h>

namespace bridge {

// Per-interpreter state of the `erlang` module.
struct ErlangTypes {
    PyTypeObject* pid = nullptr;   // erlang.Pid: a local process identifier
    PyTypeObject* term = nullptr;  // erlang.Term: any other term, kept in external format
};

// PyInit function registered with PyImport_AppendInittab.
PyObject* init_erlang_module();

// Imports `erlang` in the current interpreter and returns its types (valid while the
// interpreter lives). Precondition: attached. Returns nullptr with an exception set on failure.
const ErlangTypes* erlang_types_for_current_interpreter();

// erlang.Pid <-> ErlNifPid. Precondition: attached.
PyObject* make_pid(const ErlangTypes& types, const ErlNifPid& pid);
bool get_pid(const ErlangTypes& types, PyObject* obj, ErlNifPid* out);

// erlang.Term holds a term's external format (bytes). Precondition: attached.
PyObject* make_term(const ErlangTypes& types, const unsigned char* etf, size_t size);
// Borrowed bytes object of an erlang.Term, or nullptr when obj is not one.
PyObject* term_bytes(const ErlangTypes& types, PyObject* obj);

}  // namespace bridge
