#include "context/context.hpp"

#include <Python.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cerrno>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <optional>
#include <unordered_set>
#include <vector>

#include "aio/signal_router.hpp"
#include "bridge/convert.hpp"
#include "bridge/erlang_module.hpp"
#include "bridge/erlang_process.hpp"
#include "bridge/thread_call.hpp"
#include "context/executor.hpp"
#include "context/reply.hpp"
#include "context/request_handle.hpp"
#include "erl/atoms.hpp"
#include "erl/terms.hpp"
#include "py/attached.hpp"
#include "py/memory.hpp"
#include "py/ref.hpp"
#include "py/runtime.hpp"

namespace context {
namespace {

// 3.12/3.13 bound C recursion with a counter tuned for the main thread's 8 MiB stack.
constexpr size_t kWorkerStackBytes = 8U << 20;
// How long an idle worker spins before it sleeps. Measured with sequential py:call from one
// process: 50 us let the worker fall asleep between calls in 3 of 7 runs (~26K calls/s instead
// of ~130K); 200 us did not in 7 of 7. A SCHED_IDLE thread spins only on otherwise idle CPU.
constexpr std::chrono::microseconds kSpin{200};
// While a request waits for an Erlang callback, the context serves other requests nested on its
// stack. Past this depth it serves only callback replies and re-entrant requests of the
// innermost waiting request's chain (is_reentrant), so the stack grows with one chain's depth,
// not with the sum of all concurrent chains (32 chains of depth 1..64 hit RecursionError on
// 3.11 otherwise).
constexpr size_t kMaxUnrelatedNesting = 16;
// How long stopping an owngil context waits for the Python threads it started.
constexpr std::chrono::milliseconds kJoinDeadline{3000};

}  // namespace

Context::Context(Mode mode, ThreadPriority priority) : mode_(mode), priority_(priority), queue_(kSpin) {}

namespace {
// Applies priority to the calling thread. Best effort: a refusal leaves the normal priority.
void set_thread_priority(ThreadPriority priority) {
    switch (priority) {
        case ThreadPriority::Normal: return;
        case ThreadPriority::Low: {
            // Nice 10 below the thread's creator (a scheduler). On Linux a nice value set
            // with the thread id applies to that thread only.
            auto tid = static_cast<id_t>(gettid());
            errno = 0;
            int base = getpriority(PRIO_PROCESS, tid);
            if (base == -1 && errno != 0) base = 0;
            (void)setpriority(PRIO_PROCESS, tid, std::min(19, base + 10));
            return;
        }
        case ThreadPriority::Idle: {
            sched_param param{};
            (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
            return;
        }
        case ThreadPriority::Batch: {
            sched_param param{};
            (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
            return;
        }
        case ThreadPriority::Auto: return;  // PriorityGovernor::enroll
    }
}
}  // namespace

bool Context::start() {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kWorkerStackBytes);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ContextResource::keep(this);  // released by the worker thread when it exits
    register_running(this, true);
    int rc = pthread_create(&thread_, &attr, &Context::thread_main, this);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        queue_.close();
        register_running(this, false);
        ContextResource::release(this);
        return false;
    }
    return true;
}

void Context::stop(const ErlNifPid* notify, ERL_NIF_TERM tag) {
    if (notify) {
        std::lock_guard<std::mutex> lock(exit_mutex_);
        notify_set_ = true;
        notify_pid_ = *notify;
        notify_tag_ = notify_env_.copy(tag);
    }
    queue_.close();
}

// Any thread, never blocks: closes the queue and has the interrupter thread answer and
// interrupt what the context holds (Interrupter::stop).
void Context::begin_stop() {
    queue_.close();
    if (interrupter_.stop(*this)) start_interrupter();
}

void* Context::thread_main(void* self) {
    auto* ctx = static_cast<Context*>(self);
    // A name of its own in top, perf and gdb (a new thread inherits its creator's: "1_scheduler").
    pthread_setname_np(pthread_self(), ctx->mode_ == Mode::OwnGil ? "py_owngil" : "py_worker");
    if (ctx->priority_ == ThreadPriority::Auto) ctx->governed_ = PriorityGovernor::enroll(ctx->queue_);
    else set_thread_priority(ctx->priority_);
    ctx->run();
    ctx->waker_->disarm();  // before the release below may free the context
    PriorityGovernor::leave(ctx->governed_);
    ctx->governed_ = nullptr;
    register_running(ctx, false);
    ContextResource::release(ctx);  // may run ~Context here: it never touches Python
    return nullptr;
}

void Context::interrupt(RequestPtr req) {
    if (interrupter_.add(std::move(req))) start_interrupter();
}

bool Context::interrupt_running() {
    if (!interrupter_.running()) return false;
    if (interrupter_.add_running()) start_interrupter();
    return true;
}

void Context::start_interrupter() {
    ContextResource::keep(this);  // released by the interrupter thread when it exits
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread{};
    int rc = pthread_create(&thread, &attr, &Context::interrupter_main, this);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        interrupter_.thread_failed();
        ContextResource::release(this);
    }
}

