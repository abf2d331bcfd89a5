#include "shared/byte_buffer.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "shared/block_cache.hpp"

namespace shared {

// malloc/realloc rather than a container: realloc lets the C library remap a large block when it
// grows instead of copying it, and nothing is zeroed. Large blocks come from, and go back to,
// the BlockCache when it has one: memory already mapped, so writes do not fault page by page.
ByteBuffer::ByteBuffer(size_t capacity) : capacity_(capacity ? capacity : 1) {
    data_ = BlockCache::take(capacity_, &capacity_);
    if (!data_) data_ = static_cast<unsigned char*>(std::malloc(capacity_));  // NOLINT(cppcoreguidelines-no-malloc)
    if (!data_) throw std::bad_alloc();
}

ByteBuffer::~ByteBuffer() { BlockCache::give(data_, capacity_); }

ByteBuffer::WriteResult ByteBuffer::write(const unsigned char* data, size_t size) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (eof_ || closed_) return WriteResult::closed;
        if (size > capacity_ - size_) {
            if (pins_ > 0) return WriteResult::pinned;
            size_t wanted = size_ + size;
            if (wanted < size_) throw std::bad_alloc();  // overflow
            size_t grown = capacity_;
            while (grown < wanted) grown = grown > (SIZE_MAX / 2) ? wanted : grown * 2;
            size_t kept_capacity = 0;
            if (unsigned char* kept = BlockCache::take(grown, &kept_capacity)) {
                std::memcpy(kept, data_, size_);  // what is written so far (small: growth doubles)
                BlockCache::give(data_, capacity_);
                data_ = kept;
                capacity_ = kept_capacity;
            } else {
                auto* moved =
                    static_cast<unsigned char*>(std::realloc(data_, grown));  // NOLINT(cppcoreguidelines-no-malloc)
                if (!moved) throw std::bad_alloc();
                data_ = moved;
                capacity_ = grown;
            }
        }
        if (size) std::memcpy(data_ + size_, data, size);
        size_ += size;
    }
    changed_.notify_all();
    return WriteResult::ok;
}

void ByteBuffer::end() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        eof_ = true;
    }
    changed_.notify_all();
}

void ByteBuffer::close() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        closed_ = true;
        eof_ = true;
    }
    changed_.notify_all();
}

void ByteBuffer::wait_for_more(size_t seen, std::chrono::milliseconds slice) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, slice, [&] { return size_ > seen || eof_ || closed_; });
}

void ByteBuffer::pin(const unsigned char** data, size_t* size) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++pins_;
    *data = data_ + pos_;
    *size = size_ - pos_;
}

void ByteBuffer::unpin() {
    std::lock_guard<std::mutex> lock(mutex_);
    --pins_;
}

}  // namespace shared
