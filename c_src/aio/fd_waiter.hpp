// The context thread's own wait on the descriptors its event loops armed: an epoll set that
// the context's request queue sleeps on (with an eventfd that wakes it for requests), so that
// readiness reaches a busy loop with no trip through the BEAM (no poll thread, no owner
// process, no fd_ready NIF). A sleeping context costs no CPU either way: it blocks in
// epoll_wait until a descriptor, a request or its next timer is due.
//
// One per context, made when the first loop is created on it; shared by the context and its
// pollers (a poller may outlive the context). Modes are armed one-shot (EPOLLONESHOT), like
// enif_select: a mode that fired stays quiet until its loop has consumed it and arms it again;
// a persistent watch's modes are level-triggered and stay armed (no modes: one-shot, so that an
// error or hang-up of a paused descriptor is reported once, not at every wait).
// Precondition: wait(), arm() on the context's thread; wake() and remove() on any thread
// (remove: also the thread that drops a closed loop's poller).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "erl/resource.hpp"

namespace aio {

struct FdWatch;

class FdWaiter {
public:
    using Clock = std::chrono::steady_clock;

    // A waiter, or nullptr with errno set (no descriptor left).
    static std::shared_ptr<FdWaiter> make();
    FdWaiter(int epoll_fd, int event_fd);
    FdWaiter(const FdWaiter&) = delete;
    FdWaiter& operator=(const FdWaiter&) = delete;
    ~FdWaiter();

    // Context thread: watches w's descriptor for modes (kRead | kWrite, 0: none) until one
    // fires. Returns 0 or an errno value (EPERM: a descriptor epoll cannot watch, a regular file).
    int arm(const erl::ResourcePtr<FdWatch>& w, int modes);
    // Any thread: stops watching w (before its descriptor is closed).
    void remove(FdWatch& w);

    // Any thread: whether any descriptor is watched (the queue then sleeps in wait()).
    bool has_watches() const { return watched_.load(std::memory_order_acquire) != 0; }

    // Context thread: sleeps until a watched descriptor is ready, wake() is called or the
    // deadline passes; ready descriptors are handed to their pollers (Poller::on_ready).
    // Returns how many were.
    int wait(Clock::time_point deadline);
    // Context thread: collects readiness without waiting, unless the last wait ended less than
    // kFreshFor ago: a loop that never sleeps runs many iterations between two system calls,
    // and a descriptor waits at most that long.
    void poll_unless_fresh();
    static constexpr std::chrono::microseconds kFreshFor{50};

    // Context thread: collects readiness without waiting; true when some arrived.
    bool poll_ready() { return wait(Clock::time_point::min()) > 0; }

    // Any thread: ends the current (or next) wait.
    void wake() const;

private:
    // Context thread: hands the modes of w that bits (epoll's) report to its poller; true when
    // some were wanted.
    bool deliver(const erl::ResourcePtr<FdWatch>& w, uint32_t bits);

    const int epoll_fd_;
    const int event_fd_;
    std::mutex mutex_;
    // The watches in the epoll set by key (epoll_event.data): a ready event finds its watch
    // here, never through an address another thread may have released.
    std::unordered_map<uint64_t, erl::ResourcePtr<FdWatch>> watches_;  // guarded by mutex_
    uint64_t next_key_ = 1;                                            // guarded by mutex_
    std::atomic<size_t> watched_{0};
    Clock::time_point last_wait_end_{};  // context thread
};

using FdWaiterPtr = std::shared_ptr<FdWaiter>;

}  // namespace aio
