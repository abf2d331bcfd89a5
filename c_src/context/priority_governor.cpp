#include "context/priority_governor.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "context/request_queue.hpp"

namespace context {
namespace {

// How often the governor looks while some governed thread has work, and while none has.
constexpr std::chrono::milliseconds kPeriod{20};
constexpr std::chrono::milliseconds kQuietPeriod{200};
// A thread with work that ran less than kStarvedShare of a period and waited for a CPU more
// than kStarvedDelay of it is starved (three runnable threads on two CPUs each run about two
// thirds of the time).
constexpr double kStarvedShare = 0.25;
constexpr double kStarvedDelay = 0.5;
// ... or waited for a CPU longer than it ran, and more than this part of the period.
constexpr double kWaitedLongerDelay = 0.2;
// The BEAM's normal schedulers busy more than this part of their CPU time over a period: they
// are what starves a context thread (else other context threads or other programs are).
constexpr double kBeamBusy = 0.5;
// How many periods between two looks for the BEAM's scheduler threads (they are started with
// the VM; the look reads /proc/self/task/*/comm).
constexpr int kSchedulerRescan = 250;
// Starved this many looks in a row (half a second), a thread is raised even while the BEAM is
// not busy: other programs take the CPUs, and SCHED_IDLE would leave Python nothing at all...
constexpr int kStarvedAlonePeriods = 25;
// ... unless the governed threads together had this part of the CPUs: then they starve each
// other, and raising them would only take the CPU from the BEAM's wake-ups.
constexpr double kPythonBusy = 0.5;
// Nothing competing at this many looks in a row (the BEAM not busy, and the thread hardly waiting
// for a CPU or the governed threads having their share): a raised thread goes back to SCHED_IDLE.
constexpr double kCalmDelay = 0.1;
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

// Reads /proc/self/task/TID/<file> (its start, NUL-terminated) into buf. False when it cannot.
template <size_t N>
bool read_task_file(pid_t tid, const char* file, char (&buf)[N]) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/%s", int(tid), file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, N - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    return true;
}

// The time thread tid has spent on a CPU and runnable but waiting for one (ns; the first two
// fields of /proc/self/task/TID/schedstat). False when the kernel does not say.
bool sched_times(pid_t tid, int64_t& on_cpu_ns, int64_t& waiting_ns) {
    char buf[128];
    if (!read_task_file(tid, "schedstat", buf)) return false;
    unsigned long long on_cpu = 0, waiting = 0;
    if (std::sscanf(buf, "%llu %llu", &on_cpu, &waiting) != 2) return false;
    on_cpu_ns = int64_t(on_cpu);
    waiting_ns = int64_t(waiting);
    return true;
}

// Whether thread tid is runnable now (state R in /proc/self/task/TID/stat: on a CPU or waiting
// for one). The kernel adds to the run delay of schedstat only when a waiting thread gets a CPU,
// so a thread that never gets one shows no delay at all: this is how it is seen.
bool runnable_now(pid_t tid) {
    char buf[256];
    if (!read_task_file(tid, "stat", buf)) return false;
    const char* end_of_name = std::strrchr(buf, ')');  // the name may hold spaces and parentheses
    return end_of_name && end_of_name[1] == ' ' && end_of_name[2] == 'R';
}

// The BEAM's normal scheduler threads ("1_scheduler", "2_scheduler", ...) and their CPU time
// at the last look. Governor thread only.
struct SchedulerThread {
    pid_t tid;
    int64_t last_on_cpu_ns;
};

std::vector<SchedulerThread> find_schedulers() {
    std::vector<SchedulerThread> found;
    DIR* dir = opendir("/proc/self/task");
    if (!dir) return found;
    while (dirent* entry = readdir(dir)) {  // NOLINT(concurrency-mt-unsafe): this thread's own DIR
        if (entry->d_name[0] == '.') continue;
        char path[300];  // d_name is at most 255 bytes
        std::snprintf(path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char name[32] = {};
        ssize_t n = read(fd, name, sizeof name - 1);
        close(fd);
        if (n <= 0) continue;
        const char* suffix = std::strstr(name, "_scheduler");
        if (suffix && suffix != name && (suffix[10] == '\n' || suffix[10] == 0)) {
            int64_t on_cpu = -1;
            int64_t waiting = -1;
            auto tid = static_cast<pid_t>(std::strtol(entry->d_name, nullptr, 10));
            if (sched_times(tid, on_cpu, waiting)) found.push_back({tid, on_cpu});
        }
    }
    closedir(dir);
    return found;
}

// Whether the schedulers were on their CPUs more than kBeamBusy of the period, on average.
bool beam_busy(std::vector<SchedulerThread>& schedulers, int64_t period_ns) {
    if (schedulers.empty() || period_ns <= 0) return true;  // unknown: as before, fair
    int64_t used = 0;
    for (SchedulerThread& s : schedulers) {
        int64_t on_cpu = -1;
        int64_t waiting = -1;
        if (!sched_times(s.tid, on_cpu, waiting)) continue;
        used += on_cpu - s.last_on_cpu_ns;
        s.last_on_cpu_ns = on_cpu;
    }
    return double(used) > kBeamBusy * double(period_ns) * double(schedulers.size());
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
    double python_share = 0;  // of one CPU, every governed thread together, at the last look
    const double cpus = double(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    std::vector<SchedulerThread> schedulers;
    int until_rescan = 0;
    bool busy = true;  // until the first measure: as before the schedulers were watched
    for (;;) {
        if (!g.threads) {
            g.enrolled.wait(lock, [&g] { return g.threads != nullptr; });
            last = std::chrono::steady_clock::now();
        }
        g.enrolled.wait_for(lock, any_wanted ? kPeriod : kQuietPeriod);
        auto now = std::chrono::steady_clock::now();
        int64_t period_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count();
        last = now;
        if (until_rescan-- <= 0) {
            schedulers = find_schedulers();  // their CPU time counts from this look on; busy stays
            until_rescan = kSchedulerRescan;
        } else {
            busy = beam_busy(schedulers, period_ns);
        }
        any_wanted = false;
        Look look{busy, python_share < kPythonBusy * double(cpus)};
        python_share = 0;
        for (GovernedThread* t = g.threads; t; t = t->next_) {
            if (look_at(*t, period_ns, look, python_share)) any_wanted = true;
        }
    }
    return nullptr;
}

bool PriorityGovernor::look_at(GovernedThread& t, int64_t period_ns, const Look& look, double& python_share) {
    int64_t on_cpu = -1;
    int64_t waited = -1;
    bool known = sched_times(t.tid_, on_cpu, waited) && t.last_on_cpu_ns_ >= 0 && period_ns > 0;
    bool wanted = t.busy_.load(std::memory_order_relaxed) || (t.queue_ && t.queue_->has_pending());
    // Starved: it got little CPU and was runnable, waiting for one, most of the period (a thread
    // waiting for the GIL or for a callback is not runnable). Unknown counts as starved: the
    // thread then runs at normal priority, which is fair.
    double share = known ? double(on_cpu - t.last_on_cpu_ns_) / double(period_ns) : 0.0;
    double delay = known ? double(waited - t.last_delay_ns_) / double(period_ns) : 1.0;
    // Runnable at this look and the last one with little CPU between them is starved as well
    // (the run delay shows only once the thread gets a CPU, see runnable_now).
    bool runnable = runnable_now(t.tid_);
    if (!t.raised_) {
        // Or it waited for a CPU longer than it ran (a thread serving short requests one after
        // another gets some CPU each time, but only after waiting for it).
        bool starved = (wanted || t.wanted_) &&
                       ((share < kStarvedShare && (delay > kStarvedDelay || (runnable && t.was_runnable_))) ||
                        (delay > share && delay > kWaitedLongerDelay));
        t.starved_periods_ = starved ? t.starved_periods_ + 1 : 0;
        bool raise = look.beam_busy || (look.others_starve && t.starved_periods_ >= kStarvedAlonePeriods);
        if (starved && raise && set_policy(t.thread_, SCHED_OTHER)) {
            t.raised_ = true;
            t.calm_periods_ = 0;
            t.starved_periods_ = 0;
        }
    } else {
        // Lowered once the BEAM has not been busy for a while. Not on the thread's own run delay:
        // a raised thread with short bursts hardly waits while the BEAM still is busy, and
        // lowering it then starved it again at once (sequential calls ran at 1% of their speed).
        // Raised because other programs starved it, it stays raised while they still do (it
        // keeps waiting for a CPU); lowered, it would starve again.
        bool competed = look.beam_busy || (look.others_starve && delay > kCalmDelay);
        t.calm_periods_ = competed ? 0 : t.calm_periods_ + 1;
        if (t.calm_periods_ >= kCalmPeriods && set_policy(t.thread_, SCHED_IDLE)) t.raised_ = false;
    }
    if (known) python_share += share;
    t.wanted_ = wanted;
    t.was_runnable_ = runnable;
    t.last_on_cpu_ns_ = on_cpu;
    t.last_delay_ns_ = waited;
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
    t->tid_ = gettid();
    if (!g.started || !set_policy(t->thread_, SCHED_IDLE)) {
        delete t;
        return nullptr;
    }
    if (!sched_times(t->tid_, t->last_on_cpu_ns_, t->last_delay_ns_)) t->last_on_cpu_ns_ = -1;
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
