// The Erlang callbacks (erlang.call) a context's code waits for. Each pending callback has the
// monitor of the process that runs it, so that its exit aborts the wait (the DOWN callback
// looks the monitor up); answers that arrive for a callback further out than the innermost
// are kept until their waiter resumes.
// Thread: the pending list has its own lock (add and remove on the context thread, id_of from
// ERTS's DOWN callback, any thread); the ids and the arrived answers are the context thread's.
#pragma once

#include <erl_nif.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "context/request.hpp"

namespace context {

class CallbackTable {
public:
    // Context thread: the id of a new callback (never 0).
    uint64_t next_id() { return ++last_id_; }

    // Context thread: monitors caller from the resource obj and records callback id; false
    // when the caller has exited. The lock is held from the monitor to the record: a DOWN for
    // a caller that dies in between waits for the entry it must find. ERTS calls `down` with
    // no lock of its own held, so this cannot deadlock with it.
    bool add(void* obj, const ErlNifPid& caller, uint64_t id, ErlNifMonitor* mon) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (enif_monitor_process(nullptr, obj, &caller, mon) != 0) return false;
        pending_.push_back({*mon, id});
        return true;
    }
    // Context thread: callback id is no longer waited for (answered, cancelled or failed).
    void remove(void* obj, uint64_t id, const ErlNifMonitor& mon) {
        enif_demonitor_process(nullptr, obj, &mon);
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = pending_.begin(); it != pending_.end(); ++it)
            if (it->id == id) {
                pending_.erase(it);
                return;
            }
    }
    // Any thread (a DOWN): the callback whose process has that monitor; 0 when none.
    uint64_t id_of(const ErlNifMonitor* mon) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const Pending& p : pending_)
            if (enif_compare_monitors(mon, &p.mon) == 0) return p.id;
        return 0;
    }

    // Context thread: the answers taken from the queue, by callback id, not yet waited for.
    void arrived(uint64_t id, RequestPtr answer) { arrived_[id] = std::move(answer); }
    bool has_arrived(uint64_t id) const { return arrived_.contains(id); }
    RequestPtr take_arrived(uint64_t id) {
        auto it = arrived_.find(id);
        if (it == arrived_.end()) return {};
        RequestPtr answer = std::move(it->second);
        arrived_.erase(it);
        return answer;
    }
    // Late answers to aborted callbacks, once nothing waits (the context thread runs no request).
    void drop_arrived() { arrived_.clear(); }

private:
    struct Pending {
        ErlNifMonitor mon;
        uint64_t id;
    };
    std::mutex mutex_;
    std::vector<Pending> pending_;  // guarded by mutex_
    uint64_t last_id_ = 0;
    std::unordered_map<uint64_t, RequestPtr> arrived_;
};

}  // namespace context
