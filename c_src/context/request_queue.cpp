#include "context/request_queue.hpp"

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

bool RequestQueue::push(RequestPtr request) {
    bool wake = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (closed_.load(std::memory_order_relaxed)) return false;
        items_.push_back(std::move(request));
        has_items_.store(true, std::memory_order_release);
        wake = sleeping_;
    }
    if (wake) wake_.notify_one();
    return true;
}

bool RequestQueue::spin_until_work(Clock::time_point deadline) const {
    deadline = std::min(deadline, Clock::now() + spin_);
    for (unsigned i = 0;; ++i) {
        if (has_work()) return true;
        cpu_relax();
        if ((i & 63) == 0 && Clock::now() >= deadline) return false;
    }
}

bool RequestQueue::pop_all(std::vector<RequestPtr>& out, Clock::time_point deadline) {
    spin_until_work(deadline);
    std::unique_lock<std::mutex> lock(mutex_);
    sleeping_ = true;
    auto ready = [this] {
        return !items_.empty() || woken_.load(std::memory_order_relaxed) || closed_.load(std::memory_order_relaxed);
    };
    if (deadline == Clock::time_point::max())
        wake_.wait(lock, ready);
    else
        wake_.wait_until(lock, deadline, ready);
    sleeping_ = false;
    woken_.store(false, std::memory_order_relaxed);
    out.swap(items_);
    items_.clear();
    has_items_.store(false, std::memory_order_relaxed);
    return !out.empty() || !closed_.load(std::memory_order_relaxed);
}

void RequestQueue::wake() {
    bool notify = false;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        woken_.store(true, std::memory_order_release);
        notify = sleeping_;
    }
    if (notify) wake_.notify_one();
}

void RequestQueue::close() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        closed_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
}

}  // namespace context
