// What the `erlang` Python module needs from the context running the current thread.
// The one piece of per-thread state in the NIF: a context's worker thread registers itself
// here while it serves requests, so that Python code calling erlang.call() finds its context.
#pragma once

#include <Python.h>

namespace bridge {

class Host {
public:
    // Precondition for all: on the host's worker thread, attached. Each returns a new reference
    // or nullptr with a Python exception set.
    virtual PyObject* call_erlang(PyObject* name, PyObject* args) = 0;  // erlang.call
    virtual PyObject* send(PyObject* pid, PyObject* message) = 0;       // erlang.send
    virtual PyObject* self_pid() = 0;                                     // erlang.self

protected:
    ~Host() = default;
};

// Registers the host of the calling thread (nullptr: none).
void set_current_host(Host* host);

}  // namespace bridge
