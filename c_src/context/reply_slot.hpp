// Where a request's final reply waits for a caller that polls for it instead of receiving a
// message. Any thread: the worker offers the reply, the calling process polls or gives up;
// one atomic decides which of the two delivers it, so the caller gets exactly one reply.
#pragma once

#include <erl_nif.h>

#include <atomic>
#include <memory>
#include <utility>

#include "erl/env.hpp"
#include "erl/terms.hpp"

namespace context {

class ReplySlot {
public:
    // A stored reply is copied into the caller's heap by a NIF on its normal scheduler: bigger
    // ones (a 1,000,000-element list took 21.7 ms) are sent, and arrive in a heap fragment.
    static constexpr size_t kMaxStoredWords = size_t(1) << 14;

    // Caller: starts polling; does nothing once polling started or the caller gave up.
    void start_polling() {
        int s = state_.load(std::memory_order_relaxed);
        if (s == int(State::Off)) state_.compare_exchange_strong(s, int(State::Polling), std::memory_order_acq_rel);
    }

    // Worker: stores the reply (built in *env) when the caller is polling, taking *env.
    // False (and *env untouched) when the caller is not polling, or the reply is too big to be
    // copied on the caller's scheduler (kMaxStoredWords): send the reply as a message.
    bool offer(std::unique_ptr<erl::OwnedEnv>& env, ERL_NIF_TERM msg) {
        if (state_.load(std::memory_order_acquire) != int(State::Polling)) return false;
        if (!erl::smaller_than(env->get(), msg, kMaxStoredWords)) return false;
        env_ = std::move(env);
        msg_ = msg;
        int s = int(State::Polling);
        if (state_.compare_exchange_strong(s, int(State::Stored), std::memory_order_acq_rel)) return true;
        env = std::move(env_);  // the caller gave up meanwhile
        return false;
    }

    // Caller: the stored reply copied into env, or 0 when there is none (yet).
    ERL_NIF_TERM take(ErlNifEnv* env) {
        int s = int(State::Stored);
        if (state_.load(std::memory_order_acquire) != s) return 0;
        if (!state_.compare_exchange_strong(s, int(State::Taken), std::memory_order_acq_rel)) return 0;
        ERL_NIF_TERM msg = enif_make_copy(env, msg_);
        env_.reset();
        return msg;
    }

    // Caller: stops polling; a reply not stored by now comes as a message. Returns the stored
    // reply (copied into env) if there is one, else 0.
    ERL_NIF_TERM give_up(ErlNifEnv* env) {
        int s = state_.load(std::memory_order_acquire);
        while (s == int(State::Off) || s == int(State::Polling)) {
            if (state_.compare_exchange_weak(s, int(State::Messaging), std::memory_order_acq_rel)) return 0;
        }
        return take(env);
    }

private:
    enum class State : int { Off, Polling, Stored, Taken, Messaging };
    std::atomic<int> state_{int(State::Off)};
    std::unique_ptr<erl::OwnedEnv> env_;  // written by the worker before Stored, then the caller's
    ERL_NIF_TERM msg_ = 0;
};

}  // namespace context
