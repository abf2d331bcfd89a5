// CPU contention from /proc/pressure/cpu or /proc/loadavg (cpu_contention.hpp).
// Thread: the child's main thread only.
#include "cpu_contention.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace child {

namespace {

// Contended when some thread waited for a CPU more than this share of the time (per mille).
constexpr std::int64_t kStallPerMille = 50;

// The file's text from its start (a /proc file reads afresh at offset 0); false when unreadable.
bool read_text(int fd, char* text, std::size_t size) {
    if (fd < 0) return false;
    ssize_t got = pread(fd, text, size - 1, 0);
    if (got <= 0) return false;
    text[got] = '\0';
    return true;
}

}  // namespace

CpuContention::CpuContention()
    : pressure_fd_(open("/proc/pressure/cpu", O_RDONLY | O_CLOEXEC)),
      loadavg_fd_(open("/proc/loadavg", O_RDONLY | O_CLOEXEC)),
      cpus_(sysconf(_SC_NPROCESSORS_ONLN)) {
    if (cpus_ < 1) cpus_ = 1;
}

CpuContention::~CpuContention() {
    if (pressure_fd_ >= 0) close(pressure_fd_);
    if (loadavg_fd_ >= 0) close(loadavg_fd_);
}

bool CpuContention::contended(std::int64_t now_ns) {
    if (checked_ns_ == 0 || now_ns - checked_ns_ >= kRecheckNs) contended_ = measure(now_ns);
    return contended_;
}

bool CpuContention::measure(std::int64_t now_ns) {
    bool result = pressure_fd_ >= 0 ? measure_pressure(now_ns) : measure_runnable();
    checked_ns_ = now_ns;
    return result;
}

// "some avg10=... avg60=... avg300=... total=MICROSECONDS": the stall time since the last check
// against the time that passed. The first check (no earlier total) reads avg10 instead.
bool CpuContention::measure_pressure(std::int64_t now_ns) {
    char text[256];
    if (!read_text(pressure_fd_, text, sizeof text)) return measure_runnable();
    double avg10 = 0;
    long long total = 0;
    const char* avg = std::strstr(text, "avg10=");
    const char* tot = std::strstr(text, "total=");
    if (!avg || !tot || std::sscanf(avg, "avg10=%lf", &avg10) != 1 || std::sscanf(tot, "total=%lld", &total) != 1)
        return measure_runnable();
    std::int64_t previous = stall_us_;
    stall_us_ = total;
    if (previous < 0 || checked_ns_ == 0) return avg10 * 10 > static_cast<double>(kStallPerMille);
    std::int64_t elapsed_us = (now_ns - checked_ns_) / 1000;
    if (elapsed_us <= 0) return contended_;
    return (total - previous) * 1000 > elapsed_us * kStallPerMille;
}

// "0.52 0.58 0.59 RUNNABLE/ALL LASTPID": more runnable threads than CPUs.
bool CpuContention::measure_runnable() const {
    char text[128];
    if (!read_text(loadavg_fd_, text, sizeof text)) return false;
    double one = 0;
    double five = 0;
    double fifteen = 0;
    long runnable = 0;
    if (std::sscanf(text, "%lf %lf %lf %ld/", &one, &five, &fifteen, &runnable) != 4) return false;
    return runnable > cpus_;
}

}  // namespace child
