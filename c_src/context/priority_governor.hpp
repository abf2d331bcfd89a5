// thread_priority `auto`: a context thread runs at SCHED_IDLE, so the BEAM's schedulers take
// the CPU from it at once when they wake, until it is starved: a thread with work that got less
// than a quarter of the CPU over a period (another thread of normal priority, a busy scheduler
// or another program, wanted it) is raised to normal priority, where it gets a fair share; once
// it gets nearly all of a CPU again for a while, it goes back to SCHED_IDLE. One governor
// thread, started with the first such context, watches every one of them.
#pragma once

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

namespace context {

class RequestQueue;

// Shared between its context thread (busy flags) and the governor thread (the rest, under the
// governor's mutex).
class GovernedThread {
public:
    // Context thread: before and after running a batch of requests.
    void begin_batch() {
        batches_.fetch_add(1, std::memory_order_relaxed);
        busy_.store(true, std::memory_order_relaxed);
    }
    void end_batch() { busy_.store(false, std::memory_order_relaxed); }

private:
    friend class PriorityGovernor;
    pthread_t thread_{};
    clockid_t cpu_clock_{};
    const RequestQueue* queue_ = nullptr;
    std::atomic<bool> busy_{false};
    std::atomic<uint64_t> batches_{0};
    // Governor only.
    bool raised_ = false;
    bool wanted_ = false;  // busy or with requests waiting at the last look
    uint64_t last_batches_ = 0;
    int64_t last_cpu_ns_ = 0;
    int calm_periods_ = 0;
    GovernedThread* next_ = nullptr;
};

class PriorityGovernor {
public:
    // Context thread, about itself: switches it to SCHED_IDLE and puts it under watch. Returns
    // nullptr (and leaves the priority as it is) when that is refused.
    static GovernedThread* enroll(const RequestQueue& queue);
    // Context thread, about itself, before it exits.
    static void leave(GovernedThread* thread);

private:
    static void* governor_main(void*);
    // Governor thread, its mutex held: one look at t after period_ns. True when t had work.
    static bool look_at(GovernedThread& t, int64_t period_ns);
};

}  // namespace context
