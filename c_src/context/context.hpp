// A context: one OS thread that owns a Python thread state (on the main interpreter in
// `worker` mode; on an OWN_GIL subinterpreter it creates and ends itself in `owngil` mode),
// a request queue, and the context's shared namespace.
// Created and stopped from scheduler threads; Python is touched only on the worker thread.
// The worker thread holds a reference to the context's resource until it exits, so the
// context's memory outlives a worker stuck in Python.
#pragma once

#include <erl_nif.h>
#include <pthread.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "aio/poller.hpp"
#include "bridge/host.hpp"
#include "context/interrupter.hpp"
#include "context/name_cache.hpp"
#include "context/namespace.hpp"
#include "context/priority_governor.hpp"
#include "context/request_queue.hpp"
#include "erl/env.hpp"
#include "erl/resource.hpp"
#include "py/interpreter.hpp"
#include "py/subinterpreter.hpp"

namespace bridge {
struct ErlangTypes;
}

namespace context {

enum class Mode { Worker, OwnGil };

// The OS scheduling class of a context's thread (app env thread_priority, docs/contexts.md).
// Normal shares the CPU fairly with the BEAM's schedulers; Batch (SCHED_BATCH) gives Python
// more of it and wakes the BEAM later; Low is nice 10 below the BEAM; Idle (SCHED_IDLE) runs
// only when nothing else wants the CPU, so a busy node starves it; Auto is Idle until the
// thread is starved, then Normal until it is not (context/priority_governor.hpp).
enum class ThreadPriority { Normal, Low, Idle, Batch, Auto };

class Context final : public bridge::Host {
public:
    Context(Mode mode, ThreadPriority priority);
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() = default;

    // Scheduler thread, once, right after construction. Starts the worker thread, which keeps
    // the resource alive while it runs. Returns false if the thread could not be created.
    bool start();

    // Any thread. False when the context is stopping or stopped.
    RequestQueue::Pushed submit(RequestPtr request) { return queue_.push(std::move(request)); }

    // Any thread, non-blocking. The worker replies {error, context_stopped} to queued
    // requests, releases its Python state (ending its interpreter in owngil mode) and exits;
    // then, if notify is set, it sends {py_context_exited, Tag, Status} to notify, Status being
    // ok or {error, Reason}.
    void stop(const ErlNifPid* notify, ERL_NIF_TERM tag);

    // Scheduler thread, once, before start(): the owner's monitor (see on_down).
    void set_owner(const ErlNifPid& pid, const ErlNifMonitor& mon) {
        owner_pid_ = pid;
        owner_mon_ = mon;
    }

    // Resource `down` hook, any thread, never blocks: the owner died (the context stops) or a
    // process that was to run a callback died (the callback is answered with an abort).
    void on_down(const ErlNifMonitor* mon);

    // Any thread: delivers the result of callback `id` ({ok, V} | {error, {Class, Reason}} |
    // unknown_function) to the worker waiting for it. False when the context has stopped.
    bool push_callback_reply(uint64_t id, ERL_NIF_TERM result);
    // Any thread: tells the worker waiting for callback `id` that no answer will come.
    void push_callback_abort(uint64_t id);

    // Any thread: makes the worker look at event-loop readiness (see aio::Poller).
    void wake() { queue_.wake(); }

    // Any thread, never blocks: req was cancelled while its code ran; stop that code (see
    // context/interrupter.hpp).
    void interrupt(RequestPtr req);
    // Any thread, never blocks: a request whose result a task of the hosted loop produces was
    // cancelled; the next step cancels such tasks.
    void cancel_abandoned_tasks() {
        tasks_abandoned_.store(true, std::memory_order_release);
        queue_.wake();
    }

