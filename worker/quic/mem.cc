#include "worker/quic/mem.h"

#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace wraith::quic {

namespace {

constexpr size_t kAlign = 16;
constexpr size_t kMaxSmall = 1024;
constexpr size_t kClasses = kMaxSmall / kAlign + 1; // class 0: a block from malloc
constexpr size_t kKeepPerClass = 8192;

// In front of every block: its class (16 bytes keep the block itself 16-byte aligned).
struct alignas(16) Header {
    uint32_t cls;
};
// A kept block's first bytes link it to the next one of its class.
struct FreeBlock {
    FreeBlock* next;
};

FreeBlock* g_free[kClasses];
size_t g_kept[kClasses];

Header* header_of(FreeBlock* b) {
    return reinterpret_cast<Header*>(b) - 1;
}

// alloc() when the small class's list is empty, or the block is not small.
[[gnu::noinline]] void* alloc_slow(size_t n) {
    uint32_t cls = 0;
    size_t bytes = n;
    if (n <= kMaxSmall) {
        cls = static_cast<uint32_t>((n + kAlign - 1) / kAlign);
        bytes = cls * kAlign;
    }
    auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + bytes));
    if (!h)
        return nullptr;
    h->cls = cls;
    return h + 1;
}

void* alloc(size_t n) {
    if (n == 0)
        n = 1;
    if (n <= kMaxSmall) {
        uint32_t cls = static_cast<uint32_t>((n + kAlign - 1) / kAlign);
        if (FreeBlock* b = g_free[cls]) {
            g_free[cls] = b->next;
            --g_kept[cls];
            return b; // its header still names its class
        }
    }
    return alloc_slow(n);
}

void release(void* p) {
    if (!p)
        return;
    Header* h = static_cast<Header*>(p) - 1;
    uint32_t cls = h->cls;
    if (cls == 0 || g_kept[cls] >= kKeepPerClass) {
        std::free(h);
        return;
    }
    auto* b = static_cast<FreeBlock*>(p);
    b->next = g_free[cls];
    g_free[cls] = b;
    ++g_kept[cls];
}

size_t capacity(void* p) {
    Header* h = static_cast<Header*>(p) - 1;
    return h->cls ? h->cls * kAlign : malloc_usable_size(h) - sizeof(Header);
}

void* m_malloc(size_t n, void*) {
    return alloc(n);
}
void m_free(void* p, void*) {
    release(p);
}
void* m_calloc(size_t count, size_t size, void*) {
    if (size && count > SIZE_MAX / size)
        return nullptr;
    void* p = alloc(count * size);
    if (p)
        std::memset(p, 0, count * size);
    return p;
}
void* m_realloc(void* p, size_t n, void*) {
    if (!p)
        return m_malloc(n, nullptr);
    if (n == 0) {
        release(p);
        return nullptr;
    }
    size_t have = capacity(p);
    if (n <= have)
        return p;
    void* q = alloc(n);
    if (!q)
        return nullptr;
    std::memcpy(q, p, have);
    release(p);
    return q;
}

const ngtcp2_mem g_transport_mem{nullptr, m_malloc, m_free, m_calloc, m_realloc};
const nghttp3_mem g_http3_mem{nullptr, m_malloc, m_free, m_calloc, m_realloc};

} // namespace

const ngtcp2_mem* transport_mem() {
    return &g_transport_mem;
}

const nghttp3_mem* http3_mem() {
    return &g_http3_mem;
}

size_t trim_mem() {
    size_t bytes = 0;
    for (size_t cls = 1; cls < kClasses; ++cls) {
        while (FreeBlock* b = g_free[cls]) {
            g_free[cls] = b->next;
            std::free(header_of(b));
            bytes += cls * kAlign + sizeof(Header);
        }
        g_kept[cls] = 0;
    }
    return bytes;
}

} // namespace wraith::quic
