// What one context did: request counts, queue-wait and run-time histograms, and (owngil mode)
// the memory of its interpreter. Read by py_context:stats/1 and py:stats/0.
//
// Threads: most figures have one writer, the context thread, which updates them with a
// relaxed load and store (no locked instruction on the request path). The few written
// elsewhere use relaxed fetch_add: submissions (scheduler threads, in a cache line of their
// own), timeouts and abandoned requests (the cancelling thread). Any thread reads them with
// relaxed loads: each figure is exact, a set of them is not one atomic snapshot.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace context {

// A cheap monotonic tick count for request timings: on x86-64 the time-stamp counter (invariant
// on CPUs of the last fifteen years: 10-14 ns to read on this project's machine (a VM) against 18-24 ns
// for steady_clock::now), on aarch64 the virtual counter, elsewhere steady_clock in ns.
// TickRate converts ticks to nanoseconds. Any thread.
inline uint64_t ticks_now() {
#if defined(__x86_64__)
    return __rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    asm volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    return uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
#endif
}

// Nanoseconds per tick, measured against steady_clock over the time since the library loaded
// (start() at load; the ratio gets more exact as time passes). Any thread.
class TickRate {
public:
    static void start() {
        start_ticks_.store(ticks_now(), std::memory_order_relaxed);
        start_ns_.store(steady_ns(), std::memory_order_relaxed);
    }
    static double ns_per_tick() {
        uint64_t dt = ticks_now() - start_ticks_.load(std::memory_order_relaxed);
        uint64_t dns = steady_ns() - start_ns_.load(std::memory_order_relaxed);
        return dt == 0 || dns == 0 ? 1.0 : double(dns) / double(dt);
    }

private:
    static uint64_t steady_ns() {
        return uint64_t(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count());
    }
    static inline std::atomic<uint64_t> start_ticks_{0};
    static inline std::atomic<uint64_t> start_ns_{0};
};

// Whether requests are timed (queue wait and run time): the app env `request_timings`, default
// on. Off, a request reads no clock and records no duration; its counters are still kept. Any
// thread (a relaxed flag: a request that overlaps the switch may be timed either way).
class RequestTimings {
public:
    static bool on() { return on_.load(std::memory_order_relaxed); }
    static void set(bool on) { on_.store(on, std::memory_order_relaxed); }

private:
    static inline std::atomic<bool> on_{true};
};

// Durations in ticks (see ticks_now) counted in buckets a quarter of a power of two wide: bucket (k, j)
// holds [2^k (1 + j/4), 2^k (1 + (j+1)/4)), so a percentile read from it is at most 25 % above
// the true value. 256 counters, no allocation. One writer (see above); any reader.
class LatencyHistogram {
public:
    static constexpr int kSubBits = 2;
    static constexpr int kBuckets = 64 << kSubBits;

    void record(uint64_t ticks) {
        std::atomic<uint64_t>& bucket = buckets_[size_t(index(ticks))];
        bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (ticks > max_.load(std::memory_order_relaxed)) max_.store(ticks, std::memory_order_relaxed);
    }
    uint64_t count(int index) const { return buckets_[size_t(index)].load(std::memory_order_relaxed); }
    uint64_t max() const { return max_.load(std::memory_order_relaxed); }

    static int index(uint64_t ns) {
        if (ns < (uint64_t(1) << kSubBits)) return int(ns);  // 0..3: exact
        int k = 63 - __builtin_clzll(ns);
        int sub = int((ns >> (k - kSubBits)) & ((1U << kSubBits) - 1));
        return (k << kSubBits) | sub;
    }
    // The largest duration (in ticks) that falls in bucket `index`.
    static uint64_t upper_bound(int index) {
        if (index < (1 << kSubBits)) return uint64_t(index);
        int k = index >> kSubBits;
        auto sub = uint64_t(index & ((1 << kSubBits) - 1));
        unsigned __int128 top = (unsigned __int128)(1) << k;
        top += (sub + 1) << (k - kSubBits);
        return top > UINT64_MAX ? UINT64_MAX : uint64_t(top - 1);
    }

private:
    std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
    std::atomic<uint64_t> max_{0};
};

class ContextStats {
public:
    // Scheduler thread: a request was queued.
    void submitted() { submitted_.fetch_add(1, std::memory_order_relaxed); }

