// nghttp2's memory for one connection (nghttp2_mem). Small blocks come from malloc. Blocks of
// a page or more (nghttp2 1.52 makes two per session: the 16 KiB buffer it packs outgoing
// frames into, and the 4 KiB stream table) sit on pages of their own, so the connection can
// give their pages back while it is idle: the frame buffer's bytes are scratch (every frame
// is packed into it afresh), and an all-zero stream table reads the same from zero pages.
// An idle HTTP/2 connection thus drops from about 17 KB to what nghttp2 keeps in its session
// (docs/decisions.md, "HTTP/2").
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <vector>

namespace wraith::http2 {

class SessionMemory {
public:
    SessionMemory();
    SessionMemory(const SessionMemory&) = delete;
    SessionMemory& operator=(const SessionMemory&) = delete;

    nghttp2_mem* mem() { return &mem_; }
    // The connection is idle (no stream, nothing queued): the kernel may take back the pages
    // of the frame buffer and of any page-sized block that holds only zeros.
    void release_idle();

private:
    struct Block {
        void* p;
        size_t size; // as asked for
    };
    static constexpr size_t kPage = 4096;
    static void* alloc(size_t size, void* self);
    static void release(void* p, void* self);
    static void* zalloc(size_t n, size_t size, void* self);
    static void* resize(void* p, size_t size, void* self);
    Block* find(void* p);

    nghttp2_mem mem_;
    std::vector<Block> big_; // blocks of a page or more: page-aligned, whole pages
};

} // namespace wraith::http2