void* Context::interrupter_main(void* self) {
    auto* ctx = static_cast<Context*>(self);
    pthread_setname_np(pthread_self(), "py_interrupt");
    ctx->interrupter_.run();
    ContextResource::release(ctx);
    return nullptr;
}

bool Context::backtrace(ErlNifEnv* caller_env, const ErlNifPid& to, ERL_NIF_TERM tag, RequestPtr about) {
    StackProbe::Added added = stack_probe_.add(to, tag, std::move(about));
    if (added != StackProbe::Added::Start) return added == StackProbe::Added::Queued;
    ContextResource::keep(this);  // released by the probe thread when it exits
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread{};
    int rc = pthread_create(&thread, &attr, &Context::stack_probe_main, this);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        stack_probe_.thread_failed(caller_env);
        ContextResource::release(this);
    }
    return true;
}

void* Context::stack_probe_main(void* self) {
    auto* ctx = static_cast<Context*>(self);
    pthread_setname_np(pthread_self(), "py_stack_probe");
    ctx->stack_probe_.run();
    ContextResource::release(ctx);
    return nullptr;
}

bool Context::attach_thread() {
    std::optional<py::Attached> attached;
    if (mode_ == Mode::OwnGil) {
        if (!py::create_owngil_interpreter(owngil_, exit_error_)) return false;
        tstate_ = owngil_.tstate;
        attached.emplace(py::Attached::adopt(tstate_));
        interp_ = std::make_shared<py::Interpreter>(PyThreadState_GetInterpreter(tstate_));
        register_owner(interp_->serial(), this);
        if (!py::prepare_current_interpreter()) PyErr_Clear();
    } else {
        // A thread state of our own on the main interpreter, kept for the thread's life.
        interp_ = main_interpreter_ptr();
        tstate_ = PyThreadState_New(interp_->state());
        if (!tstate_) {
            exit_error_ = "cannot create a thread state";
            return false;
        }
        attached.emplace(tstate_);
    }
    erlang_module_ = bridge::import_erlang_module();
    types_ = erlang_module_ ? bridge::erlang_types_of(erlang_module_) : nullptr;
    code_cache_ = types_ ? PyDict_New() : nullptr;
    if (!types_ || !code_cache_) {
        PyErr_Clear();
        Py_CLEAR(erlang_module_);
        exit_error_ = "cannot import the erlang module";
        release_thread_state(std::move(*attached));
        return false;
    }
    interrupter_.bind(tstate_, PyThread_get_thread_ident(), types_->interrupted);
    stack_probe_.bind(tstate_);
    return true;  // attached's end detaches
}

