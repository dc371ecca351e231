// HPACK's Huffman code (RFC 7541 §5.2, Appendix B). The code is canonical: ordering symbols
// by (code length, symbol) and counting up gives every code, so only the 257 lengths are
// written down here and the codes are derived once.
//
// Decoding runs a state machine over nibbles: a state is an internal node of the code tree
// (256 of them), and one table step per 4 input bits gives the next node and the symbol
// completed on the way, if any (no code is shorter than 5 bits, so at most one). A state also
// knows whether ending there is valid padding (RFC 7541 §5.2: the most significant bits of
// EOS, i.e. all ones, at most 7 of them).
#include <array>
#include <cstring>

#include "worker/http2/hpack.h"

namespace wraith::http2 {

namespace {

// RFC 7541 Appendix B, the "len" column: code length in bits of each symbol 0..255 and EOS.
constexpr uint8_t kCodeLength[257] = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10, 13, 6,  7,  7,  7,  7,  7,  7,
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,  6,  7,  6,  5,  5,  6,  7,  7,
    7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
    23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
    21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30};

constexpr uint16_t kEos = 256;

// One decoder step: from a node, after 4 bits.
struct Step {
    uint8_t next;   // node reached
    uint8_t symbol; // completed symbol, when kEmit
    uint8_t flags;
};
constexpr uint8_t kEmit = 1, kFail = 2;

struct Tables {
    uint32_t code[257];
    // Decoding: 256 internal nodes x 16 nibbles, and which nodes are valid ends.
    Step step[256][16];
    bool accept[256];

    Tables() {
        // Canonical codes.
        std::array<uint16_t, 257> order{};
        for (uint16_t s = 0; s < 257; ++s)
            order[s] = s;
        // Insertion sort by (length, symbol): stable on symbol already.
        for (size_t i = 1; i < order.size(); ++i)
            for (size_t j = i; j > 0 && kCodeLength[order[j - 1]] > kCodeLength[order[j]]; --j)
                std::swap(order[j - 1], order[j]);
        uint32_t c = 0;
        for (size_t i = 0; i < order.size(); ++i) {
            if (i > 0)
                c = (c + 1) << (kCodeLength[order[i]] - kCodeLength[order[i - 1]]);
            code[order[i]] = c;
        }
        // The tree: child[node][bit], a child >= 0 an internal node, < 0 a leaf (-1 - symbol).
        int child[256][2];
        std::memset(child, 0, sizeof(child));
        bool used[256][2] = {};
        int nodes = 1;
        for (uint16_t s = 0; s < 257; ++s) {
            int node = 0;
            for (int b = kCodeLength[s] - 1; b >= 0; --b) {
                int bit = (code[s] >> b) & 1;
                if (b == 0) {
                    child[node][bit] = -1 - s;
                    used[node][bit] = true;
                } else {
                    if (!used[node][bit]) {
                        child[node][bit] = nodes++;
                        used[node][bit] = true;
                    }
                    node = child[node][bit];
                }
            }
        }
        // Valid ends: the root, and the nodes on the all-ones path at depth 1..7.
        std::memset(accept, 0, sizeof(accept));
        accept[0] = true;
        for (int node = 0, depth = 0; depth < 7; ++depth) {
            node = child[node][1];
            accept[node] = true;
        }
        for (int node = 0; node < 256; ++node) {
            for (int nib = 0; nib < 16; ++nib) {
                Step st{0, 0, 0};
                int cur = node;
                for (int b = 3; b >= 0; --b) {
                    int next = child[cur][(nib >> b) & 1];
                    if (next < 0) {
                        int sym = -1 - next;
                        if (sym == kEos) {
                            st.flags |= kFail; // RFC 7541 §5.2: EOS in a string is an error
                            break;
                        }
                        st.symbol = static_cast<uint8_t>(sym);
                        st.flags |= kEmit;
                        cur = 0;
                    } else {
                        cur = next;
                    }
                }
                st.next = static_cast<uint8_t>(cur);
                step[node][nib] = st;
            }
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

constexpr uint8_t kLower[256] = {
#define R(i) static_cast<uint8_t>((i) >= 'A' && (i) <= 'Z' ? (i) + 32 : (i))
#define R4(i) R(i), R(i + 1), R(i + 2), R(i + 3)
#define R16(i) R4(i), R4(i + 4), R4(i + 8), R4(i + 12)
#define R64(i) R16(i), R16(i + 16), R16(i + 32), R16(i + 48)
    R64(0), R64(64), R64(128), R64(192)
#undef R64
#undef R16
#undef R4
#undef R
};

} // namespace

long HpackDecoder::huffman_decode(const uint8_t* in, size_t len, char* out) {
    const Tables& t = tables();
    char* o = out;
    uint8_t state = 0;
    for (size_t i = 0; i < len; ++i) {
        const Step& hi = t.step[state][in[i] >> 4];
        if (hi.flags & kFail)
            return -1;
        if (hi.flags & kEmit)
            *o++ = static_cast<char>(hi.symbol);
        const Step& lo = t.step[hi.next][in[i] & 0xf];
        if (lo.flags & kFail)
            return -1;
        if (lo.flags & kEmit)
            *o++ = static_cast<char>(lo.symbol);
        state = lo.next;
    }
    if (!t.accept[state])
        return -1;
    return o - out;
}

size_t HpackEncoder::huffman_length(std::string_view s, bool lower) {
    uint64_t bits = 0;
    for (unsigned char c : s)
        bits += kCodeLength[lower ? kLower[c] : c];
    return static_cast<size_t>((bits + 7) / 8);
}

uint8_t* HpackEncoder::huffman_encode(uint8_t* out, std::string_view s, bool lower) {
    const Tables& t = tables();
    uint64_t acc = 0; // pending bits, right-aligned
    int n = 0;        // how many
    for (unsigned char c : s) {
        if (lower)
            c = kLower[c];
        acc = (acc << kCodeLength[c]) | t.code[c];
        n += kCodeLength[c];
        while (n >= 8) {
            n -= 8;
            *out++ = static_cast<uint8_t>(acc >> n);
        }
    }
    if (n > 0) // pad with the most significant bits of EOS: ones
        *out++ = static_cast<uint8_t>((acc << (8 - n)) | (0xff >> n));
    return out;
}

} // namespace wraith::http2
