#include "shared/block_cache.hpp"

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace shared {
namespace {

struct Block {
    unsigned char* data;
    size_t capacity;
};

std::mutex g_mutex;
std::vector<Block>* g_blocks = nullptr;  // guarded by g_mutex; never freed (outlives every buffer)
size_t g_kept = 0;                       // guarded by g_mutex

std::vector<Block>& blocks() {
    if (!g_blocks) g_blocks = new std::vector<Block>();  // NOLINT(cppcoreguidelines-owning-memory)
    return *g_blocks;
}

}  // namespace

unsigned char* BlockCache::take(size_t bytes, size_t* capacity) {
    if (bytes < kMinBytes) return nullptr;
    std::lock_guard<std::mutex> lock(g_mutex);
    std::vector<Block>& kept = blocks();
    size_t best = kept.size();
    for (size_t i = 0; i < kept.size(); ++i)
        if (kept[i].capacity >= bytes && (best == kept.size() || kept[i].capacity < kept[best].capacity)) best = i;
    if (best == kept.size()) return nullptr;
    Block found = kept[best];
    kept[best] = kept.back();
    kept.pop_back();
    g_kept -= found.capacity;
    *capacity = found.capacity;
    return found.data;
}

void BlockCache::give(unsigned char* block, size_t capacity) {
    if (!block) return;
    if (capacity >= kMinBytes) {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_kept + capacity <= kMaxBytes) {
            try {
                blocks().push_back(Block{block, capacity});
                g_kept += capacity;
                return;
            } catch (const std::bad_alloc&) {
                // no room to remember it: free it below
            }
        }
    }
    std::free(block);  // NOLINT(cppcoreguidelines-no-malloc)
}

size_t BlockCache::kept_bytes() {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_kept;
}

}  // namespace shared
