// The term codec of an isolated context's child (priv/py_child): the built-in module _erlang_etf
// that priv/_erlang_isolated.py decodes requests and encodes replies with. The conversion rules
// are docs/contexts.md's (isolated section): a binary becomes str when it is UTF-8, else bytes;
// {bytes, Binary} becomes bytes; true/false/none/undefined/nil become True/False/None, other
// atoms str; pids, references, ports and funs become opaque objects that encode back to the
// same term.
//
// Thread: the child's main thread, attached to its only interpreter (Python calls these).
#pragma once

#include <Python.h>

namespace etf {

// What the codec makes and recognises (set by _erlang_etf.setup(Atom, Pid, Term, wrap, resolve)):
// Atom, a str subclass encoded as an atom; Pid and Term, opaque terms holding their encoding
// in the attribute _ext; wrap(obj), called for a value with no Erlang form, keeps it and
// returns its id, encoded as {'$py_isolated_object', Id}; resolve(id) gives back the object
// that term names. Strong references, held for the life of the process.
struct Classes {
    PyObject* atom = nullptr;
    PyObject* pid = nullptr;
    PyObject* term = nullptr;
    PyObject* wrap = nullptr;
    PyObject* resolve = nullptr;
};

// The atom that tags an object reference on the wire: {'$py_isolated_object', Id}.
constexpr const char* kObjectTag = "$py_isolated_object";

Classes& classes();

// The term encoded in data[0, size) (after the version byte), or nullptr with a Python
// exception (ValueError for a truncated or malformed term, TypeError for a term Python has no
// form for: an improper list, a bitstring).
PyObject* decode(const unsigned char* data, Py_ssize_t size);

// value encoded, with the version byte, as bytes; with a 4-byte big-endian length before it
// when framed (a {packet, 4} frame). nullptr with a Python exception (TypeError for a value
// with no Erlang form, UnicodeEncodeError for a lone surrogate, RecursionError when too deep).
PyObject* encode(PyObject* value, bool framed);

// Creates the _erlang_etf module; py_child registers it with PyImport_AppendInittab before
// Python starts.
PyObject* init_module();

}  // namespace etf
