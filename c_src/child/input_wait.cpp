// The child's wait for input: spin, then block (input_wait.hpp).
// Thread: the child's main thread, attached.
#include "input_wait.hpp"

#include "cpu_contention.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace child {

namespace {

// The longest spin: a little more than the parent's side of a sequential round trip on a quiet
// machine (the BEAM takes the reply, answers the caller, which sends the next request).
constexpr std::int64_t kMaxSpinNs = 60'000;
// A poll that returned this late means the spin was preempted: another thread wanted the CPU.
constexpr std::int64_t kPreemptedNs = 10'000;
// After a preempted spin, this many waits block without a spin, doubling while spins keep
// being preempted (at most kMaxPenalty waits), back to one once a spin finds input.
constexpr unsigned kMaxPenalty = 1024;

// ERLANG_PYTHON_CHILD_SPIN=0 in the environment (the context's `spin => false`) turns the spin off.
bool spin_enabled() {
    static const bool enabled = [] {
        // Read once, at the child's first wait: before it has run any request, so before Python
        // code could start a thread or change the environment.
        const char* value = std::getenv("ERLANG_PYTHON_CHILD_SPIN");  // NOLINT(concurrency-mt-unsafe)
        return value == nullptr || std::strcmp(value, "0") != 0;
    }();
    return enabled;
}

struct SpinState {
    std::int64_t budget_ns = spin_enabled() ? kMaxSpinNs : 0;  // the next spin's length; 0: no spin
    unsigned skip = 0;                                         // waits left that block without a spin
    unsigned penalty = 1;                                      // skip after the next preempted spin
    CpuContention cpu;
    unsigned long long caught = 0;
    unsigned long long missed = 0;
    unsigned long long contended = 0;
    unsigned long long blocked = 0;
};

SpinState& spin_state() {
    static SpinState state;
    return state;
}

std::int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// 1 when fd has input (or end of file, or an error poll reports), 0 when not yet, -1 with errno.
int poll_once(int fd, int timeout_ms) {
    pollfd entry{fd, POLLIN, 0};
    int ready = poll(&entry, 1, timeout_ms);
    return ready < 0 ? -1 : (ready > 0 ? 1 : 0);
}

enum class Spin { kInput, kTimedOut, kContended, kRaised };

// Polls fd without blocking until input comes or the budget runs out; stops when a poll returns
// late (the CPU is contended: the spin would take it from a thread that needs it). A signal
// that comes meanwhile runs its handler here (kRaised: it raised), as in the blocking poll.
Spin spin(int fd, std::int64_t budget_ns) {
    std::int64_t start = now_ns();
    std::int64_t last = start;
    for (;;) {
        if (poll_once(fd, 0) != 0) return Spin::kInput;  // an error: the blocking poll reports it
        if (PyErr_CheckSignals() != 0) return Spin::kRaised;
        std::int64_t now = now_ns();
        if (now - last >= kPreemptedNs) return Spin::kContended;
        if (now - start >= budget_ns) return Spin::kTimedOut;
        last = now;
    }
}

// The next budget from how long the last wait took: the full spin while requests come within
// it, none once one came later (a caller that pauses between calls, or a contended machine).
void adapt(SpinState& state, std::int64_t waited_ns) {
    if (!spin_enabled()) return;
    state.budget_ns = waited_ns <= kMaxSpinNs ? kMaxSpinNs : std::max<std::int64_t>(0, state.budget_ns / 2 - 1);
}

}  // namespace

PyObject* wait_readable(PyObject* /*module*/, PyObject* fd_arg) {
    long fd = PyLong_AsLong(fd_arg);
    if (fd == -1 && PyErr_Occurred()) return nullptr;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "wait_readable: not a file descriptor");
        return nullptr;
    }
    SpinState& state = spin_state();
    std::int64_t start = now_ns();
    if (state.skip > 0) {
        --state.skip;
    } else if (state.budget_ns > 0 && !state.cpu.contended(start)) {
        switch (spin(static_cast<int>(fd), state.budget_ns)) {
            case Spin::kInput:
                ++state.caught;
                state.penalty = 1;
                adapt(state, now_ns() - start);
                Py_RETURN_NONE;
            case Spin::kTimedOut: ++state.missed; break;
            case Spin::kContended:
                ++state.contended;
                state.skip = state.penalty;
                state.penalty = std::min(state.penalty * 2, kMaxPenalty);
                break;
            case Spin::kRaised: return nullptr;
        }
    }
    ++state.blocked;
    for (;;) {
        if (PyErr_CheckSignals() != 0) return nullptr;  // a signal that came during the spin
        int ready = 0;
        Py_BEGIN_ALLOW_THREADS;
        ready = poll_once(static_cast<int>(fd), -1);
        Py_END_ALLOW_THREADS;
        if (ready > 0) break;
        if (ready < 0 && errno != EINTR) return PyErr_SetFromErrno(PyExc_OSError);
    }
    adapt(state, now_ns() - start);
    Py_RETURN_NONE;
}

PyObject* wait_stats(PyObject* /*module*/, PyObject* /*unused*/) {
    const SpinState& state = spin_state();
    return Py_BuildValue("{sKsKsKsKsL}", "caught", state.caught, "missed", state.missed, "contended", state.contended,
                         "blocked", state.blocked, "budget_ns", static_cast<long long>(state.budget_ns));
}

}  // namespace child