// Waits (GIL released while joining) for the non-daemon Python threads this interpreter
// started. False when some are still running at the deadline.
bool Context::join_python_threads(const py::Attached&) {
    static const char* kJoin =
        "def _join(deadline):\n"
        "    import sys, time\n"
        "    threading = sys.modules.get('threading')\n"
        "    if threading is None:\n"
        "        return 0\n"
        "    info = getattr(threading, '_thread_local_info', None)\n"
        "    if info is not None and hasattr(info, '_track_dummy_thread_ref'):\n"
        "        del info._track_dummy_thread_ref  # while threading still works (3.13)\n"
        "    skip = (threading.get_ident(), threading.main_thread().ident)\n"
        "    end = time.monotonic() + deadline\n"
        "    alive = [t for t in threading.enumerate() if t.ident not in skip and not t.daemon]\n"
        "    for t in alive:\n"
        "        t.join(max(0.0, end - time.monotonic()))\n"
        "    return sum(1 for t in alive if t.is_alive())\n"
        "_stuck = _join(_deadline)\n";
    PyObject* ns = PyDict_New();
    if (!ns) {
        PyErr_Clear();
        return true;
    }
    PyObject* deadline = PyFloat_FromDouble(std::chrono::duration<double>(kJoinDeadline).count());
    if (deadline) PyDict_SetItemString(ns, "_deadline", deadline);
    Py_XDECREF(deadline);
    PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins());
    PyObject* r = PyRun_String(kJoin, Py_file_input, ns, ns);
    long stuck = 0;
    if (r) {
        PyObject* n = PyDict_GetItemString(ns, "_stuck");
        stuck = n ? PyLong_AsLong(n) : 0;
        Py_DECREF(r);
    }
    PyErr_Clear();
    Py_DECREF(ns);
    if (stuck > 0) exit_error_ = std::to_string(stuck) + " Python thread(s) still running";
    return stuck == 0;
}

// Ends tstate_ (attached: the proof, consumed). Leaves nothing attached.
void Context::release_thread_state(py::Attached attached) {
    if (mode_ == Mode::OwnGil) {
        forget_owngil_owner();
        py::end_owngil_interpreter(owngil_);
        interp_->mark_dead();
    } else {
        PyThreadState_Clear(tstate_);
        PyThreadState_DeleteCurrent();  // releases the GIL
    }
    py::Attached::dismiss(std::move(attached));
    tstate_ = nullptr;
}

// Object references of this interpreter no longer find this context (keep_owner_of).
void Context::forget_owngil_owner() { forget_owner(interp_->serial()); }

void Context::detach_thread() {
    interrupter_.close();  // before the interpreter can end: the interrupter attaches to it
    stack_probe_.close();  // so does the stack probe
    py::Attached attached(tstate_);
    shared_ns_.clear_now();
    Py_CLEAR(code_cache_);
    names_.clear();
    types_ = nullptr;
    Py_CLEAR(erlang_module_);
    interp_->drain();
    if (mode_ == Mode::OwnGil && !join_python_threads(attached)) {
        // Py_EndInterpreter would wait for those threads forever: leave the interpreter
        // running them and let this thread go (see docs/owngil.md); attached's end detaches.
        forget_owngil_owner();
        tstate_ = nullptr;
        return;
    }
    release_thread_state(std::move(attached));
}

void Context::run() {
    if (!attach_thread()) {
        queue_.close();
        erl::OwnedEnv msg_env;
        std::vector<RequestPtr> batch;
        while (queue_.pop_all(batch)) reply_stopped(batch, msg_env.get());
        notify_exit();
        return;
    }
    serve();
    detach_thread();
    notify_exit();
}

void Context::serve() {
    bridge::set_current_host(this);
    aio::set_current_loop_host(this);
    std::vector<RequestPtr> incoming;
    std::vector<RequestPtr> one;
    erl::OwnedEnv stop_env;
    while (next_batch(incoming)) {
        if (queue_.closed() && backlog_.empty()) {
            reply_stopped(incoming, stop_env.get());
            continue;
        }
        if (incoming.empty() && backlog_.empty() && !hosted_.due()) continue;  // a wake-up for a loop not waiting now
        if (governed_) governed_->begin_batch();
        serve_batch(incoming, one, stop_env.get());
        if (governed_) governed_->end_batch();
    }
    if (hosted_.active()) {
        py::Attached attached(tstate_);
        hosted_.shutdown();
    }
    aio::unsubscribe_signals_of(serial_);  // loops left open: no signal reaches them any more
    aio::set_current_loop_host(nullptr);
    bridge::set_current_host(nullptr);
}

