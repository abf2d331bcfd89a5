// The built-in `erlang` Python module (multi-phase init, one instance per interpreter) and the
// Python types that stand for Erlang terms with no Python equivalent.
#pragma once

#include <Python.h>
#include <erl_nif.h>

namespace bridge {

// How many types upper layers may add (add_module_type).
inline constexpr size_t kMaxAddedTypes = 4;

// Per-interpreter state of the `erlang` module.
struct ErlangTypes {
    PyTypeObject* pid = nullptr;               // erlang.Pid: a local process identifier
    PyTypeObject* term = nullptr;              // erlang.Term: any other term (reference, port, fun, remote pid)
    PyObject* error = nullptr;                 // erlang.ErlangError: an Erlang exception raised in a callback
    PyObject* interrupted = nullptr;           // erlang.Interrupted: raised in code whose caller gave up
    PyTypeObject* buffer = nullptr;            // erlang.PyBuffer (bridge/buffer_object.hpp)
    PyTypeObject* sdict = nullptr;             // erlang.SharedDict (bridge/shared_dict_object.hpp)
    PyTypeObject* channel = nullptr;           // erlang.ChannelRef (bridge/channel_object.hpp)
    PyTypeObject* added[kMaxAddedTypes] = {};  // add_module_type's, in its order (erlang._Reply, erlang._Poller)
};

// A type that an upper layer (context/, aio/) adds to every `erlang` module, so that this layer
// does not include theirs. Precondition: at load, before the runtime starts (not thread-safe).
// False when the table (ErlangTypes::added) is full.
bool add_module_type(PyType_Spec* spec);
// The type made from spec in the module whose types are given (nullptr when spec was not added).
PyTypeObject* added_type(const ErlangTypes& types, const PyType_Spec* spec);

// PyInit function registered with PyImport_AppendInittab.
PyObject* init_erlang_module();

// Imports `erlang` in the current interpreter: a new reference to the module, or nullptr with
// an exception set. Precondition: attached. The caller keeps that reference for as long as it
// uses the module's types: user code may drop sys.modules['erlang'] and the module with it.
PyObject* import_erlang_module();
// The types in the state of a module import_erlang_module returned; valid while it is held.
const ErlangTypes* erlang_types_of(PyObject* module);

// erlang.Pid <-> ErlNifPid. Precondition: attached.
PyObject* make_pid(const ErlangTypes& types, const ErlNifPid& pid);
bool get_pid(const ErlangTypes& types, PyObject* obj, ErlNifPid* out);

// erlang.Term holds a copy of a term (in an environment of its own) and its external format
// etf (bytes, for equality and hashing). Precondition: attached.
PyObject* make_term(const ErlangTypes& types, const unsigned char* etf, size_t size, ERL_NIF_TERM term);
// When obj is an erlang.Term, copies its term into env and returns true. The term is copied,
// never decoded from its external format: decoding a map of more than 128 keys off a scheduler
// thread crashes OTP 25.1+ before the fix for erlang/otp#8208.
bool get_term(const ErlangTypes& types, PyObject* obj, ErlNifEnv* env, ERL_NIF_TERM* out);

}  // namespace bridge
