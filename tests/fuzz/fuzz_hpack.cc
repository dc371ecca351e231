// libFuzzer target for the HPACK decoder (worker/http2/hpack.h). The input is a series of
// header blocks (a 2-byte length before each) decoded by one decoder with a small table, so
// insertions, evictions and size updates carry across blocks. Checks: the table never exceeds
// its limit, its memory stays bounded, and every decoded field re-encodes and decodes back the
// same (encoder and decoder agree).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "worker/http2/hpack.h"

using namespace wraith::http2;

namespace {

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

struct Collect : HpackSink {
    std::vector<std::pair<std::string, std::string>> fields;
    void field(std::string_view n, std::string_view v) override {
        fields.emplace_back(std::string(n), std::string(v));
    }
    void oversized() override {}
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const uint32_t limit = size > 0 ? 64u + data[0] * 16u : 4096u; // 64 .. 4144
    HpackDecoder decoder(limit);
    decoder.set_max_string(2048);
    size_t pos = size > 0 ? 1 : 0;
    while (pos + 2 <= size) {
        size_t len = (size_t{data[pos]} << 8 | data[pos + 1]) % 4096;
        pos += 2;
        len = std::min(len, size - pos);
        Collect c;
        const bool ok = decoder.decode(data + pos, len, c);
        pos += len;
        FUZZ_CHECK(decoder.table_size() <= limit);
        FUZZ_CHECK(decoder.memory() <= 2 * limit + 64 * 8);
        if (!ok)
            break;
        // Our encoder's output decodes to the same fields.
        std::vector<uint8_t> buf;
        size_t bound = 1;
        for (auto& [n, v] : c.fields)
            bound += HpackEncoder::bound(n, v);
        buf.resize(bound);
        uint8_t* p = buf.data();
        for (auto& [n, v] : c.fields) {
            // The encoder folds capitals; compare on what it is meant to send.
            std::string lower = n;
            for (char& ch : lower)
                if (ch >= 'A' && ch <= 'Z')
                    ch = static_cast<char>(ch + 32);
            n = lower;
            p = HpackEncoder::field(p, n, v);
        }
        FUZZ_CHECK(static_cast<size_t>(p - buf.data()) <= bound);
        HpackDecoder check(4096);
        check.set_max_string(1 << 20);
        Collect back;
        FUZZ_CHECK(check.decode(buf.data(), static_cast<size_t>(p - buf.data()), back));
        FUZZ_CHECK(back.fields == c.fields);
        FUZZ_CHECK(check.entries() == 0);
    }
    decoder.compact();
    FUZZ_CHECK(decoder.memory() <= limit + 64 * 8);
    return 0;
}
