#include "context/priority_governor.hpp"

#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "context/request_queue.hpp"

namespace context {
namespace {

// How often the governor looks while some governed thread has work, and while none has.
constexpr std::chrono::milliseconds kPeriod{20};
constexpr std::chrono::milliseconds kQuietPeriod{200};
// Below this share of a CPU over a period with work all along, a thread is starved.
constexpr double kStarvedShare = 0.25;
// Above this share over kCalmPeriods periods in a row, nothing competes with it any more.
constexpr double kCalmShare = 0.9;
constexpr int kCalmPeriods = 5;

// Never destroyed: the governor thread waits on them until the process exits (destroying a
// condition variable with a waiter blocks exit()).
struct Governor {
    std::mutex mutex;
    std::condition_variable enrolled;
    GovernedThread* threads = nullptr;  // guarded by mutex
    bool started = false;               // guarded by mutex
};
Governor& governor() {
    static auto* g = new Governor();
    return *g;
}

int64_t cpu_ns(clockid_t clock) {
    timespec ts{};
    if (clock_gettime(clock, &ts) != 0) return -1;
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool set_policy(pthread_t thread, int policy) {
    sched_param param{};
    return pthread_setschedparam(thread, policy, &param) == 0;
}

}  // namespace

void* PriorityGovernor::governor_main(void*) {
    pthread_setname_np(pthread_self(), "py_governor");
    Governor& g = governor();
    auto last = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(g.mutex);
    bool any_wanted = false;
    for (;;) {
        if (!g.threads) {
            g.enrolled.wait(lock, [&g] { return g.threads != nullptr; });
            last = std::chrono::steady_clock::now();
        }
        g.enrolled.wait_for(lock, any_wanted ? kPeriod : kQuietPeriod);
        auto now = std::chrono::steady_clock::now();
        int64_t period_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count();
        last = now;
        any_wanted = false;
        for (GovernedThread* t = g.threads; t; t = t->next_) {
            if (look_at(*t, period_ns)) any_wanted = true;
        }
    }
    return nullptr;
}

bool PriorityGovernor::look_at(GovernedThread& t, int64_t period_ns) {
    int64_t cpu = cpu_ns(t.cpu_clock_);
    uint64_t batches = t.batches_.load(std::memory_order_relaxed);
    bool wanted = t.busy_.load(std::memory_order_relaxed) || (t.queue_ && t.queue_->has_pending());
    // Work at both looks and no batch finished in between: it wanted the CPU all along.
    bool all_along = wanted && t.wanted_ && batches == t.last_batches_;
    double share =
        (cpu >= 0 && t.last_cpu_ns_ >= 0 && period_ns > 0) ? double(cpu - t.last_cpu_ns_) / double(period_ns) : 1.0;
    if (!t.raised_) {
        if (all_along && share < kStarvedShare && set_policy(t.thread_, SCHED_OTHER)) {
            t.raised_ = true;
            t.calm_periods_ = 0;
        }
    } else if (all_along) {
        t.calm_periods_ = share > kCalmShare ? t.calm_periods_ + 1 : 0;
        if (t.calm_periods_ >= kCalmPeriods && set_policy(t.thread_, SCHED_IDLE)) t.raised_ = false;
    }
    t.wanted_ = wanted;
    t.last_batches_ = batches;
    t.last_cpu_ns_ = cpu;
    return wanted;
}

GovernedThread* PriorityGovernor::enroll(const RequestQueue& queue) {
    auto* t = new GovernedThread();
    t->thread_ = pthread_self();
    t->queue_ = &queue;
    Governor& g = governor();
    std::lock_guard<std::mutex> lock(g.mutex);
    if (!g.started) {
        // Started before this thread turns to SCHED_IDLE: a new thread inherits the policy.
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t governor{};
        g.started = pthread_create(&governor, &attr, &PriorityGovernor::governor_main, nullptr) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!g.started || pthread_getcpuclockid(t->thread_, &t->cpu_clock_) != 0 || !set_policy(t->thread_, SCHED_IDLE)) {
        delete t;
        return nullptr;
    }
    t->last_cpu_ns_ = cpu_ns(t->cpu_clock_);
    t->next_ = g.threads;
    g.threads = t;
    g.enrolled.notify_one();
    return t;
}

void PriorityGovernor::leave(GovernedThread* thread) {
    if (!thread) return;
    Governor& g = governor();
    std::lock_guard<std::mutex> lock(g.mutex);
    for (GovernedThread** p = &g.threads; *p; p = &(*p)->next_) {
        if (*p == thread) {
            *p = thread->next_;
            break;
        }
    }
    delete thread;
}

}  // namespace context
