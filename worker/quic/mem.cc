#include "worker/quic/mem.h"

#include <sys/mman.h>
#include <unistd.h>

#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace wraith::quic {

namespace {

constexpr size_t kAlign = 16;
constexpr size_t kMaxSmall = 1024;
constexpr size_t kClasses = kMaxSmall / kAlign + 1; // class 0: a block from malloc
constexpr size_t kKeepPerClass = 8192;

// Page blocks: whole pages from regions the worker maps itself, kept per page count.
constexpr size_t kMaxPages = 32;             // larger blocks: an mmap of their own
constexpr size_t kRegionBytes = 4u << 20;    // address space mapped at a time
constexpr uint32_t kPageTag = 0x80000000u;   // Header::cls of a page block: tag | pages
constexpr uint32_t kMappedTag = 0x40000000u; // an mmap of its own: tag | pages

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

// Per page count: blocks whose pages may be resident (handed out first, they are warm), and
// blocks trim_mem() gave back to the kernel, which are address space only (so their list
// lives outside them).
FreeBlock* g_dirty[kMaxPages + 1];
std::vector<Header*> g_clean[kMaxPages + 1];

char* g_region = nullptr; // the unused tail of the last mapped region
size_t g_region_left = 0;

size_t page_size() {
    static const size_t size = [] {
        long n = sysconf(_SC_PAGESIZE);
        return n > 0 ? static_cast<size_t>(n) : size_t{4096};
    }();
    return size;
}

void* map(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
}

Header* header_of(FreeBlock* b) {
    return reinterpret_cast<Header*>(b) - 1;
}

// A block of `pages` whole pages.
Header* page_block(size_t pages) {
    size_t page = page_size();
    Header* h;
    if (pages > kMaxPages) {
        h = static_cast<Header*>(map(pages * page));
        if (!h)
            return nullptr;
        h->cls = kMappedTag | static_cast<uint32_t>(pages);
        return h;
    }
    if (FreeBlock* b = g_dirty[pages]) {
        g_dirty[pages] = b->next;
        return header_of(b);
    }
    size_t bytes = pages * page;
    if (!g_clean[pages].empty()) {
        h = g_clean[pages].back();
        g_clean[pages].pop_back();
        h->cls = kPageTag | static_cast<uint32_t>(pages);
        return h;
    }
    if (g_region_left < bytes) {
        // The old tail is left unused: address space, never resident.
        auto* region = static_cast<char*>(map(kRegionBytes));
        if (!region)
            return nullptr;
        g_region = region;
        g_region_left = kRegionBytes;
    }
    h = reinterpret_cast<Header*>(g_region);
    g_region += bytes;
    g_region_left -= bytes;
    h->cls = kPageTag | static_cast<uint32_t>(pages);
    return h;
}

// alloc() when the small class's list is empty, or the block is not small.
[[gnu::noinline]] void* alloc_slow(size_t n, bool whole) {
    if (n <= kMaxSmall) {
        uint32_t cls = static_cast<uint32_t>((n + kAlign - 1) / kAlign);
        auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + cls * kAlign));
        if (!h)
            return nullptr;
        h->cls = cls;
        return h + 1;
    }
    size_t page = page_size();
    if (sizeof(Header) + n < page || whole) {
        auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + n));
        if (!h)
            return nullptr;
        h->cls = 0;
        return h + 1;
    }
    // Blocks of a page or more are the libraries' pools (ngtcp2's skip-list and object
    // blocks, nghttp3's stream pool), of which an idle connection touches the first few
    // hundred bytes. Page-aligned and kept apart from malloc's heap, the rest of each block
    // is never faulted in, and blocks are reused by blocks of the same size only.
    Header* h = page_block((sizeof(Header) + n + page - 1) / page);
    return h ? h + 1 : nullptr;
}

void* alloc(size_t n, bool whole) {
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
    return alloc_slow(n, whole);
}

// What release() does for blocks other than a small class with room on its list; out of
// line, so the common case needs no saved registers.
[[gnu::noinline]] void release_slow(Header* h) {
    uint32_t cls = h->cls;
    if (cls & kPageTag) {
        auto* b = reinterpret_cast<FreeBlock*>(h + 1);
        size_t pages = cls & ~kPageTag;
        b->next = g_dirty[pages];
        g_dirty[pages] = b;
        return;
    }
    if (cls & kMappedTag) {
        munmap(h, (cls & ~kMappedTag) * page_size());
        return;
    }
    std::free(h);
}

void release(void* p) {
    if (!p)
        return;
    Header* h = static_cast<Header*>(p) - 1;
    uint32_t cls = h->cls;
    if (cls - 1 >= kClasses - 1 || g_kept[cls] >= kKeepPerClass) // 0 and the tags wrap high
        return release_slow(h);
    auto* b = static_cast<FreeBlock*>(p);
    b->next = g_free[cls];
    g_free[cls] = b;
    ++g_kept[cls];
}

size_t capacity(void* p) {
    Header* h = static_cast<Header*>(p) - 1;
    if (h->cls & kPageTag)
        return (h->cls & ~kPageTag) * page_size() - sizeof(Header);
    if (h->cls & kMappedTag)
        return (h->cls & ~kMappedTag) * page_size() - sizeof(Header);
    return h->cls ? h->cls * kAlign : malloc_usable_size(h) - sizeof(Header);
}

void* m_malloc(size_t n, void*) {
    return alloc(n, false);
}
void m_free(void* p, void*) {
    release(p);
}
void* m_calloc(size_t count, size_t size, void*) {
    if (size && count > SIZE_MAX / size)
        return nullptr;
    // What the libraries calloc is a structure they fill (ngtcp2_conn is 8 KiB): packed in
    // malloc's heap it costs its size, as page blocks it would cost whole pages.
    void* p = alloc(count * size, true);
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
    void* q = alloc(n, false);
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
    // Kept page blocks give their pages back and stay reusable as address space.
    size_t page = page_size();
    for (size_t pages = 1; pages <= kMaxPages; ++pages) {
        while (FreeBlock* b = g_dirty[pages]) {
            g_dirty[pages] = b->next;
            Header* h = header_of(b);
            g_clean[pages].push_back(h);
            madvise(h, pages * page, MADV_DONTNEED);
            bytes += pages * page;
        }
    }
    return bytes;
}

} // namespace wraith::quic
