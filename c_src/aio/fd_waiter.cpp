#include "aio/fd_waiter.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <new>
#include <vector>

#include "aio/poller.hpp"

namespace aio {

std::shared_ptr<FdWaiter> FdWaiter::make() {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return nullptr;
    int ev = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event wake_event{};
    wake_event.events = EPOLLIN;
    wake_event.data.u64 = 0;  // key 0: the eventfd
    if (ev < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, ev, &wake_event) < 0) {
        int err = errno;
        if (ev >= 0) ::close(ev);
        ::close(ep);
        errno = err;
        return nullptr;
    }
    auto* waiter = new (std::nothrow) FdWaiter(ep, ev);
    if (!waiter) {
        ::close(ev);
        ::close(ep);
        errno = ENOMEM;
        return nullptr;
    }
    return std::shared_ptr<FdWaiter>(waiter);
}

FdWaiter::FdWaiter(int epoll_fd, int event_fd) : epoll_fd_(epoll_fd), event_fd_(event_fd) {}

FdWaiter::~FdWaiter() {
    ::close(event_fd_);
    ::close(epoll_fd_);
}

int FdWaiter::arm(const erl::ResourcePtr<FdWatch>& w, int modes) {
    epoll_event ev{};
    bool level = w->persistent && modes != 0;
    ev.events = (level ? 0U : EPOLLONESHOT) | ((modes & kRead) ? EPOLLIN : 0U) | ((modes & kWrite) ? EPOLLOUT : 0U);
    if (w->waiter_key) {
        ev.data.u64 = w->waiter_key;
        return ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, w->dup_fd, &ev) < 0 ? errno : 0;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    uint64_t key = next_key_++;
    try {
        watches_.emplace(key, w);
    } catch (const std::bad_alloc&) {
        return ENOMEM;
    }
    ev.data.u64 = key;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w->dup_fd, &ev) < 0) {
        int err = errno;
        watches_.erase(key);
        return err;
    }
    w->waiter_key = key;
    watched_.fetch_add(1, std::memory_order_acq_rel);
    return 0;
}

void FdWaiter::remove(FdWatch& w) {
    if (!w.waiter_key) return;
    if (w.dup_fd >= 0) (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.dup_fd, nullptr);
    erl::ResourcePtr<FdWatch> dropped;  // released after the lock: its destructor closes a descriptor
    {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = watches_.find(w.waiter_key);
        if (it != watches_.end()) {
            dropped = std::move(it->second);
            watches_.erase(it);
            watched_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
    w.waiter_key = 0;
}

namespace {
constexpr int kMaxEvents = 64;

// epoll_pwait2's timeout until deadline (nullptr: none); glibc 2.35+, Linux 5.11+.
const timespec* timeout_until(FdWaiter::Clock::time_point deadline, timespec& out) {
    if (deadline == FdWaiter::Clock::time_point::max()) return nullptr;
    auto now = FdWaiter::Clock::now();
    auto left = deadline > now ? deadline - now : FdWaiter::Clock::duration::zero();  // min(): no wait
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    out.tv_sec = static_cast<time_t>(ns / 1000000000);
    out.tv_nsec = static_cast<long>(ns % 1000000000);
    return &out;
}

int wait_events(int epoll_fd, epoll_event* events, FdWaiter::Clock::time_point deadline) {
    timespec ts{};
    const timespec* timeout = timeout_until(deadline, ts);
    int n = ::epoll_pwait2(epoll_fd, events, kMaxEvents, timeout, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    // An older kernel: milliseconds, rounded up so that a timer is never early.
    int ms = -1;
    if (timeout) {
        long long total = (static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec + 999999) / 1000000;
        ms = total > 86400000 ? 86400000 : static_cast<int>(total);
    }
    return ::epoll_wait(epoll_fd, events, kMaxEvents, ms);
}
}  // namespace

int FdWaiter::wait(Clock::time_point deadline) {
    epoll_event events[kMaxEvents];
    int n = wait_events(epoll_fd_, events, deadline);
    last_wait_end_ = Clock::now();
    if (n <= 0) return 0;  // timed out, or EINTR: the caller looks again
    std::vector<std::pair<erl::ResourcePtr<FdWatch>, uint32_t>> ready;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (int i = 0; i < n; ++i) {
            uint64_t key = events[i].data.u64;
            if (key == 0) continue;
            auto it = watches_.find(key);
            if (it != watches_.end()) ready.emplace_back(it->second, uint32_t{events[i].events});
        }
    }
    for (int i = 0; i < n; ++i)
        if (events[i].data.u64 == 0) {
            uint64_t count = 0;
            (void)!::read(event_fd_, &count, sizeof count);
        }
    int delivered = 0;
    for (auto& [w, bits] : ready)
        if (deliver(w, bits)) ++delivered;
    return delivered;
}

bool FdWaiter::deliver(const erl::ResourcePtr<FdWatch>& w, uint32_t bits) {
    int armed = w->armed;
    // A persistent watch with modes is level-triggered: it stays armed. Any other was one-shot:
    // every mode of the descriptor is off until armed again.
    bool level = w->persistent && armed;
    if (!level) w->armed = 0;
    int modes = ((bits & EPOLLIN) ? kRead : 0) | ((bits & EPOLLOUT) ? kWrite : 0);
    if (bits & (EPOLLERR | EPOLLHUP)) modes |= armed;  // as poll(): the loop's own I/O sees the error
    modes &= armed;
    if (modes) {
        w->poller->on_ready(w.get(), modes, /*wake=*/false);
        return true;
    }
    if (!level && armed && arm(w, armed) == 0) w->armed = armed;  // nothing it asked for: the same modes again
    return false;
}

void FdWaiter::poll_unless_fresh() {
    if (Clock::now() - last_wait_end_ >= kFreshFor) (void)wait(Clock::time_point::min());
}

void FdWaiter::wake() const {
    uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
}

}  // namespace aio