// One batch, attached for its length (the scope of `attached`).
void Context::serve_batch(std::vector<RequestPtr>& incoming, std::vector<RequestPtr>& one, ErlNifEnv* stop_env) {
    py::Attached attached(tstate_);
    // Attached while batch_ and backlog_ change: a stopping context's interrupter reads them.
    if (backlog_.empty()) {
        batch_.swap(incoming);  // the common case; incoming gets batch_'s empty buffer
    } else {
        batch_.assign(std::make_move_iterator(backlog_.begin()), std::make_move_iterator(backlog_.end()));
        backlog_.clear();
        batch_.insert(batch_.end(), std::make_move_iterator(incoming.begin()), std::make_move_iterator(incoming.end()));
        incoming.clear();
    }
    for (RequestPtr& req : batch_) {
        if (!queue_.closed()) {
            handle(req);
            continue;
        }
        one.push_back(std::move(req));
        reply_stopped(one, stop_env);
    }
    batch_.clear();  // drops request references while attached (their terms are plain memory)
    run_due_hosted_steps();
    interp_->drain();
    if (mode_ == Mode::OwnGil) sample_memory();
}

// Requests left over by a nested wait (backlog_, which serve() takes attached) come first,
// then the queue. With a hosted loop, the wait ends when its next timer is due (at once when
// it has work now).
bool Context::next_batch(std::vector<RequestPtr>& batch) {
    if (!backlog_.empty()) return true;
    auto deadline = RequestQueue::Clock::time_point::max();
    if (hosted_.active()) deadline = hosted_.due() ? RequestQueue::Clock::time_point::min() : hosted_.wait_deadline();
    if (governed_) governed_->end_batch();  // waiting is not wanting the CPU
    return queue_.pop_all(batch, deadline, governed_ ? governed_->busy_flag() : nullptr);
}

namespace {
// Whether payload is the {error, Reason} reply of a Python exception.
bool is_error_reply(ErlNifEnv* env, ERL_NIF_TERM payload) {
    int arity = 0;
    const ERL_NIF_TERM* parts = nullptr;
    return payload != kDeferredReply && enif_get_tuple(env, payload, &arity, &parts) && arity == 2 &&
           parts[0] == erl::atoms().error;
}
}  // namespace

// Precondition: attached. Runs one request and sends its reply. No C++ exception leaves: this
// runs under serve() (a C thread entry) and under Python frames (a nested request served while
// a callback waits). When one comes (std::bad_alloc: a reply env, the nesting stacks or a
// traceback could not grow) the caller gets {error, out_of_memory} (or {error, internal_error}).
void Context::handle(RequestPtr& req) {
    if (req->is_callback_reply()) return;  // its waiter gave up already
    size_t depth = running_.size();
    try {
        run_request(req);
    } catch (...) {
        ERL_NIF_TERM reason = erl::atoms().internal_error;
        try {
            throw;
        } catch (const std::bad_alloc&) {
            reason = erl::atoms().out_of_memory;
        } catch (...) {}
        while (running_.size() > depth) pop_running();
        PyErr_Clear();
        (void)req->try_start();  // the failure may have come before it started
        req->mark_ended();
        interrupter_.settle(*req);
        if (req->try_reply()) reply_internal_failure(*req, reason);
    }
}

void Context::reply_internal_failure(Request& req, ERL_NIF_TERM reason) {
    ErlNifEnv* env = failure_env_.get();
    const erl::Atoms& a = erl::atoms();
    ERL_NIF_TERM tag = enif_make_copy(env, req.tag);
    ERL_NIF_TERM error = enif_make_tuple2(env, a.error, reason);
    ERL_NIF_TERM msg = req.mode() == ResultMode::StreamStart ? enif_make_tuple3(env, a.py_stream, tag, error)
                                                             : enif_make_tuple2(env, tag, error);
    req.reply_slot().give_up(env);  // a polling caller gets it as a message
    erl::send_and_clear(env, req.mode() == ResultMode::StreamStart ? req.reply_to() : req.caller(), msg);
}

