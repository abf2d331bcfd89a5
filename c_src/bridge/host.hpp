// What the `erlang` Python module needs from the context running the current thread.
// The one piece of per-thread state in the NIF: a context's worker thread registers itself
// here while it serves requests, so that Python code calling erlang.call() finds its context.
#pragma once

#include <Python.h>

#include "py/interpreter.hpp"
#include "py/serial.hpp"

namespace bridge {

class Host {
public:
    // Any thread: the host's identity, never reused (an object made for one context compares
    // it, never the host's address).
    virtual py::Serial serial() const = 0;

    // Precondition for the others: on the host's worker thread, attached. Each returns a new reference
    // or nullptr with a Python exception set.
    virtual PyObject* call_erlang(PyObject* name, PyObject* args) = 0;  // erlang.call
    virtual PyObject* send(PyObject* pid, PyObject* message) = 0;       // erlang.send
    virtual PyObject* self_pid() = 0;                                   // erlang.self

    // The event loop support a context also gives is aio::LoopHost (aio/loop_host.hpp).

protected:
    ~Host() = default;
};

// Registers the host of the calling thread (nullptr: none).
void set_current_host(Host* host);
// The host of the calling thread, or nullptr with a RuntimeError set.
Host* require_host();

// How a Python thread that is no context's (threading.Thread, ...) finds the interpreter it
// runs on, for erlang.call and erlang.send: set once at load by the context layer.
using InterpreterResolver = py::InterpreterPtr (*)(PyInterpreterState* state);
void set_interpreter_resolver(InterpreterResolver resolver);

}  // namespace bridge
