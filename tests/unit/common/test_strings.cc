#include <catch2/catch.hpp>

#include <string>

#include "common/strings.h"

using wraith::copy_ascii_lower;

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
