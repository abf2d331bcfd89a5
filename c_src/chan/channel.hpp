// The storage of a channel (py_channel, py_byte_channel): a FIFO of messages that Erlang
// writes and any interpreter reads. Each message is a copy of a term in an environment of its
// own (process-independent environments, shared by up to 256 consecutive messages (1 MiB)
// so that a send does not pay for a new environment), so no message belongs to an interpreter.
// A segment takes no more copies once a reader has taken one of its messages (it is sealed),
// so readers only ever read environments no writer touches. Bounded channels refuse
// a send that would exceed max_size bytes (the caller answers `busy`); nothing here blocks a
// writer. Readers either poll, wait on the condition variable in bounded slices, or arm a
// wake-up pipe that the next send or close writes to (for event loops).
//
// Thread safety: every member may be called from any thread, concurrently; none touches Python.
#pragma once

#include <erl_nif.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace chan {

enum class Kind { terms, bytes };

enum class SendResult { ok, busy, closed, no_memory };

enum class PopResult { message, empty, closed };

// The environment a run of messages is copied into; freed (or kept for reuse) once sealed and
// every message taken from it was released.
struct Segment {
    ErlNifEnv* env;
    size_t outstanding;  // messages copied in and not yet released
    bool sealed;
};

// A queued term: `term` lives in segment->env; the reader gives it back with
// Channel::release once it no longer reads the term.
struct Message {
    Segment* segment = nullptr;
    ERL_NIF_TERM term = 0;
    size_t size = 0;
};

struct Info {
    size_t size;      // bytes queued
    size_t max_size;  // 0: unbounded
    size_t length;    // messages queued
    bool closed;
};

class Channel {
public:
    Channel(Kind kind, size_t max_size) : kind_(kind), max_size_(max_size) {}
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    ~Channel();

    Kind kind() const { return kind_; }

    // Copies term into the queue, counting `size` bytes against max_size. A message
    // larger than max_size is accepted when the queue is empty, so that it can ever pass.
    // `caller`: the calling NIF's environment, nullptr on a thread ERTS did not make (it sends
    // the messages of waiting Erlang processes).
    SendResult send(ERL_NIF_TERM term, size_t size, ErlNifEnv* caller);
    // No more sends; readers drain what is queued, then see `closed`. Idempotent.
    void close(ErlNifEnv* caller);

    // The oldest message, without waiting.
    PopResult try_pop(Message* out);
    // Waits up to `slice` for a message; `empty` when the slice ended first.
    PopResult wait_pop(Message* out, std::chrono::milliseconds slice);
    // Puts a popped message back at the front (its reader cannot deliver it).
    void unpop(const Message& msg);
    // The reader is done with msg's term.
    void release(const Message& msg);

    Info info();

    // Wake-up pipes of event-loop readers. arm(fd): true when a message or the close is there
    // already (nothing armed); otherwise the next send or close writes one byte to fd and
    // disarms it. disarm(fd) before closing fd.
    bool arm(int fd);
    void disarm(int fd);

    // Erlang readers (py_byte_channel:recv/2): arm_pid is true when a message or the close is
    // there now; otherwise the next send or close sends a copy of msg to pid, once.
    // disarm_pid forgets the waiter pid armed with msg.
    bool arm_pid(const ErlNifPid& pid, ERL_NIF_TERM msg);
    void disarm_pid(const ErlNifPid& pid, ERL_NIF_TERM msg);

private:
    // Preconditions: mutex_ held.
    Segment* writable_segment();
    PopResult pop_locked(Message* out);
    void free_or_keep_locked(Segment* segment);
    void wake_locked(ErlNifEnv* caller);

    const Kind kind_;
    const size_t max_size_;
    std::mutex mutex_;
    std::condition_variable readable_;
    std::deque<Message> queue_;
    Segment* open_ = nullptr;  // where sends copy to; nullptr: make one at the next send
    size_t open_count_ = 0;    // messages copied into open_
    size_t open_bytes_ = 0;    // their bytes
    std::vector<Segment*> spare_;
    std::vector<int> armed_fds_;
    struct PidWaiter {
        ErlNifPid pid;
        ErlNifEnv* env;  // holds msg
        ERL_NIF_TERM msg;
    };
    std::vector<PidWaiter> armed_pids_;
    size_t size_ = 0;
    bool closed_ = false;
};

}  // namespace chan
