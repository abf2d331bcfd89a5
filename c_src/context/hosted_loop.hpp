// The context's own event loop (py:async_call, py_event_loop's *_on functions, worker loops):
// an ErlangEventLoop that the context's worker thread steps between requests when one of its
// descriptors is ready, its next timer is due or new work was scheduled on it.
#pragma once

#include <Python.h>

#include <atomic>
#include <chrono>

#include "aio/poller.hpp"
#include "context/request_queue.hpp"

namespace context {

// A span of seconds (a Python float) as the request queue's clock duration.
inline RequestQueue::Clock::duration from_seconds(double seconds) {
    return std::chrono::duration_cast<RequestQueue::Clock::duration>(std::chrono::duration<double>(seconds));
}

// Precondition: worker thread of its context, attached, except request_cancel_abandoned (any
// thread). The loop must be shut down (or set to none) before the object goes.
class HostedLoop {
public:
    using Clock = RequestQueue::Clock;

    bool active() const { return loop_ != nullptr; }
    // The loop to step (nullptr: none); takes a reference to loop. The first step is due at once.
    void set(PyObject* loop, aio::Poller* poller);
    // Whether a step is due now (never while one runs).
    bool due() const;
    // When the worker's wait must end for the next step: max() with no loop or during a step.
    Clock::time_point wait_deadline() const { return active() && !in_step_ ? deadline_ : Clock::time_point::max(); }
    // active(): runs one iteration; it returns when its next step is due (None: only on I/O or
    // new work; else a loop.time() value). Errors are reported as unraisable.
    void step();
    // active(): cancels the loop's tasks (their callers get an error reply) and closes it.
    void shutdown();
    // Any thread, never blocks: a task whose caller gave up is cancelled at the next step (the
    // caller then wakes the worker).
    void request_cancel_abandoned() { tasks_abandoned_.store(true, std::memory_order_release); }

private:
    PyObject* loop_ = nullptr;
    aio::PollerPtr poller_;
    Clock::time_point deadline_ = Clock::time_point::max();
    bool in_step_ = false;
    std::atomic<bool> tasks_abandoned_{false};
};

}  // namespace context
