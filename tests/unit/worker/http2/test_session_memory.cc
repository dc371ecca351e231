// nghttp2's memory for a connection (worker/http2/session_memory.h): page blocks sit on pages
// of their own, and an idle connection gives back the frame buffer's pages and those of
// all-zero blocks, never anything that holds data.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

#include "worker/http2/session_memory.h"

using wraith::http2::SessionMemory;

TEST_CASE("session memory: page blocks are page-aligned; idle gives back scratch and zeros") {
    SessionMemory m;
    nghttp2_mem* mem = m.mem();
    void* small = mem->malloc(100, mem->mem_user_data);
    REQUIRE(small);
    std::memset(small, 7, 100);

    const size_t framebuf = 9 + 1 + 16384;
    auto* frames = static_cast<unsigned char*>(mem->malloc(framebuf, mem->mem_user_data));
    REQUIRE(frames);
    CHECK(reinterpret_cast<uintptr_t>(frames) % 4096 == 0);
    std::memset(frames, 0xab, framebuf); // a frame was packed here

    auto* table = static_cast<unsigned char*>(mem->calloc(256, 16, mem->mem_user_data));
    REQUIRE(table);
    CHECK(table[0] == 0);
    CHECK(table[4095] == 0);

    auto* kept = static_cast<unsigned char*>(mem->calloc(256, 16, mem->mem_user_data));
    REQUIRE(kept);
    kept[100] = 1; // a stream table with an entry: data, never given back

    m.release_idle();
    CHECK(frames[0] == 0); // the frame buffer's pages came back zero-filled
    CHECK(frames[framebuf - 1] == 0);
    CHECK(table[2000] == 0);
    CHECK(kept[100] == 1);
    CHECK(static_cast<unsigned char*>(small)[99] == 7); // small blocks are left alone

    // Growing a small block into a page block keeps its bytes.
    auto* grown = static_cast<unsigned char*>(mem->realloc(small, 8192, mem->mem_user_data));
    REQUIRE(grown);
    CHECK(grown[99] == 7);
    // And shrinking a page block into a small one.
    auto* shrunk = static_cast<unsigned char*>(mem->realloc(grown, 64, mem->mem_user_data));
    REQUIRE(shrunk);
    CHECK(shrunk[63] == 7);

    mem->free(shrunk, mem->mem_user_data);
    mem->free(frames, mem->mem_user_data);
    mem->free(table, mem->mem_user_data);
    mem->free(kept, mem->mem_user_data);
    mem->free(nullptr, mem->mem_user_data);
}
