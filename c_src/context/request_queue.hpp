// The queue between calling processes (producers, on scheduler threads) and one context's
// worker thread (the only consumer). Producers never block on the worker: push takes a short
// mutex and signals only when the worker sleeps. The worker spins for a bounded time before
// sleeping, because a sequential caller's next request usually arrives within microseconds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "context/request.hpp"

namespace context {

class RequestQueue {
public:
    explicit RequestQueue(std::chrono::nanoseconds spin) : spin_(spin) {}

    // Any thread. False (and the request is not queued) once the queue is closed.
    bool push(RequestPtr request);

    using Clock = std::chrono::steady_clock;

    // Worker thread only. Waits until work arrives, the queue closes, wake() is called or the
    // deadline passes, then moves every queued request into out (possibly none). Returns false
    // when the queue is closed and empty.
    bool pop_all(std::vector<RequestPtr>& out, Clock::time_point deadline = Clock::time_point::max());

    // Any thread: makes the worker's current (or next) pop_all return, so that it looks at
    // events that are not requests (ready file descriptors of an event loop).
    void wake();

    // Any thread, never blocks for long: refuses further pushes and wakes the worker, which
    // still receives the requests queued before the close.
    void close();
    bool closed() const { return closed_.load(std::memory_order_acquire); }

private:
    bool spin_until_work(Clock::time_point deadline) const;
    bool has_work() const {
        return has_items_.load(std::memory_order_acquire) || woken_.load(std::memory_order_acquire) ||
               closed_.load(std::memory_order_acquire);
    }

    const std::chrono::nanoseconds spin_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<RequestPtr> items_;      // guarded by mutex_
    bool sleeping_ = false;              // guarded by mutex_
    std::atomic<bool> has_items_{false};
    std::atomic<bool> woken_{false};
    std::atomic<bool> closed_{false};
};

}  // namespace context
