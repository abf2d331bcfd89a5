// How a Poller wakes its context's thread without keeping the context alive: a Poller may
// outlive its context (a Python object of the main interpreter holds it), and a strong
// reference back made a Context -> Poller -> Context cycle. The context disarms its Waker when
// its thread exits; a wake after that does nothing. Any thread; wake() and disarm() never
// wait for more than the other's short critical section.
#pragma once

#include <memory>
#include <mutex>

namespace aio {

class Waker {
public:
    using WakeFn = void (*)(void* target);
    Waker(WakeFn fn, void* target) : fn_(fn), target_(target) {}
    Waker(const Waker&) = delete;
    Waker& operator=(const Waker&) = delete;
    ~Waker() = default;

    void wake() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (target_) fn_(target_);
    }
    // The target is going away: later wakes do nothing.
    void disarm() {
        std::lock_guard<std::mutex> lock(mutex_);
        target_ = nullptr;
    }

private:
    std::mutex mutex_;
    const WakeFn fn_;
    void* target_;  // guarded by mutex_
};

using WakerPtr = std::shared_ptr<Waker>;

}  // namespace aio