void Context::run_request(RequestPtr& req) {
    size_t depth = running_.size();
    push_running(req.get());  // before try_start: a canceller that sees it Running finds it here
    uint64_t started_at = RequestTimings::on() ? ticks_now() : 0;
    bool started = req->try_start();
    stats_.taken(req->submitted_at, started_at, started);
    if (!started) {  // cancelled while queued
        pop_running();
        return;
    }
    while (msg_envs_.size() <= depth) msg_envs_.emplace_back();
    if (!msg_envs_[depth]) msg_envs_[depth] = std::make_unique<erl::OwnedEnv>();  // new, or it went with a reply
    ErlNifEnv* env = msg_envs_[depth]->get();
    WorkerScope scope{*types_, interp_, shared_ns_, code_cache_, names_, after_reply_};
    std::string traceback;
    size_t kept = after_reply_.size();  // a nested request (during a callback) keeps its own
    ERL_NIF_TERM payload = execute(scope, req, env, &traceback);
    stats_.finished(started_at, started_at != 0 ? ticks_now() : 0, is_error_reply(env, payload));
    // At the end, once the reply is out. Moved out first: releasing runs finalisers, which may
    // serve nested requests that use after_reply_ too.
    struct ReleaseAfterReply {
        std::vector<py::Ref>& refs;
        size_t kept;
        ReleaseAfterReply(std::vector<py::Ref>& r, size_t k) : refs(r), kept(k) {}
        ReleaseAfterReply(const ReleaseAfterReply&) = delete;
        ReleaseAfterReply(ReleaseAfterReply&&) = delete;
        ReleaseAfterReply& operator=(const ReleaseAfterReply&) = delete;
        ReleaseAfterReply& operator=(ReleaseAfterReply&&) = delete;
        ~ReleaseAfterReply() {
            std::vector<py::Ref> doomed(std::make_move_iterator(refs.begin() + static_cast<std::ptrdiff_t>(kept)),
                                        std::make_move_iterator(refs.end()));
            refs.resize(kept);  // only moved-from (empty) references go here
        }
    } release{after_reply_, kept};
    pop_running();
    req->mark_ended();
    interrupter_.settle(*req);
    if (running_.empty()) callbacks_.drop_arrived();  // late answers to aborted callbacks
    if (payload == kDeferredReply) return;            // a Python object replies later
    if (!req->try_reply()) {                          // cancelled while running: drop the late result
        enif_clear_env(env);
        return;
    }
    send_final_reply(*req, msg_envs_[depth], payload, traceback);
}

// Precondition: attached. The request whose code runs now on this thread (nullptr: a step of
// the hosted loop), innermost last; the interrupter reads the innermost.
void Context::push_running(Request* req) {
    running_.push_back(req);
    interrupter_.set_running(req);
    stats_.set_running(running_.size());
}

void Context::pop_running() {
    running_.pop_back();
    interrupter_.set_running(running_.empty() ? nullptr : running_.back());
    stats_.set_running(running_.size());
}

// Precondition: attached, owngil mode. Refreshes the interpreter's memory figures, at most
// every ContextStats::kMemoryEvery (a walk over its arenas and a parse: see docs/observability.md).
void Context::sample_memory() {
    uint64_t now = ticks_now();
    if (!stats_.memory_due(now)) return;
    py::PymallocUsage usage = py::pymalloc_usage();
    stats_.set_memory(usage.allocated_bytes, usage.arena_bytes, now);
}

// Whether the request whose code runs now was cancelled (its interrupt is on its way).
bool Context::running_cancelled() const { return !running_.empty() && running_.back() && running_.back()->cancelled(); }

// --- callbacks: Python calling Erlang -----------------------------------------------------------

