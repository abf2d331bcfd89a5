// File-descriptor readiness for an event loop, driven by the BEAM's own poller (enif_select).
//
// A Poller belongs to one selector of one event loop on one context. Its registrations are
// made on the context's thread and armed in the context's FdWaiter (aio/fd_waiter.hpp), the
// epoll set the context's thread sleeps on: readiness reaches the loop with no BEAM hop. The
// fd_ready NIF still hands in a notification from elsewhere (any thread: queued, the context
// woken).
//
// Each registration watches a dup() of the caller's descriptor, so the loop may close its own
// descriptor at any time (asyncio closes sockets right after unregistering them): the dup is
// closed when the watch is removed. Arming is one-shot, so a mode that fired is armed again
// before the loop next waits; a persistent watch (the reactor's connections) stays armed
// (level-triggered): no re-arming per event.
#pragma once

#include <erl_nif.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aio/fd_waiter.hpp"
#include "aio/waker.hpp"
#include "erl/resource.hpp"

namespace aio {

class Poller;

// Readiness bits, the same values as Python's selectors.EVENT_READ / EVENT_WRITE.
inline constexpr int kRead = 1;
inline constexpr int kWrite = 2;

// One registered descriptor. Fields other than `stopped` belong to the context's thread.
struct FdWatch {
    FdWatch(erl::ResourcePtr<Poller> owner, int fd, int dup_fd, bool persistent)
        : poller(std::move(owner)), fd(fd), dup_fd(dup_fd), persistent(persistent) {}
    FdWatch(const FdWatch&) = delete;
    FdWatch& operator=(const FdWatch&) = delete;
    ~FdWatch();

    erl::ResourcePtr<Poller> poller;
    const int fd;             // the loop's descriptor number (the selector's key)
    int dup_fd;               // what the FdWaiter watches; closed when the watch is removed
    const bool persistent;    // level-triggered: a mode that fired stays armed
    int wanted = 0;           // modes the loop wants
    int armed = 0;            // modes armed in the FdWaiter that have not fired yet
    uint64_t waiter_key = 0;  // its key in the FdWaiter (0: not in its epoll set)
    bool queued_for_arming = false;
    std::atomic<bool> stopped{false};  // unregistered: late notifications are dropped
};

using FdWatchResource = erl::Resource<FdWatch>;
using FdWatchPtr = erl::ResourcePtr<FdWatch>;

class Poller {
public:
    // Precondition: on the context's thread. waker: wakes that thread (not a reference to the
    // context: see aio/waker.hpp). waiter: the epoll set that thread sleeps on.
    Poller(WakerPtr waker, FdWaiterPtr waiter);
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;
    ~Poller();

    // Context thread. Return 0 or an errno value (EEXIST, ENOENT, EBADF...). persistent: see
    // FdWatch (the loop then ignores, rather than waits for, a readiness it no longer needs).
    int add(int fd, int events, erl::ResourcePtr<Poller> self, bool persistent = false);
    int modify(int fd, int events);
    int remove(int fd);
    // Context thread: stops watching every descriptor (the selector is closing).
    void remove_all();

    // Context thread: hands the modes waiting to be armed to enif_select.
    void arm_pending();
    // Context thread: takes the events that arrived, as (fd, mask) pairs, and queues the
    // modes that fired for re-arming.
    std::vector<std::pair<int, int>> take_ready();
    bool has_ready() const { return has_ready_.load(std::memory_order_acquire); }
    // Context thread: collects the readiness of the context's descriptors without waiting (a
    // loop that never sleeps still sees its I/O; see FdWaiter::poll_unless_fresh).
    void poll_now() { waiter_->poll_unless_fresh(); }
    // Context thread: the same, always; true when this poller has readiness now.
    bool poll_ready() {
        (void)waiter_->poll_ready();
        return has_ready();
    }

    // Any thread: a notification for watch w (from the fd_ready NIF, or the FdWaiter on the
    // context's thread, which needs no wake-up: wake false).
    void on_ready(FdWatch* w, int mode, bool wake = true);

    // Any thread: OS signal signum (1..63) reached a loop that asked for it (aio/signal_router).
    void on_signal(int signum);
    // Context thread: the signals that arrived since the last call, as a bit set (bit n: signal n).
    uint64_t take_signals() { return pending_signals_.exchange(0, std::memory_order_acq_rel); }

    // Context thread: the hosted loop has work (see Context::hosted_due).
    void request_step() { step_requested_.store(true, std::memory_order_release); }
    bool take_step_request() { return step_requested_.exchange(false, std::memory_order_acq_rel); }
    bool step_requested() const { return step_requested_.load(std::memory_order_acquire); }

private:
    WakerPtr waker_;
    FdWaiterPtr waiter_;
    std::unordered_map<int, FdWatchPtr> watches_;  // context thread
    std::vector<FdWatchPtr> to_arm_;               // context thread

    mutable std::mutex ready_mutex_;
    std::vector<std::pair<FdWatchPtr, int>> ready_;  // guarded by ready_mutex_
    std::atomic<bool> has_ready_{false};
    std::atomic<bool> step_requested_{false};
    std::atomic<uint64_t> pending_signals_{0};
};

using PollerResource = erl::Resource<Poller>;
using PollerPtr = erl::ResourcePtr<Poller>;

// Resource types, opened at load.
bool open_resources(ErlNifEnv* env);

}  // namespace aio
