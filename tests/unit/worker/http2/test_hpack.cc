// HPACK (worker/http2/hpack.h): the RFC 7541 Appendix C examples, with and without Huffman
// coding, the decoder's rejection of malformed blocks, the dynamic table's size rules and
// compact storage, and the encoder read back by the decoder.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "worker/http2/hpack.h"

using wraith::http2::HpackDecoder;
using wraith::http2::HpackEncoder;
using wraith::http2::HpackSink;

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Collect : HpackSink {
    Fields fields;
    int oversized_count = 0;
    void field(std::string_view n, std::string_view v) override {
        fields.emplace_back(std::string(n), std::string(v));
    }
    void oversized() override { ++oversized_count; }
};

std::vector<uint8_t> hex(std::string_view s) {
    std::vector<uint8_t> out;
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (size_t i = 0; i + 1 < s.size(); i += 2)
        out.push_back(static_cast<uint8_t>(nib(s[i]) * 16 + nib(s[i + 1])));
    return out;
}

bool decode(HpackDecoder& d, std::string_view h, Fields* out = nullptr) {
    Collect c;
    auto bytes = hex(h);
    bool ok = d.decode(bytes.data(), bytes.size(), c);
    if (out)
        *out = c.fields;
    return ok;
}

const Fields kRequest1 = {
    {":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Fields kRequest2 = {{":method", "GET"},
                          {":scheme", "http"},
                          {":path", "/"},
                          {":authority", "www.example.com"},
                          {"cache-control", "no-cache"}};
const Fields kRequest3 = {{":method", "GET"},
                          {":scheme", "https"},
                          {":path", "/index.html"},
                          {":authority", "www.example.com"},
                          {"custom-key", "custom-value"}};
const Fields kResponse1 = {{":status", "302"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                           {"location", "https://www.example.com"}};
const Fields kResponse2 = {{":status", "307"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                           {"location", "https://www.example.com"}};
const Fields kResponse3 = {
    {":status", "200"},
    {"cache-control", "private"},
    {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
    {"location", "https://www.example.com"},
    {"content-encoding", "gzip"},
    {"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"}};

} // namespace

TEST_CASE("hpack C.2: literal with indexing, without, never indexed, indexed") {
    HpackDecoder d;
    Fields f;
    REQUIRE(decode(d, "400a637573746f6d2d6b65790d637573746f6d2d686561646572", &f));
    CHECK(f == Fields{{"custom-key", "custom-header"}});
    CHECK(d.table_size() == 55);
    CHECK(d.entries() == 1);

    HpackDecoder d2;
    REQUIRE(decode(d2, "040c2f73616d706c652f70617468", &f));
    CHECK(f == Fields{{":path", "/sample/path"}});
    CHECK(d2.entries() == 0);

    HpackDecoder d3;
    REQUIRE(decode(d3, "100870617373776f726406736563726574", &f));
    CHECK(f == Fields{{"password", "secret"}});
    CHECK(d3.entries() == 0);

    HpackDecoder d4;
    REQUIRE(decode(d4, "82", &f));
    CHECK(f == Fields{{":method", "GET"}});
    CHECK(d4.table_size() == 0);
}

TEST_CASE("hpack C.3 and C.4: requests share a table, with and without Huffman") {
    for (bool huffman : {false, true}) {
        INFO("huffman " << huffman);
        HpackDecoder d;
        Fields f;
        REQUIRE(decode(d,
                       huffman ? "828684418cf1e3c2e5f23a6ba0ab90f4ff"
                               : "828684410f7777772e6578616d706c652e636f6d",
                       &f));
        CHECK(f == kRequest1);
        CHECK(d.table_size() == 57);
        REQUIRE(
            decode(d, huffman ? "828684be5886a8eb10649cbf" : "828684be58086e6f2d6361636865", &f));
        CHECK(f == kRequest2);
        CHECK(d.table_size() == 110);
        REQUIRE(decode(d,
                       huffman ? "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"
                               : "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
                       &f));
        CHECK(f == kRequest3);
        CHECK(d.table_size() == 164);
        CHECK(d.entries() == 3);
    }
}

TEST_CASE("hpack C.5 and C.6: responses evict from a 256-byte table") {
    const char* plain[] = {
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d"
        "546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        "4803333037c1c0bf",
        "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f"
        "6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b"
        "2076657273696f6e3d31"};
    const char* huff[] = {
        "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c7"
        "8f0b97c8e9ae82ae43d3",
        "4883640effc1c0bf",
        "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335"
        "dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"};
    for (auto* blocks : {plain, huff}) {
        HpackDecoder d(256);
        Fields f;
        REQUIRE(decode(d, blocks[0], &f));
        CHECK(f == kResponse1);
        CHECK(d.table_size() == 222);
        REQUIRE(decode(d, blocks[1], &f));
        CHECK(f == kResponse2);
        CHECK(d.table_size() == 222);
        CHECK(d.entries() == 4);
        REQUIRE(decode(d, blocks[2], &f));
        CHECK(f == kResponse3);
        CHECK(d.table_size() == 215);
        CHECK(d.entries() == 3);
    }
}

TEST_CASE("hpack decoder rejects bad indices, integers and size updates") {
    HpackDecoder d;
    CHECK_FALSE(decode(d, "80"));                 // index 0
    CHECK_FALSE(decode(d, "be"));                 // 62: past an empty dynamic table
    CHECK_FALSE(decode(d, "7f00"));               // literal name index 63 (indexing), none
    CHECK_FALSE(decode(d, "ff8080808010"));       // an integer past 2^32 - 1
    CHECK_FALSE(decode(d, "ffffffffffffffffff")); // an integer that never ends
    CHECK_FALSE(decode(d, "3fe21f"));             // size update 4097 > our 4096
    CHECK_FALSE(decode(d, "823f00"));             // size update after a field
    CHECK_FALSE(decode(d, "4003"));               // literal cut short
    CHECK_FALSE(decode(d, "40037878"));           // name shorter than its length
    HpackDecoder ok;
    CHECK(decode(ok, "3fe11f82")); // size update 4096 at the start: fine
    CHECK(decode(ok, "2082"));     // and to 0
}

TEST_CASE("hpack decoder rejects bad Huffman (RFC 7541 §5.2)") {
    HpackDecoder d;
    // Literal without indexing, name "x", Huffman value of:
    CHECK_FALSE(decode(d, "000178"
                          "84ffffffff")); // EOS (30 ones) inside the string
    CHECK_FALSE(decode(d, "000178"
                          "8207ff")); // '0' then 11 bits of padding
    CHECK_FALSE(decode(d, "000178"
                          "8100")); // padding of zeros ('0' is 00000, then 000)
    Fields f;
    HpackDecoder d2;
    REQUIRE(decode(d2,
                   "000178"
                   "8107",
                   &f)); // '0' (00000) then 111 padding
    CHECK(f == Fields{{"x", "0"}});
}

TEST_CASE("hpack decoder: an entry larger than the table empties it; size updates evict") {
    HpackDecoder d(100);
    REQUIRE(decode(d, "400178"
                      "0179")); // x: y, 34 bytes
    CHECK(d.entries() == 1);
    // A 70-byte value: 1 + 70 + 32 > 100.
    std::string block = "400178"
                        "46";
    for (int i = 0; i < 70; ++i)
        block += "61";
    Fields f;
    REQUIRE(decode(d, block, &f));
    CHECK(f.size() == 1);
    CHECK(d.entries() == 0);
    CHECK(d.table_size() == 0);
    REQUIRE(decode(d, "400178"
                      "0179"
                      "400179"
                      "017a"));
    CHECK(d.entries() == 2);
    REQUIRE(decode(d, "3f03"
                      "82")); // size update to 34: the older entry goes
    CHECK(d.entries() == 1);
    REQUIRE(decode(d, "be", &f));
    CHECK(f == Fields{{"y", "z"}});
}

TEST_CASE("hpack decoder: an indexed name whose entry is evicted by its own insertion") {
    HpackDecoder d(80);
    REQUIRE(decode(d, "40046e616d65"
                      "0576616c7565")); // name: value (41)
    Fields f;
    // Literal with indexing, name = index 62 (that entry), value 10 bytes: inserting evicts it.
    REQUIRE(decode(d,
                   "7e"
                   "0a30313233343536373839",
                   &f));
    CHECK(f == Fields{{"name", "0123456789"}});
    REQUIRE(decode(d, "be", &f));
    CHECK(f == Fields{{"name", "0123456789"}});
    CHECK(d.entries() == 1);
}

TEST_CASE("hpack decoder: strings past max_string are skipped, not decoded") {
    HpackDecoder d;
    d.set_max_string(5000);
    std::vector<uint8_t> block = {0x00, 0x01, 'x'};
    uint8_t len[8];
    uint8_t* e = HpackEncoder::integer(len, 5262, 7, 0);
    block.insert(block.end(), len, e);
    block.insert(block.end(), 5262, 'a');
    block.push_back(0x82);
    Collect c;
    REQUIRE(d.decode(block.data(), block.size(), c));
    CHECK(c.oversized_count == 1);
    CHECK(c.fields == Fields{{":method", "GET"}});
}

TEST_CASE("hpack decoder keeps the table compact: sized to what was inserted") {
    HpackDecoder d;
    CHECK(d.memory() == 0);
    REQUIRE(decode(d, "828684410f7777772e6578616d706c652e636f6d")); // 25 bytes in the table
    d.compact();
    CHECK(d.memory() <= 25 + 8);
    Fields f;
    REQUIRE(decode(d, "be", &f));
    CHECK(f == Fields{{":authority", "www.example.com"}});
    REQUIRE(decode(d, "3f00"
                      "82")); // size update 31: empties (entry is 57)
    d.compact();
    CHECK(d.memory() == 0);
}

TEST_CASE("hpack Huffman: the RFC example strings encode and decode") {
    CHECK(HpackEncoder::huffman_length("www.example.com") == 12);
    uint8_t out[64];
    uint8_t* end = HpackEncoder::huffman_encode(out, "www.example.com");
    CHECK(std::vector<uint8_t>(out, end) == hex("f1e3c2e5f23a6ba0ab90f4ff"));
    end = HpackEncoder::huffman_encode(out, "no-cache");
    CHECK(std::vector<uint8_t>(out, end) == hex("a8eb10649cbf"));
    // Every byte value round-trips.
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    std::vector<uint8_t> buf(HpackEncoder::huffman_length(all));
    end = HpackEncoder::huffman_encode(buf.data(), all);
    REQUIRE(static_cast<size_t>(end - buf.data()) == buf.size());
    std::vector<char> back(buf.size() * 8 / 5 + 1);
    long n = HpackDecoder::huffman_decode(buf.data(), buf.size(), back.data());
    REQUIRE(n == 256);
    CHECK(std::string(back.data(), 256) == all);
}

TEST_CASE("hpack encoder: responses read back, folded to lowercase, with no table") {
    uint8_t buf[512];
    uint8_t* p = HpackEncoder::table_size_zero(buf);
    p = HpackEncoder::status(p, 200);
    p = HpackEncoder::status(p, 418);
    p = HpackEncoder::field(p, "content-type", "text/html; charset=utf-8");
    p = HpackEncoder::field(p, "X-Custom", "Value");
    p = HpackEncoder::field(p, "date", "Mon, 21 Oct 2013 20:13:22 GMT");
    p = HpackEncoder::field(p, "empty", "");
    HpackDecoder d;
    Collect c;
    REQUIRE(d.decode(buf, static_cast<size_t>(p - buf), c));
    CHECK(c.fields == Fields{{":status", "200"},
                             {":status", "418"},
                             {"content-type", "text/html; charset=utf-8"},
                             {"x-custom", "Value"},
                             {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
                             {"empty", ""}});
    CHECK(d.entries() == 0);
    CHECK(static_cast<size_t>(p - buf) < 80);
}

TEST_CASE("hpack decoder: empty entries take 32 bytes and no buffer (found by fuzz_hpack)") {
    HpackDecoder d;
    REQUIRE(decode(d, "400000"
                      "400000")); // two entries of "" : ""
    CHECK(d.entries() == 2);
    CHECK(d.table_size() == 64);
    d.compact();
    Fields f;
    REQUIRE(decode(d,
                   "be"
                   "4001780179"
                   "bf",
                   &f));
    CHECK(f == Fields{{"", ""}, {"x", "y"}, {"", ""}});
    d.compact();
}
