// thread_priority `auto`: a context thread runs at SCHED_IDLE, so the BEAM's schedulers take
// the CPU from it at once when they wake, until the BEAM starves it: a thread with work that ran
// less than a quarter of a period and waited for a CPU over half of it (the kernel's run delay),
// while the BEAM's schedulers were busy more than half of the period, is raised to normal
// priority, where it gets a fair share; once the BEAM's schedulers have not been busy for 5
// looks in a row, it goes back to SCHED_IDLE. Python threads that only compete with each other (more CPU-bound contexts than
// cores, the schedulers mostly asleep) stay at SCHED_IDLE, so the BEAM still wakes at once; a
// thread starved half a second by other programs (the governed threads together having less
// than half the CPUs) is raised too. A thread waiting for the GIL or for an Erlang callback is not runnable,
// so it is not starved. One governor thread, started with the first
// such context, watches every one of them.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace context {

class RequestQueue;

// Shared between its context thread (busy flags) and the governor thread (the rest, under the
// governor's mutex).
class GovernedThread {
public:
    // Context thread: before and after running a batch of requests.
    void begin_batch() { busy_.store(true, std::memory_order_relaxed); }
    void end_batch() { busy_.store(false, std::memory_order_relaxed); }
    // Context thread: the flag RequestQueue::pop_all sets before it takes requests, so that a
    // thread starved between taking them and begin_batch() still counts as having work.
    std::atomic<bool>* busy_flag() { return &busy_; }

private:
    friend class PriorityGovernor;
    pthread_t thread_{};
    pid_t tid_ = 0;
    const RequestQueue* queue_ = nullptr;
    std::atomic<bool> busy_{false};
    // Governor only.
    bool raised_ = false;
    bool wanted_ = false;  // busy or with requests waiting at the last look
    int64_t last_on_cpu_ns_ = -1;
    int64_t last_delay_ns_ = -1;
    int calm_periods_ = 0;
    int starved_periods_ = 0;    // starved at this many looks in a row
    bool was_runnable_ = false;  // runnable at the last look
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
    struct Look {
        bool beam_busy;      // the BEAM's schedulers were busy (see beam_busy)
        bool others_starve;  // the governed threads together had less than half the CPUs
    };
    // Governor thread, its mutex held: one look at t after period_ns; adds t's share of one CPU
    // over the period to python_share. True when t had work.
    static bool look_at(GovernedThread& t, int64_t period_ns, const Look& look, double& python_share);
};

}  // namespace context
