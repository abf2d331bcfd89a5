// erlang.call from a Python thread that is not a context's own thread (threading.Thread,
// ThreadPoolExecutor workers, ...). Such a thread has no request, hence no Erlang process
// waiting for callbacks: it sends {py_thread_callback, Call, Name, Args} to the registered
// process py_thread_callback (src/py_thread_callback.erl), which runs the function in a
// process of its own and answers with py_nif:thread_callback_reply(Call, Result). The thread
// waits with its GIL released and needs nothing from any context thread, so a context thread
// that waits for it (`executor.submit(erlang.call, ...).result()`) cannot deadlock with it.
// Every call gets exactly one answer: when the message or the process running it is lost
// before answering, the last reference to Call goes and its destructor answers `aborted`.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "bridge/convert.hpp"
#include "erl/env.hpp"
#include "erl/resource.hpp"

namespace bridge {

// The answer slot the waiting thread and the call's resource share. Any thread.
struct ThreadCallSlot {
    std::mutex mutex;
    std::condition_variable answered_cv;
    bool answered = false;  // guarded by mutex
    erl::OwnedEnv env;      // holds result once answered
    ERL_NIF_TERM result = 0;
};

// The NIF resource an answer names. Its destructor (any thread, never blocks long) answers
// `aborted` when nobody answered.
class ThreadCall {
public:
    explicit ThreadCall(std::shared_ptr<ThreadCallSlot> slot) : slot_(std::move(slot)) {}
    ThreadCall(const ThreadCall&) = delete;
    ThreadCall& operator=(const ThreadCall&) = delete;
    ~ThreadCall();

    // Any thread: stores result (copied) for the waiting thread. False when already answered.
    bool answer(ERL_NIF_TERM result);

private:
    std::shared_ptr<ThreadCallSlot> slot_;
};

using ThreadCallResource = erl::Resource<ThreadCall>;

// Precondition: attached to cv.interp, on a thread that is not a context's. Runs the Erlang
// function registered as name (a str) with the arguments args (a tuple) and returns its
// result, or nullptr with an exception set (as for a call made on a context's thread).
PyObject* call_from_thread(const Converter& cv, PyObject* name, PyObject* args);

// Precondition: attached to cv.interp. The Python value of a callback's answer: {ok, V} -> V;
// {error, {Class, Reason}} -> erlang.ErlangError(Class, Reason); unknown_function ->
// NameError; anything else (an abort) -> RuntimeError.
PyObject* callback_result_to_python(const Converter& cv, ErlNifEnv* env, ERL_NIF_TERM result, PyObject* name);

}  // namespace bridge
