// SipHash (Aumasson and Bernstein, 2012): a keyed hash, so a client cannot pick keys that land
// in one bucket of a limit zone (hash flooding) or that collide with another client's key.
// Written from the paper's description; SipHash-1-3 for zones, the paper's 2-4 for the test
// vector that pins the implementation.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace wraith::limit {

template <int C, int D>
uint64_t siphash(uint64_t k0, uint64_t k1, std::string_view data) {
    auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
    uint64_t v3 = k1 ^ 0x7465646279746573ull;
    auto round = [&] {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    };
    const size_t n = data.size();
    const char* p = data.data();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m;
        std::memcpy(&m, p + i, 8); // little-endian hosts (x86-64, arm64) read words as the paper
        v3 ^= m;
        for (int r = 0; r < C; ++r)
            round();
        v0 ^= m;
    }
    uint64_t b = static_cast<uint64_t>(n) << 56;
    for (size_t j = 0; i + j < n; ++j)
        b |= static_cast<uint64_t>(static_cast<unsigned char>(p[i + j])) << (8 * j);
    v3 ^= b;
    for (int r = 0; r < C; ++r)
        round();
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < D; ++r)
        round();
    return v0 ^ v1 ^ v2 ^ v3;
}

} // namespace wraith::limit
