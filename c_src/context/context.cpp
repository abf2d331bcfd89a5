#include "context/context.hpp"

#include <Python.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "bridge/erlang_module.hpp"
#include "context/executor.hpp"
#include "erl/atoms.hpp"
#include "erl/terms.hpp"
#include "py/runtime.hpp"

namespace context {
namespace {

// 3.12/3.13 bound C recursion with a counter tuned for the main thread's 8 MiB stack.
constexpr size_t kWorkerStackBytes = 8u << 20;
// How long an idle worker spins before it sleeps. Measured with sequential py:call from one
// process: 50 us let the worker fall asleep between calls in 3 of 7 runs (~26K calls/s instead
// of ~130K); 200 us did not in 7 of 7. A SCHED_IDLE thread spins only on otherwise idle CPU.
constexpr std::chrono::microseconds kSpin{200};
// How long stopping an owngil context waits for the Python threads it started.
constexpr std::chrono::milliseconds kJoinDeadline{3000};

py::InterpreterPtr g_main_interp;  // set once at load

}  // namespace

void set_main_interpreter(py::InterpreterPtr interp) { g_main_interp = std::move(interp); }

Context::Context(Mode mode, ThreadPriority priority) : mode_(mode), priority_(priority), queue_(kSpin) {}

namespace {
// Applies priority to the calling thread. Best effort: a refusal leaves the normal priority.
void set_thread_priority(ThreadPriority priority) {
    switch (priority) {
        case ThreadPriority::Normal: return;
        case ThreadPriority::Low: {
            // On Linux a nice value set with the thread id applies to that thread only.
            (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
            return;
        }
        case ThreadPriority::Idle: {
            sched_param param{};
            (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
            return;
        }
    }
}
}  // namespace

bool Context::start() {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kWorkerStackBytes);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ContextResource::keep(this);  // released by the worker thread when it exits
    int rc = pthread_create(&thread_, &attr, &Context::thread_main, this);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        queue_.close();
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

void* Context::thread_main(void* self) {
    auto* ctx = static_cast<Context*>(self);
    set_thread_priority(ctx->priority_);
    ctx->run();
    ContextResource::release(ctx);  // may run ~Context here: it never touches Python
    return nullptr;
}

bool Context::attach_thread() {
    if (mode_ == Mode::OwnGil) {
        if (!py::create_owngil_interpreter(owngil_, exit_error_)) return false;
        tstate_ = owngil_.tstate;
        interp_ = std::make_shared<py::Interpreter>(PyThreadState_GetInterpreter(tstate_));
        if (!py::prepare_current_interpreter()) PyErr_Clear();
    } else {
        // A thread state of our own on the main interpreter, kept for the thread's life.
        interp_ = g_main_interp;
        tstate_ = PyThreadState_New(interp_->state());
        if (!tstate_) {
            exit_error_ = "cannot create a thread state";
            return false;
        }
        PyEval_RestoreThread(tstate_);
    }
    types_ = bridge::erlang_types_for_current_interpreter();
    code_cache_ = types_ ? PyDict_New() : nullptr;
    if (!types_ || !code_cache_) {
        PyErr_Clear();
        exit_error_ = "cannot import the erlang module";
        release_thread_state();
        return false;
    }
    PyEval_SaveThread();
    return true;
}

// Waits (GIL released while joining) for the non-daemon Python threads this interpreter
// started. False when some are still running at the deadline.
bool Context::join_python_threads() {
    static const char* kJoin =
        "def _join(deadline):\n"
        "    import sys, time\n"
        "    threading = sys.modules.get('threading')\n"
        "    if threading is None:\n"
        "        return 0\n"
        "    skip = (threading.get_ident(), threading.main_thread().ident)\n"
        "    end = time.monotonic() + deadline\n"
        "    alive = [t for t in threading.enumerate() if t.ident not in skip and not t.daemon]\n"
        "    for t in alive:\n"
        "        t.join(max(0.0, end - time.monotonic()))\n"
        "    return sum(1 for t in alive if t.is_alive())\n"
        "_stuck = _join(_deadline)\n";
    PyObject* ns = PyDict_New();
    if (!ns) { PyErr_Clear(); return true; }
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

// Precondition: attached with tstate_. Leaves nothing attached.
void Context::release_thread_state() {
    if (mode_ == Mode::OwnGil) {
        py::end_owngil_interpreter(owngil_);
        interp_->mark_dead();
    } else {
        PyThreadState_Clear(tstate_);
        PyThreadState_DeleteCurrent();  // releases the GIL
    }
    tstate_ = nullptr;
}

void Context::detach_thread() {
    PyEval_RestoreThread(tstate_);
    shared_ns_.clear_now();
    Py_CLEAR(code_cache_);
    interp_->drain();
    if (mode_ == Mode::OwnGil && !join_python_threads()) {
        // Py_EndInterpreter would wait for those threads forever: leave the interpreter
        // running them and let this thread go (see docs/owngil.md).
        PyEval_SaveThread();
        tstate_ = nullptr;
        return;
    }
    release_thread_state();
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
    erl::OwnedEnv msg_env;
    WorkerScope scope{*types_, interp_, shared_ns_, code_cache_};
    std::vector<RequestPtr> batch;
    std::string traceback;
    while (queue_.pop_all(batch)) {
        if (queue_.closed()) {
            reply_stopped(batch, msg_env.get());
            continue;
        }
        PyEval_RestoreThread(tstate_);
        for (RequestPtr& req : batch) {
            if (!req->try_start()) continue;  // cancelled while queued
            traceback.clear();
            ERL_NIF_TERM payload = execute(scope, *req, msg_env.get(), &traceback);
            if (!req->try_reply()) {  // cancelled while running: drop the late result
                enif_clear_env(msg_env.get());
                continue;
            }
            ErlNifEnv* env = msg_env.get();
            ERL_NIF_TERM tag = enif_make_copy(env, req->tag);
            ERL_NIF_TERM msg = traceback.empty()
                                   ? enif_make_tuple2(env, tag, payload)
                                   : enif_make_tuple3(env, tag, payload, erl::make_binary(env, traceback));
            erl::send_and_clear(env, req->caller(), msg);
        }
        batch.clear();  // drops request references while attached (their terms are plain memory)
        interp_->drain();
        PyEval_SaveThread();
    }
}

void Context::reply_stopped(std::vector<RequestPtr>& batch, ErlNifEnv* env) {
    for (RequestPtr& req : batch) {
        if (!req->try_start() || !req->try_reply()) continue;
        ERL_NIF_TERM msg = enif_make_tuple2(env, enif_make_copy(env, req->tag),
                                            enif_make_tuple2(env, erl::atoms().error, erl::atoms().context_stopped));
        erl::send_and_clear(env, req->caller(), msg);
    }
    batch.clear();
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
