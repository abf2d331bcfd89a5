#include "context/request_queue.hpp"

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

bool RequestQueue::spin_until_work() const {
    auto deadline = std::chrono::steady_clock::now() + spin_;
    for (unsigned i = 0;; ++i) {
        if (has_items_.load(std::memory_order_acquire) || closed_.load(std::memory_order_acquire)) return true;
        cpu_relax();
        if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) return false;
    }
}

bool RequestQueue::pop_all(std::vector<RequestPtr>& out) {
    spin_until_work();
    std::unique_lock<std::mutex> lock(mutex_);
    sleeping_ = true;
    wake_.wait(lock, [this] { return !items_.empty() || closed_.load(std::memory_order_relaxed); });
    sleeping_ = false;
    out.swap(items_);
    items_.clear();
    has_items_.store(false, std::memory_order_relaxed);
    return !out.empty() || !closed_.load(std::memory_order_relaxed);
}

void RequestQueue::close() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        closed_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
}

}  // namespace context
