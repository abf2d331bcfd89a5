// Term <-> object conversion, bounded in depth. See docs/type-conversion.md for the mapping.
// Precondition for every function: the calling thread is attached to cv.interp.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include "bridge/erlang_module.hpp"
#include "py/interpreter.hpp"

namespace bridge {

// Nesting deeper than this (lists, tuples, maps, dicts) is refused with RecursionError.
inline constexpr int kMaxDepth = 10000;

struct Converter {
    const ErlangTypes& types;
    const py::InterpreterPtr& interp;
};

// A new reference, or nullptr with a Python exception set.
PyObject* to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM term);

// Builds the term in env. Returns false with a Python exception set on failure.
bool to_erlang(const Converter& cv, ErlNifEnv* env, PyObject* obj, ERL_NIF_TERM* out);

// A Python str for an atom, binary or charlist naming something (module, attribute, key).
// nullptr with a Python exception set when the term is none of those.
PyObject* name_to_python(ErlNifEnv* env, ERL_NIF_TERM term);

}  // namespace bridge
