// The embedded CPython runtime: loaded and initialised once per OS process, never finalised.
#pragma once

#include <Python.h>

#include <string>

namespace py {

// Loads libpython with RTLD_GLOBAL (extension modules in lib-dynload resolve their symbols
// against it), registers init_erlang as the built-in `erlang` module and initialises CPython with signal
// handlers off, adding priv_dir to sys.path. python_home, when not empty, is the prefix of the
// standard library (PyConfig.home); else it is found from the build's executable. Idempotent.
// Returns false with a reason on failure.
// Precondition: called from the NIF load callback (one thread at a time).
bool start_runtime(const std::string& priv_dir, PyObject* (*init_erlang)(), std::string& error,
                   const std::string& python_home = {});

// Whether start_runtime succeeded (any thread, after the load callback).
bool runtime_started();

// Adds priv_dir to the current interpreter's sys.path. Precondition: attached. False with a
// Python exception set on failure.
bool prepare_current_interpreter();

// The main interpreter; valid after start_runtime succeeded.
PyInterpreterState* main_interpreter();

// "3.13.0" etc.: the version of the running interpreter.
const char* runtime_version();

}  // namespace py
