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

#include "aio/loop_host.hpp"
#include "aio/poller.hpp"
#include "bridge/host.hpp"
#include "context/callback_table.hpp"
#include "context/hosted_loop.hpp"
#include "context/interrupter.hpp"
#include "context/name_cache.hpp"
#include "context/namespace.hpp"
#include "context/priority_governor.hpp"
#include "context/registry.hpp"
#include "context/request_queue.hpp"
#include "context/stack_probe.hpp"
#include "context/stats.hpp"
#include "erl/env.hpp"
#include "erl/resource.hpp"
#include "py/attached.hpp"
#include "py/interpreter.hpp"
#include "py/ref.hpp"
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

class Context final : public bridge::Host, public aio::LoopHost, private StopHandler {
public:
    Context(Mode mode, ThreadPriority priority);
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() = default;

    // Any thread: this context's identity, never reused (py/serial.hpp). Requests, namespaces
    // and pollers remember it instead of the context's address.
    py::Serial serial() const override { return serial_; }

    // Scheduler thread, once, right after construction. Starts the worker thread, which keeps
    // the resource alive while it runs. Returns false if the thread could not be created.
    bool start();

    // Any thread. False when the context is stopping or stopped.
    RequestQueue::Pushed submit(RequestPtr request) { return queue_.push(std::move(request)); }

    // Any thread, non-blocking. The worker answers queued requests with
    // {error, context_stopped}, releases its Python state (ending its interpreter in owngil
    // mode) and exits once the code it runs returns; then, if notify is set, it sends
    // {py_context_exited, Tag, Status} to notify, Status being ok or {error, Reason}.
    void stop(const ErlNifPid* notify, ERL_NIF_TERM tag);

    // Any thread, non-blocking, after stop() (py_context calls it when the worker has not exited
    // at once): every request not answered yet, queued or running, gets {error, context_stopped}
    // from the interrupter thread (even while the context thread is stuck), and the running code
    // is interrupted, again every 100 ms until the worker exits. An idle context never needs it,
    // so stopping one starts no thread.
    void stop_running_code() { begin_stop(); }

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

    // Precondition: worker thread, attached, req the StreamStart request whose code runs now.
    // Waits (serving other requests meanwhile) until req's window has room again. False when
    // req was cancelled or the context is stopping.
    bool wait_stream_room(Request& req);

    // Any thread: makes the worker look at event-loop readiness (see aio::Poller).
    void wake() { queue_.wake(); }

    // Any thread, never blocks: req was cancelled while its code ran; stop that code (see
    // context/interrupter.hpp).
    void interrupt(RequestPtr req);
    // Any thread, never blocks: interrupts the request whose code runs now (py:interrupt/1).
    // False when none runs (the context is idle or steps its event loop).
    bool interrupt_running();
    // Any thread, never blocks: a request whose result a task of the hosted loop produces was
    // cancelled; the next step cancels such tasks.
    void cancel_abandoned_tasks() {
        hosted_.request_cancel_abandoned();
        queue_.wake();
    }

    // The interpreter this context's thread runs on. Read by other threads only through
    // interpreter_of (under the owners' lock, after the worker set it).
    const py::InterpreterPtr& interpreter() const { return interp_; }
    // Any thread: what the context did (see context/stats.hpp); interrupts raised so far.
    ContextStats& stats() { return stats_; }
    uint64_t interrupts() const { return interrupter_.raised(); }
    Mode mode() const { return mode_; }
    // Scheduler thread (caller_env: the calling NIF's), never blocks: sends the Python stack of
    // the running code to `to` as {py_backtrace, Tag, Result} (see context/stack_probe.hpp).
    // False when the context has stopped (nothing will be sent).
    bool backtrace(ErlNifEnv* caller_env, const ErlNifPid& to, ERL_NIF_TERM tag, RequestPtr about);

