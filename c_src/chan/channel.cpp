#include "chan/channel.hpp"

#include <unistd.h>

#include <algorithm>

namespace chan {

namespace {
constexpr size_t kMaxSpareEnvs = 64;
}

Channel::~Channel() {
    for (Message& m : queue_) enif_free_env(m.env);
    for (ErlNifEnv* env : spare_envs_) enif_free_env(env);
}

ErlNifEnv* Channel::take_env() {
    if (spare_envs_.empty()) return enif_alloc_env();
    ErlNifEnv* env = spare_envs_.back();
    spare_envs_.pop_back();
    return env;
}

void Channel::wake_locked() {
    readable_.notify_all();
    for (int fd : armed_fds_) {
        const char byte = 1;
        // The pipe is non-blocking: when it is full a byte is already waiting to be read.
        [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
    }
    armed_fds_.clear();
}

SendResult Channel::send(ERL_NIF_TERM term, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return SendResult::closed;
    if (max_size_ && !queue_.empty() && size_ + size > max_size_) return SendResult::busy;
    ErlNifEnv* own = take_env();
    if (!own) return SendResult::no_memory;
    bool was_empty = queue_.empty();
    queue_.push_back(Message{own, enif_make_copy(own, term), size});
    size_ += size;
    if (was_empty) wake_locked();
    return SendResult::ok;
}

void Channel::close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    wake_locked();
}

PopResult Channel::try_pop(Message* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) return closed_ ? PopResult::closed : PopResult::empty;
    *out = queue_.front();
    queue_.pop_front();
    size_ -= out->size;
    return PopResult::message;
}

PopResult Channel::wait_pop(Message* out, std::chrono::milliseconds slice) {
    std::unique_lock<std::mutex> lock(mutex_);
    readable_.wait_for(lock, slice, [this] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return closed_ ? PopResult::closed : PopResult::empty;
    *out = queue_.front();
    queue_.pop_front();
    size_ -= out->size;
    return PopResult::message;
}

void Channel::recycle(ErlNifEnv* env) {
    enif_clear_env(env);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (spare_envs_.size() < kMaxSpareEnvs) {
            spare_envs_.push_back(env);
            return;
        }
    }
    enif_free_env(env);
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

}  // namespace chan
