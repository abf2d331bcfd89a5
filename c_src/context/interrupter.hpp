// Stops the Python code of a cancelled request (its call timed out, or its caller exited).
//
// A thread of its own, started when there is something to interrupt and gone when there is
// not (at most one per context), attaches to the context's interpreter (waiting for its GIL,
// which running code hands over within the switch interval, 5 ms) and, while the cancelled
// request is still the one whose code the context thread runs, raises erlang.Interrupted in
// that thread with PyThreadState_SetAsyncExc. The exception surfaces at the next bytecode
// boundary: code blocked in a system call (time.sleep, a socket read) or in C code that keeps
// the GIL is interrupted only when it comes back to the interpreter. Code that catches the
// exception and goes on is interrupted again every kResend. Code inside an import is
// interrupted when the import is over: an exception in the middle of one leaves a package
// half-initialised in sys.modules (`import asyncio` then fails in every later request).
//
// When the context stops (stop()), the same thread also ends what the context holds: until
// close(), every kResend it has the StopHandler answer the queued requests, then, attached, the
// requests the context thread has taken, and interrupts the code that runs.
//
// Preconditions: bind(), set_running() and settle() on the context thread, attached to its
// interpreter; add() and stop() from any thread, never block; run() on the interrupter thread
// only; close() on the context thread, not attached, before its interpreter ends.
#pragma once

#include <Python.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "context/request.hpp"
#include "context/request_queue.hpp"

namespace context {

// What a stopping context's interrupter thread has its context do (see Interrupter::stop).
class StopHandler {
public:
    // Not attached: answer every request still queued with {error, context_stopped}.
    virtual void answer_queued() = 0;
    // Attached to the context's interpreter: answer every request the context thread has taken
    // and not answered (running ones included) with {error, context_stopped}.
    virtual void answer_held() = 0;

protected:
    ~StopHandler() = default;
};

class Interrupter {
public:
    explicit Interrupter(RequestQueue& queue) : queue_(queue) {}
    Interrupter(const Interrupter&) = delete;
    Interrupter& operator=(const Interrupter&) = delete;
    ~Interrupter() = default;

    // Where interrupts go: the context thread's state (on the interpreter whose GIL the
    // interrupter takes), its thread id, the exception class.
    void bind(PyThreadState* tstate, unsigned long thread_id, PyObject* exception);

    // The request whose code the context thread runs now (nullptr: none, e.g. a loop step).
    void set_running(Request* req) { running_.store(req, std::memory_order_release); }
    Request* running() const { return running_.load(std::memory_order_acquire); }

    // req's code stopped running: an interrupt raised for it that has not surfaced yet is
    // discarded, so that it cannot hit the code of the next request.
    void settle(Request& req) const;

    // Asks for req's code to be interrupted. True when the caller must start the interrupter
    // thread (which then calls run()); false when one is running or the context is closing.
    bool add(RequestPtr req);
    // Asks for the code of the request running now (py:interrupt/1) to be interrupted: the
    // interrupter resolves "now" under the GIL, then treats it as add() does. Same return.
    bool add_running();

    // The context is stopping: from now on until close(), answer what it holds (handler) and
    // interrupt whatever request runs. True when the caller must start the interrupter thread.
    bool stop(StopHandler& handler);

    // The interrupter thread could not be created: forget what was asked.
    void thread_failed();

    // The interrupter thread's body: returns when nothing is left to interrupt.
    void run();

    // Waits for the interrupter thread to finish; add() refuses from now on.
    void close();

    // Any thread: how many interrupts were raised in the context thread so far.
    uint64_t raised() const { return raised_.load(std::memory_order_relaxed); }

private:
    struct Target {
        RequestPtr req;
        std::chrono::steady_clock::time_point next_try;
    };
    void interrupt_now(std::vector<Request*>& due, std::vector<bool>& sent, RequestPtr* running);
    void stop_now();
    bool drop_ended(std::unique_lock<std::mutex>& lock);
    void reschedule(const std::vector<Request*>& due, const std::vector<bool>& sent, RequestPtr running);

    RequestQueue& queue_;
    PyThreadState* tstate_ = nullptr;  // set by bind(), before any request runs
    PyInterpreterState* interp_ = nullptr;
    unsigned long thread_id_ = 0;
    PyObject* exception_ = nullptr;  // borrowed: the erlang module's state keeps it
    std::atomic<Request*> running_{nullptr};
    std::atomic<uint64_t> raised_{0};  // written by the interrupter thread

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Target> targets_;                      // guarded by mutex_
    bool thread_running_ = false;                      // guarded by mutex_
    bool interrupt_running_ = false;                   // guarded by mutex_: see add_running
    bool closing_ = false;                             // guarded by mutex_
    StopHandler* stopping_ = nullptr;                  // guarded by mutex_
    std::chrono::steady_clock::time_point next_stop_;  // guarded by mutex_
};

}  // namespace context
