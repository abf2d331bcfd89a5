#include "shared/shared_dict.hpp"

#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace shared {

SharedDict::Entry::Entry(ERL_NIF_TERM k, ERL_NIF_TERM v) : env(enif_alloc_env()) {
    if (!env) throw std::bad_alloc();
    key = enif_make_copy(env, k);
    value = enif_make_copy(env, v);
}

std::string SharedDict::encode_key(ErlNifEnv* env, ERL_NIF_TERM key) {
    ErlNifBinary bin;
    if (!enif_term_to_binary(env, key, &bin)) throw std::bad_alloc();
    std::string encoded(reinterpret_cast<const char*>(bin.data), bin.size);
    enif_release_binary(&bin);
    return encoded;
}

SharedDict::Status SharedDict::get(ErlNifEnv* env, ERL_NIF_TERM key, ERL_NIF_TERM* value) const {
    std::string k = encode_key(env, key);
    EntryPtr entry;
    {
        std::shared_lock lock(mutex_);
        if (destroyed_) return Status::destroyed;
        auto it = entries_.find(k);
        if (it == entries_.end()) return Status::missing;
        entry = it->second;
    }
    *value = enif_make_copy(env, entry->value);
    return Status::ok;
}

SharedDict::Status SharedDict::contains(ErlNifEnv* env, ERL_NIF_TERM key) const {
    std::string k = encode_key(env, key);
    std::shared_lock lock(mutex_);
    if (destroyed_) return Status::destroyed;
    return entries_.contains(k) ? Status::ok : Status::missing;
}

SharedDict::Status SharedDict::set(ErlNifEnv* env, ERL_NIF_TERM key, ERL_NIF_TERM value) {
    std::string k = encode_key(env, key);
    auto entry = std::make_shared<const Entry>(key, value);
    EntryPtr old;  // dropped after the lock is released
    std::unique_lock lock(mutex_);
    if (destroyed_) return Status::destroyed;
    EntryPtr& slot = entries_[std::move(k)];
    old = std::exchange(slot, std::move(entry));
    lock.unlock();
    return Status::ok;
}

SharedDict::Status SharedDict::erase(ErlNifEnv* env, ERL_NIF_TERM key) {
    std::string k = encode_key(env, key);
    EntryPtr old;
    std::unique_lock lock(mutex_);
    if (destroyed_) return Status::destroyed;
    auto it = entries_.find(k);
    if (it == entries_.end()) return Status::missing;
    old = std::move(it->second);
    entries_.erase(it);
    lock.unlock();
    return Status::ok;
}

SharedDict::Status SharedDict::keys(ErlNifEnv* env, ERL_NIF_TERM* list) const {
    std::vector<EntryPtr> snapshot;
    {
        std::shared_lock lock(mutex_);
        if (destroyed_) return Status::destroyed;
        snapshot.reserve(entries_.size());
        for (const auto& kv : entries_) snapshot.push_back(kv.second);
    }
    ERL_NIF_TERM acc = enif_make_list(env, 0);
    for (const EntryPtr& e : snapshot) acc = enif_make_list_cell(env, enif_make_copy(env, e->key), acc);
    *list = acc;
    return Status::ok;
}

void SharedDict::destroy() {
    std::unordered_map<std::string, EntryPtr> dropped;
    std::unique_lock lock(mutex_);
    destroyed_ = true;
    dropped.swap(entries_);
    lock.unlock();
}

bool SharedDict::destroyed() const {
    std::shared_lock lock(mutex_);
    return destroyed_;
}

}  // namespace shared
