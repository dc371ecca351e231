// Small ASCII helpers for protocol text (field names, tokens): no locale, no allocation.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace wraith {

constexpr char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

// a == b ignoring ASCII case (RFC 9110 field names, tokens, schemes).
constexpr bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

// Copies `n` bytes from `src` to `dst` with ASCII A-Z lower-cased, eight bytes at a time:
// field names on the way out of every response (HTTP/2 and HTTP/3 want lower case).
inline void copy_ascii_lower(char* dst, const char* src, size_t n) {
    constexpr uint64_t ones = 0x0101010101010101ull;
    constexpr uint64_t high = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, src + i, 8);
        // Per byte b < 0x80: bit 7 of b + (0x80 - 'A') is set when b >= 'A', and of
        // b + (0x7f - 'Z') when b > 'Z'; bytes >= 0x80 are left alone.
        uint64_t low7 = w & ~high;
        uint64_t ge_a = low7 + (0x80 - 'A') * ones;
        uint64_t gt_z = low7 + (0x7f - 'Z') * ones;
        uint64_t upper = (ge_a ^ gt_z) & ~w & high;
        w |= upper >> 2; // 0x80 >> 2 == 0x20, the case bit
        std::memcpy(dst + i, &w, 8);
    }
    for (; i < n; ++i)
        dst[i] = ascii_lower(src[i]);
}

} // namespace wraith
