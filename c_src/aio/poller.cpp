#include "aio/poller.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace aio {
namespace {
// Adds (fd, mask) to out, or mask to fd's entry when it has one (two events of one descriptor).
void merge_ready(std::vector<std::pair<int, int>>& out, int fd, int mask) {
    for (auto& [f, m] : out)
        if (f == fd) {
            m |= mask;
            return;
        }
    out.emplace_back(fd, mask);
}
}  // namespace

bool open_resources(ErlNifEnv* env) {
    return PollerResource::open(env, "py_poller") && FdWatchResource::open(env, "py_fd_watch");
}

FdWatch::~FdWatch() {
    if (dup_fd >= 0) ::close(dup_fd);  // a watch dropped without remove()
}

Poller::Poller(WakerPtr waker, FdWaiterPtr waiter) : waker_(std::move(waker)), waiter_(std::move(waiter)) {}

Poller::~Poller() { remove_all(); }

int Poller::add(int fd, int events, erl::ResourcePtr<Poller> self, bool persistent) {
    if (watches_.contains(fd)) return EEXIST;
    int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return errno;
    FdWatchPtr w;
    try {
        w = FdWatchPtr::adopt(FdWatchResource::make(std::move(self), fd, dup_fd, persistent));
    } catch (...) {
        ::close(dup_fd);
        return ENOMEM;
    }
    watches_.emplace(fd, w);
    return modify(fd, events);
}

int Poller::modify(int fd, int events) {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return ENOENT;
    FdWatch* w = it->second.get();
    w->wanted = events & (kRead | kWrite);
    if (w->persistent && w->waiter_key && w->armed != w->wanted) {
        // One epoll_ctl for a change of modes (a one-shot watch may need two).
        if (waiter_->arm(it->second, w->wanted) == 0) {
            w->armed = w->wanted;
            return 0;
        }
        w->armed = 0;
    }
    if (w->armed & ~w->wanted) {
        // An event already taken is dropped by take_ready (not wanted any more).
        w->armed &= w->wanted;
        if (waiter_->arm(it->second, w->armed) != 0) w->armed = 0;
    }
    if ((w->wanted & ~w->armed) && !w->queued_for_arming) {
        w->queued_for_arming = true;
        to_arm_.push_back(it->second);
    }
    return 0;
}

int Poller::remove(int fd) {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return ENOENT;
    FdWatchPtr w = std::move(it->second);
    watches_.erase(it);
    w->stopped.store(true, std::memory_order_release);
    w->wanted = 0;
    waiter_->remove(*w);
    if (w->dup_fd >= 0) ::close(std::exchange(w->dup_fd, -1));
    return 0;
}

void Poller::remove_all() {
    std::vector<int> fds;
    fds.reserve(watches_.size());
    for (auto& [fd, w] : watches_) fds.push_back(fd);
    for (int fd : fds) remove(fd);
    to_arm_.clear();
    std::lock_guard<std::mutex> lock(ready_mutex_);
    ready_.clear();
    has_ready_.store(false, std::memory_order_release);
}

void Poller::arm_pending() {
    for (FdWatchPtr& w : to_arm_) {
        w->queued_for_arming = false;
        int modes = w->wanted & ~w->armed;
        if (w->stopped.load(std::memory_order_relaxed) || !modes) continue;
        if (waiter_->arm(w, w->armed | modes) != 0) {
            // epoll refused the descriptor (a regular file, say): report it ready so that the
            // loop's own read or write sees what it is, as poll() would.
            on_ready(w.get(), modes, /*wake=*/false);
            continue;
        }
        w->armed |= modes;
    }
    to_arm_.clear();
}

std::vector<std::pair<int, int>> Poller::take_ready() {
    std::vector<std::pair<FdWatchPtr, int>> events;
    {
        std::lock_guard<std::mutex> lock(ready_mutex_);
        events.swap(ready_);
        has_ready_.store(false, std::memory_order_release);
    }
    std::vector<std::pair<int, int>> out;
    out.reserve(events.size());
    for (auto& [w, mode] : events) {
        auto it = watches_.find(w->fd);
        if (it == watches_.end() || it->second.get() != w.get()) continue;  // unregistered since
        int mask = mode & w->wanted;
        if (w->persistent) {  // still armed: nothing to arm again
            if (mask) merge_ready(out, w->fd, mask);
            continue;
        }
        w->armed &= ~mode;
        if (!mask) continue;
        merge_ready(out, w->fd, mask);
        if (!w->queued_for_arming) {
            w->queued_for_arming = true;
            to_arm_.push_back(w);
        }
    }
    return out;
}

void Poller::on_ready(FdWatch* w, int mode, bool wake) {
    if (w->stopped.load(std::memory_order_acquire)) return;
    {
        std::lock_guard<std::mutex> lock(ready_mutex_);
        ready_.emplace_back(FdWatchPtr::share(w), mode);
        has_ready_.store(true, std::memory_order_release);
    }
    if (wake) waker_->wake();
}

void Poller::on_signal(int signum) {
    if (signum <= 0 || signum >= 64) return;
    pending_signals_.fetch_or(uint64_t{1} << signum, std::memory_order_acq_rel);
    {
        std::lock_guard<std::mutex> lock(ready_mutex_);
        has_ready_.store(true, std::memory_order_release);
    }
    waker_->wake();
}

}  // namespace aio
