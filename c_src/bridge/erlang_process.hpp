// Reaching Erlang processes from Python without a context: erlang.whereis, erlang.atom and
// erlang.send. They need no request, so they work on any Python thread of any interpreter.
// Precondition for all: the calling thread is attached (to cv.interp for send_message).
// Each returns a new reference, or nullptr with a Python exception set.
#pragma once

#include <Python.h>

#include "bridge/convert.hpp"

namespace bridge {

// erlang.whereis(name): the pid registered as name (a str, bytes, or an atom made by
// erlang.atom), or None. TypeError for any other name.
PyObject* whereis(const ErlangTypes& types, PyObject* name);

// erlang.atom(name): an erlang.Term holding the atom `name` (a Latin-1 str). An atom that does
// not exist yet is created while fewer than erl::kMaxCreatedAtoms were made from names
// (erl/terms.hpp); past that, ValueError.
PyObject* make_atom(const ErlangTypes& types, PyObject* name);

// erlang.send(target, message): target is an erlang.Pid or a registered name. Raises
// erlang.ProcessError when the target is not an alive local process or no process is
// registered under the name.
PyObject* send_message(const Converter& cv, PyObject* target, PyObject* message);

}  // namespace bridge
