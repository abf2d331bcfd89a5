// Whether the machine's CPUs are contended: the child's spin (input_wait.hpp) runs only when
// they are not, so that it never takes a CPU another thread waits for.
//
// Measured with the kernel's pressure stall information (/proc/pressure/cpu: the time some
// runnable thread waited for a CPU) over the last few milliseconds; on a kernel without it,
// with the count of runnable threads against the count of CPUs (/proc/loadavg).
//
// Thread: the child's main thread only (not synchronised); no Python.
#pragma once

#include <cstdint>

namespace child {

class CpuContention {
public:
    CpuContention();
    ~CpuContention();
    CpuContention(const CpuContention&) = delete;
    CpuContention& operator=(const CpuContention&) = delete;

    // True when threads waited for a CPU lately. now_ns: CLOCK_MONOTONIC; the files are read
    // again at most every kRecheckNs (a few microseconds each time), the last answer kept between.
    bool contended(std::int64_t now_ns);

    static constexpr std::int64_t kRecheckNs = 5'000'000;

private:
    bool measure(std::int64_t now_ns);
    bool measure_pressure(std::int64_t now_ns);
    bool measure_runnable() const;

    int pressure_fd_ = -1;
    int loadavg_fd_ = -1;
    long cpus_ = 1;
    std::int64_t checked_ns_ = 0;
    std::int64_t stall_us_ = -1;  // the pressure file's total at the last check; -1: none yet
    bool contended_ = false;
};

}  // namespace child
