#include "py/arena_cache.hpp"

#include <Python.h>
#include <sys/mman.h>

#include <mutex>

namespace py {
namespace {

struct CachedArena {
    void* address;
    size_t size;
};

constexpr size_t kSlots = 64;  // more than kMaxCachedArenaBytes / the smallest arena (256 KiB)

std::mutex g_mutex;
CachedArena g_cached[kSlots];
size_t g_count = 0;
size_t g_bytes = 0;

// Same memory as CPython's own arena allocator (anonymous private mappings): arenas it mapped
// before the hooks were installed can be freed through them.
void* map_arena(void*, size_t size) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        for (size_t i = g_count; i-- > 0;) {
            if (g_cached[i].size != size) continue;
            void* address = g_cached[i].address;
            g_cached[i] = g_cached[--g_count];
            g_bytes -= size;
            return address;
        }
    }
    void* address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return address == MAP_FAILED ? nullptr : address;
}

void unmap_arena(void*, void* address, size_t size) {
    if (!address) return;
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_count < kSlots && g_bytes + size <= kMaxCachedArenaBytes) {
            g_cached[g_count++] = {address, size};
            g_bytes += size;
            return;
        }
    }
    munmap(address, size);
}

}  // namespace

void install_arena_cache() {
    PyObjectArenaAllocator hooks{nullptr, &map_arena, &unmap_arena};
    PyObject_SetArenaAllocator(&hooks);
}

}  // namespace py