    // bridge::Host: what the `erlang` Python module asks of the context running this thread.
    PyObject* call_erlang(PyObject* name, PyObject* args) override;
    PyObject* send(PyObject* target, PyObject* message) override;
    PyObject* self_pid() override;
    // aio::LoopHost: what a poller object (the hosted event loop) asks of it.
    aio::PollerPtr make_poller() override;
    bool wait_poller(aio::Poller& poller, double timeout) override;
    void set_hosted_loop(PyObject* loop, aio::Poller* poller) override;

private:
    static void* thread_main(void* self);
    static void* interrupter_main(void* self);
    void start_interrupter();
    static void* stack_probe_main(void* self);
    void run();
    bool attach_thread();
    void detach_thread();
    void serve();
    void serve_batch(std::vector<RequestPtr>& incoming, std::vector<RequestPtr>& one, ErlNifEnv* stop_env);
    bool next_batch(std::vector<RequestPtr>& batch);
    void handle(RequestPtr& request);
    void run_request(RequestPtr& request);
    void reply_internal_failure(Request& request, ERL_NIF_TERM reason);
    enum class WaitEnd { Done, TimedOut, Stopped };
    template <class Done>
    WaitEnd serve_nested(Done done, RequestQueue::Clock::time_point deadline);
    RequestPtr wait_callback_reply(uint64_t id);
    bool is_reentrant(const Request& request) const;
    bool refill_backlog(RequestQueue::Clock::time_point deadline);
    void step_hosted();
    void run_due_hosted_steps();
    PyObject* callback_result(Request& reply, PyObject* name);
    void push_running(Request* req);
    void pop_running();
    bool running_cancelled() const;
    void reply_stopped(std::vector<RequestPtr>& batch, ErlNifEnv* msg_env);
    void sample_memory();
    void begin_stop();
    void answer_queued() override;
    void answer_held() override;
    void notify_exit();
    bool join_python_threads(const py::Attached& attached);
    void release_thread_state(py::Attached attached);
    void forget_owngil_owner();

    const py::Serial serial_ = py::next_serial();
    const Mode mode_;
    const ThreadPriority priority_;
    RequestQueue queue_;
    pthread_t thread_{};
    Interrupter interrupter_{queue_};
    StackProbe stack_probe_{interrupter_};
    ContextStats stats_;

    // Worker-thread state (touched only by the worker thread after start()).
    PyThreadState* tstate_ = nullptr;
    GovernedThread* governed_ = nullptr;  // thread_priority auto only
    py::OwnGilInterpreter owngil_;        // owngil mode only
    std::string exit_error_;              // why the worker could not start or end cleanly
    py::InterpreterPtr interp_;
    PyObject* erlang_module_ = nullptr;  // held: types_ lives in its state
    const bridge::ErlangTypes* types_ = nullptr;
    Namespace shared_ns_{serial_};
    PyObject* code_cache_ = nullptr;    // see WorkerScope::code_cache
    NameCache names_;                   // see WorkerScope::names
    std::vector<py::Ref> after_reply_;  // see WorkerScope::after_reply

    // Worker-thread state of nested requests: a request that waits for an Erlang callback
    // serves the queue meanwhile (re-entrant calls run on top of it).
    std::vector<Request*> running_;  // innermost last
    // The requests a stopping context's interrupter answers (answer_held) are those of batch_,
    // backlog_ and running_: the worker changes them only while attached.
    std::vector<RequestPtr> batch_;                         // the requests serve() runs now
    std::deque<RequestPtr> backlog_;                        // taken from the queue, not yet run
    std::vector<std::unique_ptr<erl::OwnedEnv>> msg_envs_;  // one reply env per nesting depth
    erl::OwnedEnv failure_env_;  // made up front: replies when no memory was left for another
    CallbackTable callbacks_;    // the erlang.call callbacks waited for, and early answers

    // The context's hosted event loop (worker thread). While a step runs, running_ holds a
    // nullptr (no request to call back for).
    HostedLoop hosted_;

    // The epoll set this context's thread sleeps on once a loop watches descriptors (made with
    // the first poller, worker thread; the queue keeps its address: never reset).
    aio::FdWaiterPtr fd_waiter_;
    // Pollers wake this context through it while its thread runs (disarmed when it exits).
    const aio::WakerPtr waker_ =
        std::make_shared<aio::Waker>([](void* self) { static_cast<Context*>(self)->wake(); }, this);

    ErlNifMonitor owner_mon_{};
    ErlNifPid owner_pid_{};

    std::mutex exit_mutex_;
    bool notify_set_ = false;      // guarded by exit_mutex_
    ErlNifPid notify_pid_{};       // guarded by exit_mutex_
    erl::OwnedEnv notify_env_;     // guarded by exit_mutex_
    ERL_NIF_TERM notify_tag_ = 0;  // guarded by exit_mutex_
};

using ContextResource = erl::Resource<Context>;

}  // namespace context
