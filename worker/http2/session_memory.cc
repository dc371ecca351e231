#include "worker/http2/session_memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <sys/mman.h>

namespace wraith::http2 {

namespace {

// NGHTTP2_FRAMEBUF_CHUNKLEN: frame header, a pad length byte and the largest payload.
constexpr size_t kFrameBuffer = 9 + 1 + 16384;

size_t whole_pages(size_t size, size_t page) {
    return (size + page - 1) / page * page;
}

} // namespace

SessionMemory::SessionMemory() : mem_{this, alloc, release, zalloc, resize} {}

SessionMemory::Block* SessionMemory::find(void* p) {
    for (Block& b : big_)
        if (b.p == p)
            return &b;
    return nullptr;
}

void* SessionMemory::alloc(size_t size, void* self) {
    auto* m = static_cast<SessionMemory*>(self);
    if (size < kPage)
        return std::malloc(size);
    void* p = std::aligned_alloc(kPage, whole_pages(size, kPage));
    if (p)
        m->big_.push_back({p, size});
    return p;
}

void SessionMemory::release(void* p, void* self) {
    auto* m = static_cast<SessionMemory*>(self);
    if (!p)
        return;
    if (Block* b = m->find(p)) {
        *b = m->big_.back();
        m->big_.pop_back();
    }
    std::free(p);
}

void* SessionMemory::zalloc(size_t n, size_t size, void* self) {
    if (size && n > SIZE_MAX / size)
        return nullptr;
    void* p = alloc(n * size, self);
    if (p)
        std::memset(p, 0, n * size);
    return p;
}

void* SessionMemory::resize(void* p, size_t size, void* self) {
    auto* m = static_cast<SessionMemory*>(self);
    Block* b = p ? m->find(p) : nullptr;
    if (!b && size < kPage)
        return std::realloc(p, size);
    // A page block on either side: a fresh block and a copy.
    void* q = alloc(size, self);
    if (!q)
        return nullptr;
    if (p) {
        size_t old = b ? b->size : malloc_usable_size(p);
        std::memcpy(q, p, std::min(old, size));
        release(p, self);
    }
    return q;
}

void SessionMemory::release_idle() {
    for (const Block& b : big_) {
        const size_t span = whole_pages(b.size, kPage);
        bool scratch = b.size == kFrameBuffer;
        if (!scratch) {
            const auto* bytes = static_cast<const unsigned char*>(b.p);
            scratch = bytes[0] == 0 && std::memcmp(bytes, bytes + 1, b.size - 1) == 0;
        }
        if (scratch)
            madvise(b.p, span, MADV_DONTNEED); // zero-filled pages again on the next touch
    }
}

} // namespace wraith::http2