    // Context thread: a queued request was taken off the queue; `started`: its code runs now
    // (false: it had been cancelled, or the context is stopping). Times in ticks_now(); 0 for
    // either: the request was not timed (RequestTimings off when it was queued or taken).
    void taken(uint64_t submitted_at, uint64_t now, bool started) {
        bump(dequeued_);
        if (!started || submitted_at == 0 || now == 0) return;
        queue_wait_.record(elapsed(submitted_at, now));
    }
    // Context thread: a started request's code ran from `start` to `end` (ticks_now(); `start`
    // 0: not timed); `failed`: it ended with an exception.
    void finished(uint64_t start, uint64_t end, bool failed) {
        if (start != 0) run_time_.record(elapsed(start, end));
        bump(served_);
        if (failed) bump(errors_);
    }
    // Context thread: how many requests' code is on its stack now (nested ones included).
    void set_running(size_t depth) { running_.store(depth, std::memory_order_relaxed); }
    // Context thread: a Python call of erlang.call was sent to the calling process.
    void callback() { bump(callbacks_); }
    // Context thread: the interpreter's pymalloc figures (owngil mode), or -1 when unknown,
    // taken at `at` (ticks_now()).
    void set_memory(int64_t allocated_bytes, int64_t arena_bytes, uint64_t at) {
        allocated_bytes_.store(allocated_bytes, std::memory_order_relaxed);
        arena_bytes_.store(arena_bytes, std::memory_order_relaxed);
        memory_at_.store(at, std::memory_order_relaxed);
        double every_ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(kMemoryEvery).count());
        memory_every_ticks_ = uint64_t(every_ns / TickRate::ns_per_tick());
    }
    // Context thread: whether a new memory sample is due (at most one every kMemoryEvery).
    static constexpr std::chrono::milliseconds kMemoryEvery{1000};
    bool memory_due(uint64_t now) const {
        uint64_t last = memory_at_.load(std::memory_order_relaxed);
        return last == 0 || now - last >= memory_every_ticks_;
    }

    // Any thread: a caller gave up before the reply (py_nif:cancel: a timeout or stream_cancel).
    void timed_out() { timeouts_.fetch_add(1, std::memory_order_relaxed); }
    // Any thread: a caller exited or dropped its request before the reply.
    void abandoned() { abandoned_.fetch_add(1, std::memory_order_relaxed); }

    // Readers, any thread.
    uint64_t queue_depth() const {
        uint64_t in = submitted_.load(std::memory_order_relaxed);
        uint64_t out = dequeued_.load(std::memory_order_relaxed);
        return in > out ? in - out : 0;
    }
    uint64_t running() const { return running_.load(std::memory_order_relaxed); }
    uint64_t submitted_count() const { return submitted_.load(std::memory_order_relaxed); }
    uint64_t served() const { return served_.load(std::memory_order_relaxed); }
    uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
    uint64_t timeouts() const { return timeouts_.load(std::memory_order_relaxed); }
    uint64_t abandoned_count() const { return abandoned_.load(std::memory_order_relaxed); }
    uint64_t callbacks() const { return callbacks_.load(std::memory_order_relaxed); }
    int64_t allocated_bytes() const { return allocated_bytes_.load(std::memory_order_relaxed); }
    int64_t arena_bytes() const { return arena_bytes_.load(std::memory_order_relaxed); }
    // How long ago the memory figures were taken; negative when never.
    int64_t memory_age_ms() const {
        uint64_t at = memory_at_.load(std::memory_order_relaxed);
        if (at == 0) return -1;
        return int64_t(double(elapsed(at, ticks_now())) * TickRate::ns_per_tick() / 1e6);
    }
    const LatencyHistogram& queue_wait() const { return queue_wait_; }
    const LatencyHistogram& run_time() const { return run_time_; }

private:
    static void bump(std::atomic<uint64_t>& c) {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    // Ticks of two cores can differ by a little: a negative difference counts as 0.
    static uint64_t elapsed(uint64_t from, uint64_t to) { return to > from ? to - from : 0; }

    // Padding keeps the figures other threads write off the context thread's cache lines
    // (not alignas: a resource's memory is only 8-byte aligned).
    std::atomic<uint64_t> submitted_{0};  // written by scheduler threads
    char pad_submitted_[64] = {};
    std::atomic<uint64_t> dequeued_{0};  // from here on: the context thread
    std::atomic<uint64_t> running_{0};
    std::atomic<uint64_t> served_{0};
    std::atomic<uint64_t> errors_{0};
    std::atomic<uint64_t> callbacks_{0};
    std::atomic<int64_t> allocated_bytes_{-1};
    std::atomic<int64_t> arena_bytes_{-1};
    std::atomic<uint64_t> memory_at_{0};
    uint64_t memory_every_ticks_ = 0;  // the context thread's alone
    LatencyHistogram queue_wait_;
    LatencyHistogram run_time_;
    char pad_cancels_[64] = {};
    std::atomic<uint64_t> timeouts_{0};  // cancelling threads
    std::atomic<uint64_t> abandoned_{0};
};

}  // namespace context