PyObject* Context::call_erlang(PyObject* name, PyObject* args) {
    if (running_.empty() || !running_.back()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "erlang.call is only available while serving a request (not in a task of the context's "
                        "event loop: use erlang.send)");
        return nullptr;
    }
    Request& req = *running_.back();
    if (req.mode() == ResultMode::StreamStart) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.call is not available in a stream started with py:stream_start");
        return nullptr;
    }
    bridge::Converter cv{*types_, interp_};
    erl::OwnedEnv env;
    ERL_NIF_TERM name_term{}, args_term{};
    py::Ref arg_list = py::Ref::steal(PySequence_List(args));
    if (!arg_list || !bridge::to_erlang(cv, env.get(), name, &name_term) ||
        !bridge::to_erlang(cv, env.get(), arg_list.get(), &args_term))
        return nullptr;
    uint64_t id = callbacks_.next_id();
    ErlNifPid caller = req.caller();
    ErlNifMonitor mon{};
    if (!callbacks_.add(ContextResource::slot_of(this), caller, id, &mon)) {
        PyErr_SetString(PyExc_RuntimeError, "the Erlang process that made this call has exited");
        return nullptr;
    }
    auto forget = [&] { callbacks_.remove(ContextResource::slot_of(this), id, mon); };
    if (!req.try_enter_callback(id)) {
        forget();
        PyErr_SetString(PyExc_TimeoutError, "the call was cancelled by its caller");
        return nullptr;
    }
    ErlNifEnv* e = env.get();
    ERL_NIF_TERM msg = enif_make_tuple5(e, erl::atoms().py_callback, enif_make_copy(e, req.tag),
                                        enif_make_uint64(e, id), name_term, args_term);
    erl::send_and_clear(e, caller, msg);
    stats_.callback();

    RequestPtr reply = wait_callback_reply(id);
    forget();
    if (!req.try_leave_callback()) {
        PyErr_SetString(PyExc_TimeoutError, "the call was cancelled by its caller");
        return nullptr;
    }
    if (!reply) {
        PyErr_SetString(PyExc_RuntimeError, "the context stopped while waiting for an Erlang callback");
        return nullptr;
    }
    return callback_result(*reply, name);
}

// Precondition: attached. Serves other requests (nested ones included) and steps the hosted
// loop until done() holds, the deadline passes or the context stops.
template <class Done>
Context::WaitEnd Context::serve_nested(Done done, RequestQueue::Clock::time_point deadline) {
    for (;;) {
        if (done()) return WaitEnd::Done;
        if (hosted_.due()) {
            step_hosted();
            continue;
        }
        auto eligible = backlog_.begin();
        if (running_.size() >= kMaxUnrelatedNesting)
            while (eligible != backlog_.end() && !(*eligible)->is_callback_reply() && !is_reentrant(**eligible))
                ++eligible;
        if (eligible == backlog_.end()) {  // nothing to do now: wait for more
            if (RequestQueue::Clock::now() >= deadline) return WaitEnd::TimedOut;
            auto until = deadline;
            until = std::min(until, hosted_.wait_deadline());
            if (!refill_backlog(until)) return WaitEnd::Stopped;
            continue;
        }
        RequestPtr next = std::move(*eligible);
        backlog_.erase(eligible);
        if (const auto* answer = std::get_if<CallbackReplyMessage>(&next->message())) {
            callbacks_.arrived(answer->id, std::move(next));
            continue;
        }
        if (queue_.closed()) {
            std::vector<RequestPtr> one;
            one.push_back(std::move(next));
            erl::OwnedEnv env;
            reply_stopped(one, env.get());
            continue;
        }
        handle(next);
    }
}

bool Context::wait_stream_room(Request& req) {
    auto done = [&] { return req.room() || req.cancelled(); };
    return serve_nested(done, RequestQueue::Clock::time_point::max()) == WaitEnd::Done && !req.cancelled();
}

// Precondition: attached. Serves other requests until the reply to callback `id` arrives;
// nullptr when the context stops first.
RequestPtr Context::wait_callback_reply(uint64_t id) {
    if (serve_nested([&] { return callbacks_.has_arrived(id); }, RequestQueue::Clock::time_point::max()) !=
        WaitEnd::Done)
        return {};
    return callbacks_.take_arrived(id);
}

