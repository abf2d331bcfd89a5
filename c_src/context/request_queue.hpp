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

    // Worker thread only. Waits until work arrives or the queue closes, then moves every
    // queued request into out. Returns false when the queue is closed and empty.
    bool pop_all(std::vector<RequestPtr>& out);

    // Any thread, never blocks for long: refuses further pushes and wakes the worker, which
    // still receives the requests queued before the close.
    void close();
    bool closed() const { return closed_.load(std::memory_order_acquire); }

private:
    bool spin_until_work() const;

    const std::chrono::nanoseconds spin_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<RequestPtr> items_;      // guarded by mutex_
    bool sleeping_ = false;              // guarded by mutex_
    std::atomic<bool> has_items_{false};
    std::atomic<bool> closed_{false};
};

}  // namespace context
