// The node's contexts by identity: the main interpreter, the contexts whose worker thread runs
// (by context serial) and the owngil interpreters' owners (by interpreter serial). A row holds
// no reference; a lookup returns the context with one the caller releases. Any thread (the
// registry's own locks); the rows are written by each context's worker thread.
#pragma once

#include <Python.h>

#include "py/interpreter.hpp"
#include "py/serial.hpp"

namespace context {

class Context;

// The main interpreter shared by every worker-mode context; set once at load.
void set_main_interpreter(py::InterpreterPtr interp);
const py::Interpreter* main_interpreter_handle();
const py::InterpreterPtr& main_interpreter_ptr();

// A context's worker thread runs (true, on entry) or is about to exit (false).
void register_running(Context* ctx, bool running);
// ctx owns the owngil interpreter with this serial (until forget_owner).
void register_owner(py::Serial interpreter, Context* ctx);
void forget_owner(py::Serial interpreter);

// The interpreter behind a state: the main one or a live owngil context's; empty when none
// (an ended interpreter). Registered with bridge::set_interpreter_resolver.
py::InterpreterPtr interpreter_of(PyInterpreterState* state);

// The context with this serial, with a reference the caller must release, while its worker
// thread runs; nullptr once that thread has exited.
Context* keep_if_running(py::Serial ctx);

// The context that owns the owngil interpreter with this serial, with a reference the caller
// must release, or nullptr when that interpreter has ended (or is the main one).
Context* keep_owner_of(py::Serial interpreter);

}  // namespace context
