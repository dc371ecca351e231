// Per-request memory: a bump allocator whose first block is reused across requests on the
// same connection, so a steady keep-alive stream of requests allocates nothing.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/strings.h"

namespace wraith {

class BufferPool;

class Arena {
public:
    explicit Arena(size_t first_block = 4096);
    // The first block comes from (and returns to) `pool`, whose buffers are its size.
    explicit Arena(BufferPool* pool);
    ~Arena();
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;

    void* alloc(size_t n, size_t align = alignof(std::max_align_t)) {
        // The common case inline: room in the current block (align is a power of two).
        if (head_) {
            size_t off = (head_->used + align - 1) & ~(align - 1);
            if (off + n <= head_->size) {
                head_->used = off + n;
                return head_->data + off;
            }
        }
        return alloc_slow(n, align);
    }

    std::string_view copy(std::string_view s) {
        if (s.empty())
            return {};
        char* p = static_cast<char*>(alloc(s.size(), 1));
        copy_short(p, s.data(), s.size()); // field names and values: short, inline
        return {p, s.size()};
    }

    // Constructs a T in the arena; its destructor runs at reset() (in reverse order).
    template <class T, class... Args> T* make(Args&&... args) {
        void* p = alloc(sizeof(T), alignof(T));
        T* obj = new (p) T(std::forward<Args>(args)...);
        if constexpr (!std::is_trivially_destructible_v<T>)
            defer([](void* o) { static_cast<T*>(o)->~T(); }, obj);
        return obj;
    }

    // Runs fn(arg) at reset(): closes files, cancels timers of async handlers, etc.
    void defer(void (*fn)(void*), void* arg);

    // Runs deferred cleanups, frees every block but the first, and rewinds.
    void reset();

    // reset(), and also gives the first block back (an idle connection keeps no memory).
    void release();

private:
    struct Block {
        Block* next;
        size_t size;
        size_t used;
        alignas(std::max_align_t) unsigned char data[];
    };
    struct Cleanup {
        void (*fn)(void*);
        void* arg;
        Cleanup* next;
    };
    Block* new_block(size_t min_size);
    void* alloc_slow(size_t n, size_t align);

    Block* head_ = nullptr;  // current block (blocks chain back to the first)
    Block* first_ = nullptr; // kept across reset()
    Cleanup* cleanups_ = nullptr;
    size_t first_size_;
    BufferPool* pool_ = nullptr; // source of the first block, if any
};

} // namespace wraith
