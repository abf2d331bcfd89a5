#include "context/context.hpp"

#include <Python.h>

#include <chrono>
#include <vector>

#include "bridge/erlang_module.hpp"
#include "context/executor.hpp"
#include "erl/atoms.hpp"
#include "erl/terms.hpp"

namespace context {
namespace {

// 3.12/3.13 bound C recursion with a counter tuned for the main thread's 8 MiB stack.
constexpr size_t kWorkerStackBytes = 8u << 20;
// How long an idle worker spins before it sleeps (see docs/performance.md).
constexpr std::chrono::microseconds kSpin{50};

py::InterpreterPtr g_main_interp;  // set once at load

}  // namespace

void set_main_interpreter(py::InterpreterPtr interp) { g_main_interp = std::move(interp); }

Context::Context(Mode mode) : mode_(mode), queue_(kSpin) {}

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
    ctx->run();
    ContextResource::release(ctx);  // may run ~Context here: it never touches Python
    return nullptr;
}

bool Context::attach_thread() {
    // Worker mode: a thread state of our own on the main interpreter, kept for the thread's life.
    interp_ = g_main_interp;
    tstate_ = PyThreadState_New(interp_->state());
    if (!tstate_) return false;
    PyEval_RestoreThread(tstate_);
    types_ = bridge::erlang_types_for_current_interpreter();
    if (!types_) {
        PyErr_Clear();
        PyThreadState_Clear(tstate_);
        PyThreadState_DeleteCurrent();
        tstate_ = nullptr;
        return false;
    }
    PyEval_SaveThread();
    return true;
}

void Context::detach_thread() {
    PyEval_RestoreThread(tstate_);
    shared_ns_.clear_now();
    interp_->drain();
    PyThreadState_Clear(tstate_);
    PyThreadState_DeleteCurrent();  // releases the GIL
    tstate_ = nullptr;
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
    WorkerScope scope{*types_, interp_, shared_ns_};
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
    erl::send_and_clear(env, notify_pid_, enif_make_tuple2(env, erl::atoms().py_context_exited, notify_tag_));
    notify_set_ = false;
}

}  // namespace context