// Precondition: attached. Waits (detached) for more requests, a wake-up or the deadline, and
// appends what arrived to the backlog. False when the context is stopping and its queue is empty.
bool Context::refill_backlog(RequestQueue::Clock::time_point deadline) {
    std::vector<RequestPtr> batch;
    bool more = false;
    {
        py::Released released;
        if (governed_) governed_->end_batch();  // waiting is not wanting the CPU
        more = queue_.pop_all(batch, deadline, governed_ ? governed_->busy_flag() : nullptr);
        if (governed_) governed_->begin_batch();
    }
    for (RequestPtr& r : batch) backlog_.push_back(std::move(r));
    return more;
}

// A request from the process running the callback of the innermost waiting request: serving
// only those past the nesting bound lets that chain run to its end and unwind, so that the
// stack holds one chain's depth on top, not the levels of every chain interleaved (16 chains
// of depth 64 hit RecursionError when any waiting request's chain was served).
bool Context::is_reentrant(const Request& request) const {
    auto innermost = std::find_if(running_.rbegin(), running_.rend(), [](const Request* r) { return r != nullptr; });
    return innermost != running_.rend() && enif_compare_pids(&(*innermost)->caller(), &request.caller()) == 0;
}

// Precondition: attached. {ok, V} -> V; {error, {Class, Reason}} -> erlang.ErlangError;
// unknown_function -> NameError; anything else (an abort) -> RuntimeError.
PyObject* Context::callback_result(Request& reply, PyObject* name) {
    bridge::Converter cv{*types_, interp_};
    const auto& answer = std::get<CallbackReplyMessage>(reply.message());
    return bridge::callback_result_to_python(cv, reply.env(), answer.result, name);
}

PyObject* Context::send(PyObject* target, PyObject* message) {
    bridge::Converter cv{*types_, interp_};
    return bridge::send_message(cv, target, message);
}

PyObject* Context::self_pid() {
    if (running_.empty() || !running_.back()) {
        PyErr_SetString(PyExc_RuntimeError, "erlang.self is only available while serving a request");
        return nullptr;
    }
    return bridge::make_pid(*types_, running_.back()->caller());
}

// --- the event loop support ------------------------------------------------------------------

aio::PollerPtr Context::make_poller() {
    if (!fd_waiter_) {
        fd_waiter_ = aio::FdWaiter::make();
        if (!fd_waiter_) {
            PyErr_SetFromErrno(PyExc_OSError);
            return {};
        }
        queue_.attach_fd_waiter(fd_waiter_.get());
    }
    try {
        return aio::PollerPtr::adopt(aio::PollerResource::make(waker_, fd_waiter_));
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return {};
    }
}

bool Context::wait_poller(aio::Poller& poller, double timeout) {
    auto deadline = RequestQueue::Clock::time_point::max();
    if (timeout >= 0) deadline = RequestQueue::Clock::now() + from_seconds(timeout);
    // A cancelled request's code goes back to Python at once, where its interrupt surfaces.
    if (serve_nested([&] { return poller.has_ready() || running_cancelled(); }, deadline) == WaitEnd::Stopped) {
        PyErr_SetString(PyExc_RuntimeError, "the context is stopping");
        return false;
    }
    return true;
}

void Context::set_hosted_loop(PyObject* loop, aio::Poller* poller) { hosted_.set(loop, poller); }

// Precondition: attached, a hosted loop set. One iteration of it, with no request running.
void Context::step_hosted() {
    push_running(nullptr);
    hosted_.step();
    pop_running();
}

// Precondition: attached. A few steps at most, so that a loop that always has work ready
// cannot starve the queue: the next wait returns at once while the loop is still due.
void Context::run_due_hosted_steps() {
    for (int i = 0; i < 8 && hosted_.due(); ++i) step_hosted();
}

