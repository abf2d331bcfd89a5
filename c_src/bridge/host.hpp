// What the `erlang` Python module needs from the context running the current thread.
// The one piece of per-thread state in the NIF: a context's worker thread registers itself
// here while it serves requests, so that Python code calling erlang.call() finds its context.
#pragma once

#include <Python.h>

#include "aio/poller.hpp"
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

    // Event loop support (priv/_erlang_loop.py). make_poller: a new poller bound to this
    // context (empty with a Python exception set on failure). wait_poller: serves the
    // context's other work until the poller has events or timeout seconds pass (< 0: no
    // limit); false with an exception set when the context is stopping. set_hosted_loop: the
    // loop the context steps between requests (nullptr: none); takes a reference to loop.
    virtual aio::PollerPtr make_poller() = 0;
    virtual bool wait_poller(aio::Poller& poller, double timeout) = 0;
    virtual void set_hosted_loop(PyObject* loop, aio::Poller* poller) = 0;

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
