// The storage of a py_buffer: bytes appended by Erlang, read by Python. Any thread; every
// member takes the buffer's lock, held only for a copy (readers copy in slices, see
// bridge/buffer_object.cpp) or a scan of the unread bytes, and never touches Python. Bytes
// once written never change: only their address does, when the block grows. The memory is one contiguous block that grows (and so moves) only while no
// reader pins it: a write that would grow a pinned block is refused (pinned).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace shared {

class ByteBuffer {
public:
    enum class WriteResult { ok, closed, pinned };

    explicit ByteBuffer(size_t capacity);  // throws std::bad_alloc
    ByteBuffer(const ByteBuffer&) = delete;
    ByteBuffer& operator=(const ByteBuffer&) = delete;
    ~ByteBuffer();

    // Writer side (Erlang). write: appends (std::bad_alloc when growth fails); end: no more
    // data (EOF), idempotent.
    WriteResult write(const unsigned char* data, size_t size);
    void end();

    // Reader side (Python). close: end of data, as end() (erlang_python 4.1's PyBuffer.close());
    // writes are refused from then on, what was written stays readable.
    void close();

    // What a reader sees, and may change (pos), while the lock is held by with_locked.
    struct State {
        const unsigned char* data;
        size_t size;  // bytes written so far
        size_t& pos;  // the read position, <= size
        bool eof;     // the writer called end()
        bool closed;  // the reader called close() (eof is set too)
    };
    template <class F>
    decltype(auto) with_locked(F&& f) {
        std::lock_guard<std::mutex> lock(mutex_);
        return f(State{data_, size_, pos_, eof_, closed_});
    }

    // Waits at most `slice` for more than `seen` bytes to be written, or for EOF or close.
    // Precondition: not holding the lock (and, from Python, the GIL released).
    void wait_for_more(size_t seen, std::chrono::milliseconds slice);

    // A zero-copy view of the unread bytes: pins the block (no growth) until unpin().
    void pin(const unsigned char** data, size_t* size);
    void unpin();

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    unsigned char* data_ = nullptr;
    size_t capacity_ = 0;
    size_t size_ = 0;
    size_t pos_ = 0;
    size_t pins_ = 0;
    bool eof_ = false;
    bool closed_ = false;
};

}  // namespace shared
