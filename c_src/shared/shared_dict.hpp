// The storage of a SharedDict: Erlang terms kept outside any process and any interpreter.
// Any thread: every operation takes the dict's lock; none blocks on anything else and none
// touches Python. Values are Erlang terms copied into an environment of their own (never
// encoded to bytes and decoded back: enif_binary_to_term of a map of more than 128 keys off a
// scheduler thread crashes OTP 25.1+ before the fix for erlang/otp#8208); keys are looked up
// by their external format.
#pragma once

#include <erl_nif.h>

#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace shared {

class SharedDict {
public:
    enum class Status { ok, missing, destroyed };

    SharedDict() = default;
    SharedDict(const SharedDict&) = delete;
    SharedDict& operator=(const SharedDict&) = delete;
    ~SharedDict() = default;

    // The value under key, copied into env.
    Status get(ErlNifEnv* env, ERL_NIF_TERM key, ERL_NIF_TERM* value) const;
    // Whether key is present (no copy).
    Status contains(ErlNifEnv* env, ERL_NIF_TERM key) const;
    // Stores a copy of key and value. Throws std::bad_alloc.
    Status set(ErlNifEnv* env, ERL_NIF_TERM key, ERL_NIF_TERM value);
    // Removes key (missing when it was not there).
    Status erase(ErlNifEnv* env, ERL_NIF_TERM key);
    // Every key, copied into env, as a list (in no particular order).
    Status keys(ErlNifEnv* env, ERL_NIF_TERM* list) const;
    // Drops every entry; every later operation answers destroyed. Idempotent.
    void destroy();
    bool destroyed() const;

private:
    // One key and its value in an environment of their own; immutable once made, so readers
    // copy out of it after letting go of the lock.
    struct Entry {
        Entry(ERL_NIF_TERM k, ERL_NIF_TERM v);  // throws std::bad_alloc
        Entry(const Entry&) = delete;
        Entry& operator=(const Entry&) = delete;
        ~Entry() { enif_free_env(env); }
        ErlNifEnv* env;
        ERL_NIF_TERM key;
        ERL_NIF_TERM value;
    };
    using EntryPtr = std::shared_ptr<const Entry>;

    // The lookup key: key's external format. Throws std::bad_alloc.
    static std::string encode_key(ErlNifEnv* env, ERL_NIF_TERM key);

    mutable std::shared_mutex mutex_;
    bool destroyed_ = false;
    std::unordered_map<std::string, EntryPtr> entries_;
};

}  // namespace shared