bool Context::push_callback_reply(uint64_t id, ERL_NIF_TERM result) {
    ErlNifPid nobody{};
    auto reply = RequestPtr::adopt(RequestResource::make(nobody, erl::ResourcePtr<Namespace>{}));
    reply->set_message(CallbackReplyMessage{id, reply->copy(result)});
    return queue_.push(std::move(reply)) != RequestQueue::Pushed::Refused;
}

void Context::push_callback_abort(uint64_t id) { push_callback_reply(id, erl::atoms().aborted); }

void Context::on_down(const ErlNifMonitor* mon) {
    if (enif_compare_monitors(mon, &owner_mon_) == 0) {
        begin_stop();
        return;
    }
    if (uint64_t id = callbacks_.id_of(mon)) push_callback_abort(id);
}

void Context::reply_stopped(std::vector<RequestPtr>& batch, ErlNifEnv* env) {
    for (RequestPtr& req : batch) {
        if (req->is_callback_reply()) continue;  // an answer nobody waits for: no tag, no caller
        stats_.taken(req->submitted_at, req->submitted_at, false);
        if (!req->try_start()) continue;
        req->mark_ended();
        if (!req->try_reply()) continue;
        ERL_NIF_TERM msg = enif_make_tuple2(env, enif_make_copy(env, req->tag),
                                            enif_make_tuple2(env, erl::atoms().error, erl::atoms().context_stopped));
        erl::send_and_clear(env, req->caller(), msg);
    }
    batch.clear();
}

namespace {
// {error, context_stopped} for a request of a stopping context, unless it was answered or
// cancelled already. Any thread; attached when req may be running.
void answer_stopped(Request& req) {
    if (req.is_callback_reply() || !req.try_reply_stopped()) return;
    auto env = std::make_unique<erl::OwnedEnv>();
    ERL_NIF_TERM payload = enif_make_tuple2(env->get(), erl::atoms().error, erl::atoms().context_stopped);
    send_final_reply(req, env, payload, {});
}
}  // namespace

// Interrupter thread, not attached.
void Context::answer_queued() {
    std::vector<RequestPtr> queued;
    queue_.take_queued(queued);
    for (RequestPtr& req : queued) answer_stopped(*req);
}

// Interrupter thread, attached: the worker is not, so what it holds does not change meanwhile.
void Context::answer_held() {
    for (Request* req : running_)
        if (req) answer_stopped(*req);
    for (RequestPtr& req : batch_) answer_stopped(*req);
    for (RequestPtr& req : backlog_) answer_stopped(*req);
}

void Context::notify_exit() {
    std::lock_guard<std::mutex> lock(exit_mutex_);
    if (!notify_set_) return;
    ErlNifEnv* env = notify_env_.get();
    ERL_NIF_TERM status = exit_error_.empty()
                              ? erl::atoms().ok
                              : enif_make_tuple2(env, erl::atoms().error, erl::make_binary(env, exit_error_));
    erl::send_and_clear(env, notify_pid_, enif_make_tuple3(env, erl::atoms().py_context_exited, notify_tag_, status));
    notify_set_ = false;
}

}  // namespace context

namespace context {

RequestHandle::~RequestHandle() {
    if (!req_ || req_->finished()) return;
    Context* ctx = keep_if_running(req_->context_serial());
    if (!ctx) {
        req_->cancel();  // nothing runs it any more
        return;
    }
    if (cancel_request(*ctx, req_) != Request::CancelOutcome::AlreadyReplied) ctx->stats().abandoned();
    ContextResource::release(ctx);
}

Request::CancelOutcome cancel_request(Context& ctx, const RequestPtr& req) {
    Request::CancelOutcome outcome = req->cancel();
    if (outcome == Request::CancelOutcome::CancelledRunning) {
        if (req->mode() != ResultMode::Plain) ctx.cancel_abandoned_tasks();  // its result may come from a task
        if (!req->ended()) ctx.interrupt(req);
    } else if (outcome == Request::CancelOutcome::CancelledInCallback) ctx.push_callback_abort(req->callback_id());
    return outcome;
}

}  // namespace context
