// Process-independent environments and sending. Any thread.
#pragma once

#include <erl_nif.h>

#include <utility>

namespace erl {

// A process-independent environment owned by one object at a time.
class OwnedEnv {
public:
    OwnedEnv() : env_(enif_alloc_env()) {}
    OwnedEnv(const OwnedEnv&) = delete;
    OwnedEnv& operator=(const OwnedEnv&) = delete;
    OwnedEnv(OwnedEnv&& o) noexcept : env_(std::exchange(o.env_, nullptr)) {}
    ~OwnedEnv() {
        if (env_) enif_free_env(env_);
    }

    ErlNifEnv* get() const { return env_; }
    ERL_NIF_TERM copy(ERL_NIF_TERM t) const { return enif_make_copy(env_, t); }

private:
    ErlNifEnv* env_;
};

// Sends msg (built in env) to pid from a non-scheduler thread, then clears env for reuse.
inline bool send_and_clear(ErlNifEnv* env, const ErlNifPid& pid, ERL_NIF_TERM msg) {
    ErlNifPid to = pid;
    int ok = enif_send(nullptr, &to, env, msg);
    enif_clear_env(env);
    return ok != 0;
}

}  // namespace erl
