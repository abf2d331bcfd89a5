// The queue between calling processes (producers, on scheduler threads) and one context's
// worker thread (the only consumer). Pushing never blocks and takes no lock: a request is
// linked onto an atomic list; the worker takes the whole list at once. The worker spins for a
// bounded time before sleeping, because a sequential caller's next request usually arrives
// within microseconds; only a push that finds it asleep takes the mutex, to wake it.
//
// The spin adapts to a contended CPU: a spin during which the worker's thread was preempted
// (a gap in its own clock readings) cuts the next spins to a quarter, down to none; a request
// that arrives while the worker sleeps, sooner than a full spin would have lasted, lengthens
// them again. On a busy machine a spinning thread holds a CPU the BEAM's schedulers (and the
// caller) need, and the kernel treats it as CPU-bound; a sleeping one is woken at once. A
// thread at SCHED_IDLE (thread_priority auto until raised, idle) keeps its spin: it holds no
// CPU anyone else wants.
//
// While the context's event loops watch descriptors (an aio::FdWaiter with watches), the spin
// also looks at them (a non-blocking epoll_wait every few microseconds) and the worker sleeps
// in the waiter's epoll set instead of the condition variable, so that a ready descriptor
// wakes it as directly as a request does.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "aio/fd_waiter.hpp"
#include "context/request.hpp"

namespace context {

class RequestQueue {
public:
    explicit RequestQueue(std::chrono::nanoseconds spin) : spin_(spin), spin_budget_(spin) {}
    RequestQueue(const RequestQueue&) = delete;
    RequestQueue& operator=(const RequestQueue&) = delete;
    ~RequestQueue();

    // Any thread. Refused once the queue is closed (the request is not queued). ToSpinner: the
    // queue was empty and the worker awake and idle, so the request starts within microseconds.
    enum class Pushed { Refused, Queued, ToSpinner };
    Pushed push(RequestPtr request);

    using Clock = std::chrono::steady_clock;

    // Worker thread only. Waits until work arrives, the queue closes, wake() is called or the
    // deadline passes, then moves every queued request into out (possibly none), oldest first.
    // Returns false when the queue is closed and empty. taking, when given, is set before the
    // requests leave the queue: whoever reads it and has_pending() sees the work in one of them.
    bool pop_all(std::vector<RequestPtr>& out, Clock::time_point deadline = Clock::time_point::max(),
                 std::atomic<bool>* taking = nullptr);

    // Any thread (a stopping context's interrupter): moves every queued request into out, as
    // pop_all does without waiting. Each request goes to exactly one of the takers.
    void take_queued(std::vector<RequestPtr>& out) { take_all(out); }

    // Any thread: makes the worker's current (or next) pop_all return, so that it looks at
    // events that are not requests (ready file descriptors of an event loop).
    void wake();

    // Any thread, never blocks for long: refuses further pushes and wakes the worker, which
    // still receives the requests queued before the close.
    void close();
    bool closed() const { return head_.load(std::memory_order_acquire) & kClosed; }

    // Worker thread, once: the epoll set to sleep on while it watches descriptors. It must
    // outlive the queue's last push (the context holds it).
    void attach_fd_waiter(aio::FdWaiter* waiter) { fd_waiter_.store(waiter); }

    // Any thread: whether requests are queued (a hint: it may change at once).
    bool has_pending() const { return (head_.load(std::memory_order_relaxed) & ~kClosed) != 0; }

private:
    // head_ holds the most recently pushed request (each link holds one reference), with bit 0
    // set once the queue is closed.
    static constexpr uintptr_t kClosed = 1;

    bool has_work() const { return head_.load() != 0 || woken_.load(); }
    bool spin_until_work(Clock::time_point deadline, aio::FdWaiter* waiter);
    void sleep_until_work(Clock::time_point deadline);
    void sleep_on_descriptors(aio::FdWaiter& waiter, Clock::time_point deadline);
    void take_all(std::vector<RequestPtr>& out);
    void wake_sleeper();

    const std::chrono::nanoseconds spin_;   // the longest spin
    std::chrono::nanoseconds spin_budget_;  // worker only: the next spin's length (adaptive)
    std::atomic<uintptr_t> head_{0};
    std::atomic<bool> woken_{false};
    std::atomic<bool> sleeping_{false};
    std::atomic<bool> spinning_{false};
    std::atomic<bool> sleeping_on_descriptors_{false};  // set before sleeping_, cleared after
    std::atomic<aio::FdWaiter*> fd_waiter_{nullptr};
    std::mutex mutex_;  // only for sleeping and waking
    std::condition_variable wake_;
};

}  // namespace context
