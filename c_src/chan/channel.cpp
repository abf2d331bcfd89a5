#include "chan/channel.hpp"

#include <unistd.h>

#include <algorithm>
#include <new>

namespace chan {

namespace {
constexpr size_t kMaxSpareSegments = 8;
constexpr size_t kSegmentMessages = 256;   // consecutive messages that share an environment
constexpr size_t kSegmentBytes = 1 << 20;  // a segment whose messages outgrow this takes no more
}  // namespace

Channel::~Channel() {
    // Readers hold a reference to the resource while they read a message, so none is left.
    std::vector<Segment*> all(spare_);
    for (Message& m : queue_)
        if (std::find(all.begin(), all.end(), m.segment) == all.end()) all.push_back(m.segment);
    if (open_ && std::find(all.begin(), all.end(), open_) == all.end()) all.push_back(open_);
    for (Segment* seg : all) {
        enif_free_env(seg->env);
        delete seg;
    }
    for (PidWaiter& w : armed_pids_) enif_free_env(w.env);
}

Segment* Channel::writable_segment() {
    if (open_ && open_count_ < kSegmentMessages) return open_;
    if (open_) open_->sealed = true;
    open_ = nullptr;
    Segment* seg = nullptr;
    if (!spare_.empty()) {
        seg = spare_.back();
        spare_.pop_back();
    } else {
        ErlNifEnv* env = enif_alloc_env();
        if (!env) return nullptr;
        seg = new (std::nothrow) Segment{env, 0, false};
        if (!seg) {
            enif_free_env(env);
            return nullptr;
        }
    }
    seg->outstanding = 0;
    seg->sealed = false;
    open_ = seg;
    open_count_ = 0;
    open_bytes_ = 0;
    return seg;
}

void Channel::free_or_keep_locked(Segment* seg) {
    if (!seg->sealed || seg->outstanding) return;
    enif_clear_env(seg->env);
    if (spare_.size() < kMaxSpareSegments) {
        spare_.push_back(seg);
        return;
    }
    enif_free_env(seg->env);
    delete seg;
}

void Channel::wake_locked(ErlNifEnv* caller) {
    readable_.notify_all();
    for (PidWaiter& w : armed_pids_) {
        enif_send(caller, &w.pid, w.env, w.msg);  // fails harmlessly for a process that exited
        enif_free_env(w.env);
    }
    armed_pids_.clear();
    for (int fd : armed_fds_) {
        const char byte = 1;
        // The pipe is non-blocking: when it is full a byte is already waiting to be read.
        [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
    }
    armed_fds_.clear();
}

SendResult Channel::send(ERL_NIF_TERM term, size_t size, ErlNifEnv* caller) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return SendResult::closed;
    if (max_size_ && !queue_.empty() && size_ + size > max_size_) return SendResult::busy;
    Segment* seg = writable_segment();
    if (!seg) return SendResult::no_memory;
    bool was_empty = queue_.empty();
    queue_.push_back(Message{seg, enif_make_copy(seg->env, term), size});
    ++seg->outstanding;
    ++open_count_;
    size_ += size;
    open_bytes_ += size;
    if (open_bytes_ > kSegmentBytes) open_count_ = kSegmentMessages;  // the next send starts a new one
    if (was_empty) wake_locked(caller);
    return SendResult::ok;
}

void Channel::close(ErlNifEnv* caller) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    wake_locked(caller);
}

PopResult Channel::pop_locked(Message* out) {
    if (queue_.empty()) return closed_ ? PopResult::closed : PopResult::empty;
    *out = queue_.front();
    queue_.pop_front();
    size_ -= out->size;
    if (out->segment == open_) {  // seal it: no writer touches an environment a reader reads
        open_->sealed = true;
        open_ = nullptr;
    }
    return PopResult::message;
}

PopResult Channel::try_pop(Message* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    return pop_locked(out);
}

PopResult Channel::wait_pop(Message* out, std::chrono::milliseconds slice) {
    std::unique_lock<std::mutex> lock(mutex_);
    readable_.wait_for(lock, slice, [this] { return !queue_.empty() || closed_; });
    return pop_locked(out);
}

void Channel::unpop(const Message& msg) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_front(msg);
    size_ += msg.size;
    readable_.notify_all();
}

void Channel::release(const Message& msg) {
    std::lock_guard<std::mutex> lock(mutex_);
    --msg.segment->outstanding;
    free_or_keep_locked(msg.segment);
}

Info Channel::info() {
    std::lock_guard<std::mutex> lock(mutex_);
    return Info{size_, max_size_, queue_.size(), closed_};
}

bool Channel::arm(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!queue_.empty() || closed_) return true;
    if (std::find(armed_fds_.begin(), armed_fds_.end(), fd) == armed_fds_.end()) armed_fds_.push_back(fd);
    return false;
}

void Channel::disarm(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_fds_.erase(std::remove(armed_fds_.begin(), armed_fds_.end(), fd), armed_fds_.end());
}

bool Channel::arm_pid(const ErlNifPid& pid, ERL_NIF_TERM msg) {
    ErlNifEnv* env = enif_alloc_env();
    if (!env) return true;  // the caller polls again instead of waiting
    ERL_NIF_TERM copy = enif_make_copy(env, msg);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!queue_.empty() || closed_) {
        enif_free_env(env);
        return true;
    }
    armed_pids_.push_back(PidWaiter{pid, env, copy});
    return false;
}

void Channel::disarm_pid(const ErlNifPid& pid, ERL_NIF_TERM msg) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = armed_pids_.begin(); it != armed_pids_.end();) {
        if (enif_compare_pids(&it->pid, &pid) == 0 && enif_is_identical(it->msg, msg)) {
            enif_free_env(it->env);
            it = armed_pids_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace chan
