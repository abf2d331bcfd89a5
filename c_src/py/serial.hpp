// Identities that are never reused: a new interpreter, context or namespace is often allocated
// where a dead one was, so comparing addresses accepts a stale handle. Every such object takes
// a serial from this one process-wide counter at construction and is compared by it.
// Any thread, lock-free.
#pragma once

#include <atomic>
#include <cstdint>

namespace py {

using Serial = uint64_t;

// 1, 2, 3, ...: 0 is never handed out (it means "none"). 2^64 never wraps in practice.
inline Serial next_serial() {
    static std::atomic<Serial> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace py
