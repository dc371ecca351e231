// Small ASCII helpers for protocol text (field names, tokens): no locale, no allocation.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace wraith {

// The value of a hexadecimal digit (either case), or -1.
constexpr int hex_digit_value(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

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

namespace detail {
// Lower-cases the ASCII A-Z bytes of a word. Per byte b < 0x80: bit 7 of b + (0x80 - 'A') is
// set when b >= 'A', and of b + (0x7f - 'Z') when b > 'Z'; bytes >= 0x80 are left alone.
template <class W> constexpr W lower_word(W w) {
    constexpr W ones = static_cast<W>(~W{0}) / 0xff;
    constexpr W high = ones * 0x80;
    W low7 = w & ~high;
    W ge_a = low7 + (0x80 - 'A') * ones;
    W gt_z = low7 + (0x7f - 'Z') * ones;
    W upper = (ge_a ^ gt_z) & ~w & high;
    return w | (upper >> 2); // 0x80 >> 2 == 0x20, the case bit
}

// Copies n bytes word by word, the last word overlapping the one before it (so no byte
// tail), applying fn to each word: fn is the identity or lower_word, which may safely
// see a byte twice.
template <class Fn> inline void copy_words(char* dst, const char* src, size_t n, Fn fn) {
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            uint64_t w;
            std::memcpy(&w, src + i, 8);
            w = fn(w);
            std::memcpy(dst + i, &w, 8);
        }
        uint64_t w;
        std::memcpy(&w, src + n - 8, 8);
        w = fn(w);
        std::memcpy(dst + n - 8, &w, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        std::memcpy(&a, src, 4);
        std::memcpy(&b, src + n - 4, 4);
        a = static_cast<uint32_t>(fn(uint64_t{a}));
        b = static_cast<uint32_t>(fn(uint64_t{b}));
        std::memcpy(dst, &a, 4);
        std::memcpy(dst + n - 4, &b, 4);
    } else {
        for (size_t i = 0; i < n; ++i)
            dst[i] = static_cast<char>(fn(uint64_t{static_cast<unsigned char>(src[i])}));
    }
}
} // namespace detail

// Copies `n` bytes from `src` to `dst` (not overlapping) with ASCII A-Z lower-cased, eight
// bytes at a time: field names on the way out of a response (HTTP/3 wants lower case).
inline void copy_ascii_lower(char* dst, const char* src, size_t n) {
    detail::copy_words(dst, src, n, [](uint64_t w) { return detail::lower_word(w); });
}

// memcpy for the short strings of header fields, inline: no call for a 10-byte value.
inline void copy_short(char* dst, const char* src, size_t n) {
    if (n > 64) {
        std::memcpy(dst, src, n);
        return;
    }
    detail::copy_words(dst, src, n, [](uint64_t w) { return w; });
}

} // namespace wraith
