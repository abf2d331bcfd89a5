// Large memory blocks kept for reuse by py_buffer storage (shared/byte_buffer.hpp). A freshly
// mapped block costs a page fault and the kernel's clearing of every page on its first write
// (about half the time of a 64 MiB buffer trip, measured); a block a freed buffer gives back is
// already mapped, so the next buffer writes into resident memory. Blocks of kMinBytes or more
// are kept, kMaxBytes together at most; beyond that they go back to the C library.
// Any thread: every member takes the cache's lock, held for a list scan, never for a copy.
#pragma once

#include <cstddef>

namespace shared {

class BlockCache {
public:
    static constexpr size_t kMinBytes = size_t{1} << 20;    // 1 MiB
    static constexpr size_t kMaxBytes = size_t{128} << 20;  // 128 MiB kept at most

    // A kept block of at least `bytes' (the smallest that fits), or nullptr; *capacity: its size.
    static unsigned char* take(size_t bytes, size_t* capacity);
    // Keeps block (of `capacity' bytes, from malloc/realloc or take) for reuse, or frees it.
    static void give(unsigned char* block, size_t capacity);
    // The bytes kept now (for tests).
    static size_t kept_bytes();
};

}  // namespace shared