    // bridge::Host: what the `erlang` Python module asks of the context running this thread.
    PyObject* call_erlang(PyObject* name, PyObject* args) override;
    PyObject* send(PyObject* pid, PyObject* message) override;
    PyObject* self_pid() override;
    aio::PollerPtr make_poller() override;
    bool wait_poller(aio::Poller& poller, double timeout) override;
    void set_hosted_loop(PyObject* loop, aio::Poller* poller) override;

private:
    static void* thread_main(void* self);
    static void* interrupter_main(void* self);
    void run();
    bool attach_thread();
    void detach_thread();
    void serve();
    bool next_batch(std::vector<RequestPtr>& batch);
    void handle(RequestPtr& request);
    enum class WaitEnd { Done, TimedOut, Stopped };
    template <class Done>
    WaitEnd serve_nested(Done done, RequestQueue::Clock::time_point deadline);
    RequestPtr wait_callback_reply(uint64_t id);
    bool is_reentrant(const Request& request) const;
    bool refill_backlog(RequestQueue::Clock::time_point deadline);
    bool hosted_due() const;
    void step_hosted();
    void run_due_hosted_steps();
    void shutdown_hosted_loop();
    PyObject* callback_result(Request& reply, PyObject* name);
    void push_running(Request* req);
    void pop_running();
    bool running_cancelled() const;
    static void reply_stopped(std::vector<RequestPtr>& batch, ErlNifEnv* msg_env);
    void notify_exit();
    bool join_python_threads();
    void release_thread_state();
    void forget_owngil_owner();

    const Mode mode_;
    const ThreadPriority priority_;
    RequestQueue queue_;
    pthread_t thread_{};
    Interrupter interrupter_{queue_};

    // Worker-thread state (touched only by the worker thread after start()).
    PyThreadState* tstate_ = nullptr;
    GovernedThread* governed_ = nullptr;  // thread_priority auto only
    py::OwnGilInterpreter owngil_;        // owngil mode only
    std::string exit_error_;              // why the worker could not start or end cleanly
    py::InterpreterPtr interp_;
    const bridge::ErlangTypes* types_ = nullptr;
    Namespace shared_ns_{this};
    PyObject* code_cache_ = nullptr;  // see WorkerScope::code_cache
    NameCache names_;                 // see WorkerScope::names

    // Worker-thread state of nested requests: a request that waits for an Erlang callback
    // serves the queue meanwhile (re-entrant calls run on top of it).
    std::vector<Request*> running_;                           // innermost last
    std::deque<RequestPtr> backlog_;                          // taken from the queue, not yet run
    std::unordered_map<uint64_t, RequestPtr> early_replies_;  // replies for outer callbacks
    std::vector<std::unique_ptr<erl::OwnedEnv>> msg_envs_;    // one reply env per nesting depth
    uint64_t next_callback_id_ = 0;

    // Worker-thread state of the context's hosted event loop (py:async_call and friends): an
    // ErlangEventLoop stepped by serve() when one of its descriptors is ready, its next timer
    // is due or new work was scheduled on it. While a step runs, running_ holds a nullptr
    // (no request to call back for).
    PyObject* hosted_loop_ = nullptr;
    aio::PollerPtr hosted_poller_;
    RequestQueue::Clock::time_point hosted_deadline_ = RequestQueue::Clock::time_point::max();
    bool in_hosted_step_ = false;
    std::atomic<bool> tasks_abandoned_{false};  // see cancel_abandoned_tasks

    ErlNifMonitor owner_mon_{};
    ErlNifPid owner_pid_{};  // receives enif_select notifications (py_context relays them)
    std::mutex callbacks_mutex_;
    struct PendingCallback {
        ErlNifMonitor mon;
        uint64_t id;
    };
    std::vector<PendingCallback> pending_callbacks_;  // guarded by callbacks_mutex_

    std::mutex exit_mutex_;
    bool notify_set_ = false;      // guarded by exit_mutex_
    ErlNifPid notify_pid_{};       // guarded by exit_mutex_
    erl::OwnedEnv notify_env_;     // guarded by exit_mutex_
    ERL_NIF_TERM notify_tag_ = 0;  // guarded by exit_mutex_
};

using ContextResource = erl::Resource<Context>;

// The main interpreter shared by every worker-mode context; set once at load.
void set_main_interpreter(py::InterpreterPtr interp);
const py::Interpreter* main_interpreter_handle();

// ctx with a reference the caller must release, while its worker thread runs; nullptr once
// that thread has exited. Any thread.
Context* keep_if_running(Context* ctx);

// The context that owns an owngil interpreter, with a reference the caller must release, or
// nullptr when that interpreter has ended (or is the main one). Any thread.
Context* keep_owner_of(const py::Interpreter* interp);

}  // namespace context
