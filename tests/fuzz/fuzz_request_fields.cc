// libFuzzer target for the parsers of request fields a client controls beyond the request head:
// the request path (percent-decoding + normalisation), HTTP dates (If-Modified-Since, ...),
// Range, If-None-Match lists and Accept-Encoding. The first input byte picks the parser; the
// rest is the field value. Each call checks the invariants its callers rely on.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/stat.h>

#include "common/arena.h"
#include "common/http_date.h"
#include "common/path.h"
#include "modules/compress/accept_encoding.h"
#include "modules/static/range.h"
#include "modules/static/validators.h"

using namespace wraith;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t which = data[0];
    std::string_view field(reinterpret_cast<const char*>(data + 1), size - 1);
    static Arena arena;
    arena.reset();

    switch (which % 5) {
    case 0: { // path
        std::string_view out;
        if (normalize_path(field, arena, out)) {
            CHECK(!out.empty() && out[0] == '/');
            CHECK(out.find('\0') == std::string_view::npos);
            CHECK(out.find('\\') == std::string_view::npos);
            CHECK(out.find("//") == std::string_view::npos);
            // No "." or ".." segment survives: nothing can climb out of a root.
            size_t i = 0;
            while (i < out.size()) {
                size_t j = out.find('/', i + 1);
                std::string_view seg =
                    out.substr(i + 1, (j == std::string_view::npos ? out.size() : j) - i - 1);
                CHECK(seg != "." && seg != "..");
                if (j == std::string_view::npos)
                    break;
                i = j;
            }
            // Normalising twice changes nothing (the result has no '%' escapes left to
            // decode only if the input had none; check idempotence on escape-free output).
            if (out.find('%') == std::string_view::npos) {
                std::string_view again;
                CHECK(normalize_path(out, arena, again));
                CHECK(again == out);
            }
        }
        break;
    }
    case 1: { // HTTP date
        auto t = parse_http_date(field);
        if (t && *t >= 0 && *t < 253402300800) { // before year 10000
            char buf[http_date_size];
            size_t n = format_http_date(*t, buf);
            CHECK(n > 0);
            auto back = parse_http_date(std::string_view(buf, n));
            CHECK(back && *back == *t);
        }
        break;
    }
    case 2: { // Range against a few representation sizes
        for (uint64_t len : {uint64_t{0}, uint64_t{1}, uint64_t{1000}, uint64_t{1} << 40}) {
            static_files::ByteRange ranges[static_files::max_range_parts];
            size_t count = 0;
            auto r = static_files::parse_range(field, len, ranges, count);
            if (r == static_files::RangeOutcome::satisfiable) {
                CHECK(count >= 1 && count <= static_files::max_range_parts);
                for (size_t k = 0; k < count; ++k) {
                    CHECK(ranges[k].first <= ranges[k].last);
                    CHECK(ranges[k].last < len);
                    if (k)
                        CHECK(ranges[k - 1].last + 1 < ranges[k].first);
                }
                if (count > 1) {
                    auto mp = static_files::make_multipart(ranges, count, len, "text/plain", arena);
                    uint64_t total = mp.closing.size();
                    for (size_t k = 0; k < count; ++k)
                        total += mp.part_heads[k].size() + ranges[k].length();
                    CHECK(total == mp.content_length);
                }
            }
        }
        break;
    }
    case 3: { // If-None-Match / If-Match lists
        static_files::etag_list_matches(field, "\"abc-1\"", true);
        static_files::etag_list_matches(field, "\"abc-1\"", false);
        break;
    }
    case 4: { // Accept-Encoding
        static const std::string order[] = {"zstd", "br", "gzip"};
        std::string_view chosen = choose_encoding(field, order);
        CHECK(chosen.empty() || chosen == "zstd" || chosen == "br" || chosen == "gzip");
        break;
    }
    }
    return 0;
}
