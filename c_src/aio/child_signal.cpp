#include "aio/child_signal.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigaction, which <csignal> need not declare
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace aio {
namespace {

constexpr size_t kRelayStackBytes = size_t{256} * 1024;  // it only takes a lock and wakes loops

// Set once, before the handler is first installed; never closed (a handler may be running on
// another thread at any time while it is installed, and the relay thread reads it for good).
int g_event_fd = -1;
std::atomic<void (*)()> g_relay{nullptr};
bool g_installed = false;  // guarded by the caller's lock

// The disposition found at install, called after ours while ours is installed and put back
// when released. Two slots: an install writes the one the handler does not read (a handler
// still running from before the last release may read the other), then publishes it.
struct sigaction g_previous_slots[2] = {};
std::atomic<const struct sigaction*> g_previous{&g_previous_slots[0]};

bool is_function(const struct sigaction& action) {
    return action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN;  // sa_sigaction shares it
}

// Async-signal-safe: write(2), an atomic load, and the previous handler (its own business).
void on_child_signal(int signum, siginfo_t* info, void* ucontext) {
    const int saved_errno = errno;
    const uint64_t one = 1;
    (void)!::write(g_event_fd, &one, sizeof one);
    errno = saved_errno;
    const struct sigaction& previous = *g_previous.load(std::memory_order_acquire);
    if (!is_function(previous)) return;
    if (previous.sa_flags & SA_SIGINFO) previous.sa_sigaction(signum, info, ucontext);
    else previous.sa_handler(signum);
}

bool is_ours(const struct sigaction& action) {
    return (action.sa_flags & SA_SIGINFO) && action.sa_sigaction == &on_child_signal;
}

// Relay thread: each read takes every SIGCHLD counted since the last one.
void* relay_main(void*) {
    for (;;) {
        uint64_t count = 0;
        ssize_t got = ::read(g_event_fd, &count, sizeof count);
        if (got == static_cast<ssize_t>(sizeof count)) {
            if (auto relay = g_relay.load(std::memory_order_acquire)) relay();
        } else if (got < 0 && errno != EINTR && errno != EAGAIN) {
            return nullptr;  // the eventfd is never closed: not expected
        }
    }
}

// The eventfd and the relay thread, made once (with every signal blocked in the thread).
int start_relay() {
    if (g_event_fd >= 0) return 0;
    int fd = ::eventfd(0, EFD_CLOEXEC);
    if (fd < 0) return errno;
    sigset_t all{}, old{};
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, kRelayStackBytes);
    // Normal scheduling whatever the caller's: a context thread at SCHED_IDLE (thread_priority
    // auto or idle) asks first, and an inherited SCHED_IDLE would leave the relay without a CPU
    // on a busy host, so no loop would hear of its children.
    sched_param normal{};
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_OTHER);
    pthread_attr_setschedparam(&attr, &normal);
    g_event_fd = fd;
    pthread_t thread{};
    int rc = pthread_create(&thread, &attr, &relay_main, nullptr);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) {
        g_event_fd = -1;
        ::close(fd);
        return rc;
    }
    return 0;
}

}  // namespace

int catch_child_signal(void (*relay)()) {
    g_relay.store(relay, std::memory_order_release);
    if (g_installed) return 0;
    if (int err = start_relay()) return err;
    struct sigaction current {};
    if (sigaction(SIGCHLD, nullptr, &current) != 0) return errno;
    struct sigaction* slot = g_previous.load(std::memory_order_relaxed) == &g_previous_slots[0] ? &g_previous_slots[1]
                                                                                                : &g_previous_slots[0];
    if (is_ours(current)) {
        // Someone put ours back after we released it: calling it from itself would not end.
        current = {};
        current.sa_handler = SIG_DFL;
    }
    *slot = current;
    g_previous.store(slot, std::memory_order_release);
    struct sigaction ours {};
    ours.sa_sigaction = &on_child_signal;
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    if (sigaction(SIGCHLD, &ours, nullptr) != 0) return errno;
    g_installed = true;
    return 0;
}

void release_child_signal() {
    if (!g_installed) return;
    g_installed = false;
    struct sigaction current {};
    if (sigaction(SIGCHLD, nullptr, &current) == 0 && is_ours(current))
        (void)sigaction(SIGCHLD, g_previous.load(std::memory_order_relaxed), nullptr);
}

}  // namespace aio
