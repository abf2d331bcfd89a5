// Reads the Python stack of a context thread while its code runs, without stopping it
// (py_context:backtrace/1 and slow-request warnings).
//
// Like the Interrupter, a thread of its own, started when an ask arrives and gone when none is
// left (at most one per context), attaches to the context's interpreter (waiting for its GIL,
// which running code hands over within the switch interval, 5 ms; code that keeps the GIL in C
// delays the answer, never a scheduler) and walks the frames of the context thread's state.
// Each accepted ask is answered once with {py_backtrace, Tag, Result} sent to the asking process:
//   plain ask:        idle | [Frame]
//   ask about a request: finished | {running, [Frame]} (it is the innermost code running) |
//                     {not_running, idle | [Frame]} (still queued, or under a nested request)
//   the context stopped meanwhile: {error, context_stopped}
// Frame: #{file => binary(), line => integer(), function => binary()}, innermost first.
//
// Preconditions: bind() on the context thread, attached; add() from any thread, never blocks;
// run() on the probe thread only; close() on the context thread, not attached, before its
// interpreter ends.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "context/interrupter.hpp"
#include "context/request.hpp"
#include "erl/env.hpp"

namespace context {

class StackProbe {
public:
    explicit StackProbe(const Interrupter& running) : running_(running) {}
    StackProbe(const StackProbe&) = delete;
    StackProbe& operator=(const StackProbe&) = delete;
    ~StackProbe() = default;

    // The context thread's state, on the interpreter whose GIL the probe takes.
    void bind(PyThreadState* tstate);

    // Asks for the stack; the answer goes to `to` with `tag`. `about`: a request to compare
    // with the running one (may be empty). Start: the caller must start the probe thread (which
    // then calls run()); Queued: one runs already; Refused: the context is closing or never
    // started (nothing will be sent).
    enum class Added { Start, Queued, Refused };
    Added add(const ErlNifPid& to, ERL_NIF_TERM tag, RequestPtr about);
    // The probe thread could not be created: answers every ask with an error. caller_env: the
    // environment of the calling NIF (enif_send needs it on a scheduler thread).
    void thread_failed(ErlNifEnv* caller_env);

    // The probe thread's body: returns when no ask is left.
    void run();

    // Waits for the probe thread to finish, then answers further asks with an error.
    void close();

private:
    struct Ask {
        ErlNifPid to;
        erl::OwnedEnv env;
        ERL_NIF_TERM tag;
        RequestPtr about;
    };
    void answer_all(std::vector<Ask>& asks);
    static void answer_stopped(std::vector<Ask>& asks, ErlNifEnv* caller_env);

    const Interrupter& running_;
    PyThreadState* tstate_ = nullptr;  // set by bind(), before any request runs
    PyInterpreterState* interp_ = nullptr;

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Ask> asks_;        // guarded by mutex_
    bool thread_running_ = false;  // guarded by mutex_
    bool closing_ = false;         // guarded by mutex_
};

}  // namespace context
