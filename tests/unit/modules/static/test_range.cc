#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "modules/static/range.h"

using namespace wraith::static_files;
using wraith::Arena;

namespace {

struct Parsed {
    RangeOutcome outcome;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
};

Parsed parse(std::string_view field, uint64_t size) {
    ByteRange r[max_range_parts];
    size_t n = 0;
    Parsed p{parse_range(field, size, r, n), {}};
    for (size_t i = 0; i < n; ++i)
        p.ranges.emplace_back(r[i].first, r[i].last);
    return p;
}

using Pairs = std::vector<std::pair<uint64_t, uint64_t>>;

} // namespace

TEST_CASE("static range: single ranges of each form", "[static][range]") {
    auto p = parse("bytes=0-99", 1000);
    CHECK(p.outcome == RangeOutcome::satisfiable);
    CHECK(p.ranges == Pairs{{0, 99}});
    CHECK(parse("bytes=500-", 1000).ranges == Pairs{{500, 999}});
    CHECK(parse("bytes=-500", 1000).ranges == Pairs{{500, 999}});
    CHECK(parse("bytes=-5000", 1000).ranges == Pairs{{0, 999}});
    CHECK(parse("bytes=900-5000", 1000).ranges == Pairs{{900, 999}});
    CHECK(parse("bytes=999-999", 1000).ranges == Pairs{{999, 999}});
    CHECK(parse("BYTES=0-0", 1000).ranges == Pairs{{0, 0}});
}

TEST_CASE("static range: unsatisfiable sets answer 416", "[static][range]") {
    CHECK(parse("bytes=1000-", 1000).outcome == RangeOutcome::unsatisfiable);
    CHECK(parse("bytes=1000-2000", 1000).outcome == RangeOutcome::unsatisfiable);
    CHECK(parse("bytes=-0", 1000).outcome == RangeOutcome::unsatisfiable);
    CHECK(parse("bytes=2000-3000, 5000-", 1000).outcome == RangeOutcome::unsatisfiable);
}

TEST_CASE("static range: unsatisfiable parts are dropped when others remain", "[static][range]") {
    auto p = parse("bytes=2000-3000, 0-9", 1000);
    CHECK(p.outcome == RangeOutcome::satisfiable);
    CHECK(p.ranges == Pairs{{0, 9}});
}

TEST_CASE("static range: other units and malformed fields are ignored", "[static][range]") {
    for (const char* f : {"items=0-1", "bytes", "bytes=", "bytes=abc", "bytes=5-1", "bytes=1-2-3",
                          "bytes=--5", "bytes=0-1;x", "bytes = 0-1x", "bytes=-",
                          "bytes=99999999999999999999-", "bytes=0-1,,x"}) {
        INFO(f);
        CHECK(parse(f, 1000).outcome == RangeOutcome::ignore);
    }
}

TEST_CASE("static range: list syntax tolerates OWS and empty elements", "[static][range]") {
    auto p = parse("bytes= 0-1 , ,5-6,", 1000);
    CHECK(p.outcome == RangeOutcome::satisfiable);
    CHECK(p.ranges == Pairs{{0, 1}, {5, 6}});
}

TEST_CASE("static range: overlapping and adjacent ranges coalesce in order", "[static][range]") {
    CHECK(parse("bytes=50-99, 0-49", 1000).ranges == Pairs{{0, 99}});
    CHECK(parse("bytes=0-10, 5-20", 1000).ranges == Pairs{{0, 20}});
    CHECK(parse("bytes=500-600, 0-1, -100", 1000).ranges == Pairs{{0, 1}, {500, 600}, {900, 999}});
    CHECK(parse("bytes=0-, 10-20", 1000).ranges == Pairs{{0, 999}});
}

TEST_CASE("static range: too many parts are served whole", "[static][range]") {
    std::string many = "bytes=";
    for (int i = 0; i < 17; ++i)
        many += std::to_string(i * 10) + "-" + std::to_string(i * 10 + 1) + ",";
    CHECK(parse(many, 1000).outcome == RangeOutcome::ignore);
    std::string sixteen = "bytes=";
    for (int i = 0; i < 16; ++i)
        sixteen += std::to_string(i * 10) + "-" + std::to_string(i * 10 + 1) + ",";
    CHECK(parse(sixteen, 1000).ranges.size() == 16);
    // Many tiny overlapping specs coalesce into one part.
    std::string overlapping = "bytes=";
    for (int i = 0; i < 60; ++i)
        overlapping += "0-" + std::to_string(i) + ",";
    CHECK(parse(overlapping, 1000).ranges == Pairs{{0, 59}});
    std::string abusive = "bytes=";
    for (int i = 0; i < 65; ++i)
        abusive += "0-1,";
    CHECK(parse(abusive, 1000).outcome == RangeOutcome::ignore);
}

TEST_CASE("static range: an empty representation is served whole", "[static][range]") {
    CHECK(parse("bytes=0-", 0).outcome == RangeOutcome::ignore);
    CHECK(parse("bytes=-5", 0).outcome == RangeOutcome::ignore);
}

TEST_CASE("static range: Content-Range values", "[static][range]") {
    Arena arena;
    CHECK(content_range({10, 19}, 100, arena) == "bytes 10-19/100");
    CHECK(unsatisfied_range(100, arena) == "bytes */100");
}

TEST_CASE("static range: multipart framing length is exact", "[static][range]") {
    Arena arena;
    ByteRange r[2] = {{0, 9}, {20, 29}};
    Multipart m = make_multipart(r, 2, 100, "text/plain", arena);
    REQUIRE(m.boundary.size() >= 16);
    CHECK(m.content_type == "multipart/byteranges; boundary=" + std::string(m.boundary));
    std::string body;
    body += m.part_heads[0];
    body += std::string(10, 'a');
    body += m.part_heads[1];
    body += std::string(10, 'b');
    body += m.closing;
    CHECK(body.size() == m.content_length);
    std::string b(m.boundary);
    CHECK(std::string(m.part_heads[0]) ==
          "--" + b + "\r\ncontent-type: text/plain\r\ncontent-range: bytes 0-9/100\r\n\r\n");
    CHECK(std::string(m.part_heads[1]) ==
          "\r\n--" + b + "\r\ncontent-type: text/plain\r\ncontent-range: bytes 20-29/100\r\n\r\n");
    CHECK(std::string(m.closing) == "\r\n--" + b + "--\r\n");
    Multipart other = make_multipart(r, 2, 100, "text/plain", arena);
    CHECK(other.boundary != m.boundary);
}
