// What a poller object (aio/poller_object.hpp) needs from the context running the current
// thread: the seam that lets aio/ serve a context without including context/.
#pragma once

#include <Python.h>

#include "aio/poller.hpp"
#include "py/serial.hpp"

namespace aio {

class LoopHost {
public:
    // Any thread: the host's identity, never reused (a poller made for one context compares
    // it, never the host's address).
    virtual py::Serial serial() const = 0;

    // Precondition for the others: on the host's worker thread, attached.
    // Event loop support (priv/_erlang_loop.py). make_poller: a new poller bound to this
    // context (empty with a Python exception set on failure). wait_poller: serves the
    // context's other work until the poller has events or timeout seconds pass (< 0: no
    // limit); false with an exception set when the context is stopping. set_hosted_loop: the
    // loop the context steps between requests (nullptr: none); takes a reference to loop.
    virtual PollerPtr make_poller() = 0;
    virtual bool wait_poller(Poller& poller, double timeout) = 0;
    virtual void set_hosted_loop(PyObject* loop, Poller* poller) = 0;

protected:
    ~LoopHost() = default;
};

// Registers the loop host of the calling thread (nullptr: none). Any thread, for itself.
void set_current_loop_host(LoopHost* host);
// The loop host of the calling thread, or nullptr with a RuntimeError set. Precondition: attached.
LoopHost* require_loop_host();

}  // namespace aio
