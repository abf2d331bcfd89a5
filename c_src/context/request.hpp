// One call/eval/exec request travelling from a calling process to a context's worker thread.
// Any thread: fields are written before the request is queued and read by the worker after;
// only `state_` is shared concurrently (caller cancels, worker starts and replies).
#pragma once

#include <erl_nif.h>

#include <atomic>

#include "context/namespace.hpp"
#include "erl/env.hpp"
#include "erl/resource.hpp"

namespace context {

enum class RequestKind { Call, Eval, Exec, Reset };

class Request {
public:
    enum class State : int { Pending, Running, Replied, Cancelled };
    enum class CancelOutcome { Cancelled, AlreadyReplied };

    Request(RequestKind kind, const ErlNifPid& caller, erl::ResourcePtr<Namespace> ns)
        : kind_(kind), caller_(caller), ns_(std::move(ns)) {}

    RequestKind kind() const { return kind_; }
    const ErlNifPid& caller() const { return caller_; }
    Namespace* ns() const { return ns_.get(); }
    ErlNifEnv* env() const { return env_.get(); }

    // Terms copied into env(): the reply tag and up to four arguments.
    //   Call: module, function, args, kwargs.  Eval: code, locals.  Exec: code.  Reset: none.
    ERL_NIF_TERM tag = 0;
    ERL_NIF_TERM arg[4] = {0, 0, 0, 0};
    ERL_NIF_TERM copy(ERL_NIF_TERM t) { return env_.copy(t); }

    // Worker: claims the request. False when the caller cancelled it first.
    bool try_start() { return transition(State::Pending, State::Running); }
    // Worker: claims the right to reply. False when the caller cancelled meanwhile.
    bool try_reply() { return transition(State::Running, State::Replied); }
    // Caller: gives up. AlreadyReplied means the reply is (or is about to be) in its mailbox.
    CancelOutcome cancel() {
        int s = state_.load(std::memory_order_acquire);
        while (s == int(State::Pending) || s == int(State::Running)) {
            if (state_.compare_exchange_weak(s, int(State::Cancelled), std::memory_order_acq_rel)) return CancelOutcome::Cancelled;
        }
        return s == int(State::Replied) ? CancelOutcome::AlreadyReplied : CancelOutcome::Cancelled;
    }
    bool cancelled() const { return state_.load(std::memory_order_acquire) == int(State::Cancelled); }

private:
    bool transition(State from, State to) {
        int expected = int(from);
        return state_.compare_exchange_strong(expected, int(to), std::memory_order_acq_rel);
    }

    RequestKind kind_;
    ErlNifPid caller_;
    erl::ResourcePtr<Namespace> ns_;
    erl::OwnedEnv env_;
    std::atomic<int> state_{int(State::Pending)};
};

using RequestResource = erl::Resource<Request>;
using RequestPtr = erl::ResourcePtr<Request>;

}  // namespace context
