#include "context/request_queue.hpp"

#include <sched.h>

#include <algorithm>

namespace context {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

}  // namespace

// Sequentially consistent operations on head_, woken_ and sleeping_ order a push against the
// worker going to sleep: either the pusher sees sleeping_ set and wakes the worker (under the
// mutex, so not before it waits), or the worker's check after setting sleeping_ sees the push.

RequestQueue::~RequestQueue() {
    std::vector<RequestPtr> left;
    take_all(left);  // their references go with `left`
}

RequestQueue::Pushed RequestQueue::push(RequestPtr request) {
    Request* node = request.get();
    uintptr_t head = head_.load();
    do {
        if (head & kClosed) return Pushed::Refused;
        node->queue_next_ = reinterpret_cast<Request*>(head);
    } while (!head_.compare_exchange_weak(head, reinterpret_cast<uintptr_t>(node)));
    request.release();  // the list holds the reference now
    if (sleeping_.load()) {
        wake_sleeper();
        return Pushed::Queued;
    }
    return head == 0 && spinning_.load(std::memory_order_relaxed) ? Pushed::ToSpinner : Pushed::Queued;
}

void RequestQueue::wake() {
    woken_.store(true);
    if (sleeping_.load()) wake_sleeper();
}

void RequestQueue::close() {
    head_.fetch_or(kClosed);
    wake_sleeper();
}

void RequestQueue::wake_sleeper() {
    if (sleeping_on_descriptors_.load()) {
        fd_waiter_.load()->wake();
        return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_one();
}

namespace {
// Between two clock readings of a running spin (every 64 pauses, a few µs) a longer gap means
// the thread was preempted.
constexpr std::chrono::microseconds kPreemptedGap{50};
// Spins shorter than this are not worth starting.
constexpr std::chrono::microseconds kMinSpin{2};
}  // namespace

bool RequestQueue::spin_until_work(Clock::time_point deadline, aio::FdWaiter* waiter) {
    if (spin_budget_ < kMinSpin) return has_work();
    auto last = Clock::now();
    deadline = std::min(deadline, last + spin_budget_);
    spinning_.store(true, std::memory_order_relaxed);
    bool found = waiter && waiter->poll_ready();  // what is ready already, before any pause
    bool preempted = false;
    for (unsigned i = 1; !found; ++i) {
        if ((found = has_work())) break;
        cpu_relax();
        if ((i & 63) == 0) {
            if (waiter && waiter->poll_ready()) {
                found = true;  // a descriptor is ready: its loop has work
                break;
            }
            auto now = Clock::now();
            if (now - last > kPreemptedGap) {
                preempted = true;
                break;
            }
            if (now >= deadline) break;
            last = now;
        }
    }
    spinning_.store(false, std::memory_order_relaxed);
    // A thread at SCHED_IDLE gives the CPU up to any other thread that wants it, so being
    // preempted there says nothing about the cost of its spin: shortening the spin only made it
    // sleep between requests and each request pay a wake-up (sequential calls at auto: medians of
    // 127-193K/s against 284-332K/s without this rule, quiet, interleaved runs).
    if (preempted && sched_getscheduler(0) != SCHED_IDLE) spin_budget_ /= 4;
    return found;
}

void RequestQueue::sleep_until_work(Clock::time_point deadline) {
    auto start = Clock::now();
    {
        std::unique_lock<std::mutex> lock(mutex_);
        sleeping_.store(true);
        auto ready = [this] { return has_work(); };
        if (deadline == Clock::time_point::max()) wake_.wait(lock, ready);
        else wake_.wait_until(lock, deadline, ready);
        sleeping_.store(false);
    }
    // Work that came sooner than a full spin would have ended: spinning would have found it.
    if (spin_budget_ < spin_ && head_.load(std::memory_order_relaxed) != 0 && Clock::now() - start < spin_)
        spin_budget_ = std::min(spin_, spin_budget_ + spin_ / 8);
}

void RequestQueue::take_all(std::vector<RequestPtr>& out) {
    uintptr_t head = head_.load();
    while (!head_.compare_exchange_weak(head, head & kClosed)) {}
    size_t first = out.size();
    for (auto* node = reinterpret_cast<Request*>(head & ~kClosed); node;) {
        Request* next = node->queue_next_;
        node->queue_next_ = nullptr;
        out.push_back(RequestPtr::adopt(node));
        node = next;
    }
    std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());  // pushed last, listed first
}

// The worker sleeps in the epoll set; a push (or wake) that sees sleeping_ set writes the
// waiter's eventfd, which ends the wait even when written before it began.
void RequestQueue::sleep_on_descriptors(aio::FdWaiter& waiter, Clock::time_point deadline) {
    sleeping_on_descriptors_.store(true);
    sleeping_.store(true);
    if (!has_work()) waiter.wait(deadline);
    sleeping_.store(false);
    sleeping_on_descriptors_.store(false);
}

bool RequestQueue::pop_all(std::vector<RequestPtr>& out, Clock::time_point deadline, std::atomic<bool>* taking) {
    aio::FdWaiter* waiter = fd_waiter_.load(std::memory_order_relaxed);
    if (waiter && !waiter->has_watches()) waiter = nullptr;
    if (!spin_until_work(deadline, waiter) && Clock::now() < deadline) {
        if (waiter) sleep_on_descriptors(*waiter, deadline);
        else sleep_until_work(deadline);
    }
    woken_.store(false);
    if (taking) taking->store(true, std::memory_order_seq_cst);
    take_all(out);
    return !out.empty() || !closed();
}

}  // namespace context
