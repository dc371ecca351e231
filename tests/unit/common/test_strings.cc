#include <catch2/catch.hpp>

#include <string>

#include "common/strings.h"

using wraith::copy_ascii_lower;
using wraith::copy_short;

namespace {

std::string lowered(const std::string& in) {
    std::string out(in.size(), '\0');
    copy_ascii_lower(out.data(), in.data(), in.size());
    return out;
}

} // namespace

TEST_CASE("copy_ascii_lower lower-cases A-Z only, at every length and alignment") {
    // Every byte value, in runs that cross the 8-byte steps at each offset.
    std::string all;
    for (int c = 0; c < 256; ++c)
        all.push_back(static_cast<char>(c));
    for (size_t start = 0; start < 9; ++start) {
        for (size_t len = 0; start + len <= all.size(); len += 7) {
            std::string in = all.substr(start, len);
            std::string out = lowered(in);
            REQUIRE(out.size() == in.size());
            for (size_t i = 0; i < in.size(); ++i) {
                unsigned char c = static_cast<unsigned char>(in[i]);
                unsigned char want = c >= 'A' && c <= 'Z' ? c + 32 : c;
                REQUIRE(static_cast<unsigned char>(out[i]) == want);
            }
        }
    }
}

TEST_CASE("copy_ascii_lower on field names") {
    CHECK(lowered("Content-Type") == "content-type");
    CHECK(lowered("X-REQUEST-ID") == "x-request-id");
    CHECK(lowered("etag") == "etag");
    CHECK(lowered("Strict-Transport-Security") == "strict-transport-security");
    CHECK(lowered("@[`{") == "@[`{"); // the neighbours of A-Z stay
    CHECK(lowered("\xc3\x89T\xc3\xa9") == "\xc3\x89t\xc3\xa9"); // bytes >= 0x80 stay
}

TEST_CASE("copy_short copies every length exactly, touching nothing past the end") {
    std::string src;
    for (int i = 0; i < 200; ++i)
        src.push_back(static_cast<char>('A' + i % 50));
    for (size_t n = 0; n <= 150; ++n) {
        std::string dst(n + 8, '#');
        copy_short(dst.data(), src.data(), n);
        REQUIRE(dst.substr(0, n) == src.substr(0, n));
        REQUIRE(dst.substr(n) == std::string(8, '#'));
    }
}

TEST_CASE("copy_ascii_lower touches nothing past the end") {
    for (size_t n = 0; n <= 40; ++n) {
        std::string src(n, 'Q');
        std::string dst(n + 8, '#');
        copy_ascii_lower(dst.data(), src.data(), n);
        REQUIRE(dst.substr(0, n) == std::string(n, 'q'));
        REQUIRE(dst.substr(n) == std::string(8, '#'));
    }
}
