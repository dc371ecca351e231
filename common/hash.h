// Non-cryptographic hashes for in-process tables and identifiers: FNV-1a over bytes, and
// splitmix64's finaliser to spread a 64-bit value's bits (FNV's low bits are weak for short
// keys).
#pragma once

#include <cstdint>
#include <string_view>

namespace wraith {

constexpr uint64_t fnv1a64(std::string_view bytes) {
    uint64_t h = 1469598103934665603ull;
    for (char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return h;
}

// splitmix64's finaliser: every input bit moves about half the output bits.
constexpr uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

} // namespace wraith
