// DNS messages (modules/dns/message.h): the strict walk refuses truncated, overlong and
// looping messages; the question is read case-insensitively; TTLs age and clamp; DoH's
// base64url.
#include <catch2/catch.hpp>

#include <string>

#include "modules/dns/message.h"

using namespace wraith::dns;

namespace {

// A query for `name`/`type`, with an OPT record when `edns` (DO bit when `dnssec_ok`).
std::string query(std::string_view name, uint16_t type, uint16_t id = 0x1234, bool edns = false,
                  bool dnssec_ok = false) {
    std::string m;
    m += char(id >> 8);
    m += char(id & 0xff);
    m += '\x01'; // RD
    m += '\x00';
    m += std::string("\x00\x01\x00\x00\x00\x00\x00", 7);
    m += char(edns ? 1 : 0);
    uint8_t wire[kMaxName];
    size_t n = name_to_wire(name, wire);
    REQUIRE(n > 0);
    // name_to_wire lowers: keep the caller's case to test case-insensitivity.
    size_t pos = 0;
    for (std::string_view rest = name; pos < n && wire[pos];) {
        size_t dot = rest.find('.');
        std::string_view label = rest.substr(0, dot);
        m += char(label.size());
        m += label;
        pos += label.size() + 1;
        rest = dot == std::string_view::npos ? "" : rest.substr(dot + 1);
    }
    m += '\0';
    m += char(type >> 8);
    m += char(type & 0xff);
    m += std::string("\x00\x01", 2);
    if (edns)
        m += std::string("\x00\x00\x29\x04\xd0\x00\x00", 7) + char(dnssec_ok ? 0x80 : 0) +
             std::string("\x00\x00\x00", 3);
    return m;
}

// `q` turned into an answer with one A record (TTL `ttl`, name compressed) and, optionally,
// a SOA in authority.
std::string answer_a(const std::string& q, uint32_t ttl) {
    Message m;
    REQUIRE(parse(q, m) == ParseError::none);
    std::string a = q.substr(0, m.question_end);
    a[2] = char(0x81);
    a[3] = char(0x80);
    a[7] = 1;  // ANCOUNT
    a[11] = 0; // ARCOUNT
    a += std::string("\xc0\x0c\x00\x01\x00\x01", 6);
    a += char(ttl >> 24);
    a += char(ttl >> 16);
    a += char(ttl >> 8);
    a += char(ttl);
    a += std::string("\x00\x04\xc0\x00\x02\x0a", 6);
    return a;
}

} // namespace

TEST_CASE("a query's question is read lower-cased, with EDNS's size and DO bit") {
    Message m;
    REQUIRE(parse(query("WWW.Example.TEST", kTypeAaaa, 7, true, true), m) == ParseError::none);
    CHECK(m.id == 7);
    CHECK(m.qtype == kTypeAaaa);
    CHECK(m.qclass == kClassIn);
    CHECK(name_text(m.qname, m.qname_len) == "www.example.test.");
    CHECK(m.edns);
    CHECK(m.dnssec_ok);
    CHECK(m.udp_size == 1232);
    CHECK(check_query(m) == nullptr);
    Message plain;
    REQUIRE(parse(query("www.example.test", kTypeA), plain) == ParseError::none);
    CHECK_FALSE(plain.edns);
    CHECK(plain.udp_size == 512);
}

TEST_CASE("truncated, overlong and headerless messages are refused") {
    const std::string q = query("www.example.test", kTypeA);
    Message m;
    for (size_t len = 0; len < q.size(); ++len)
        CHECK(parse(std::string_view(q).substr(0, len), m) != ParseError::none);
    CHECK(parse(q + "x", m) == ParseError::too_long);
    CHECK(parse(std::string(kMaxMessage + 1, '\0'), m) == ParseError::too_long);
    std::string two = q;
    two[5] = 2;
    CHECK(parse(two, m) == ParseError::no_question);
}

TEST_CASE("compression pointers must point backwards: loops and forward jumps are refused") {
    // Header, then a question whose name is a pointer to itself (offset 12).
    std::string self("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
                     18);
    Message m;
    CHECK(parse(self, m) == ParseError::compression_loop);
    // A label, then a pointer back to that label: a loop through two hops.
    std::string two("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01"
                    "a\xc0\x0c\x00\x01\x00\x01",
                    20);
    CHECK(parse(two, m) == ParseError::compression_loop);
    // A valid backward pointer in an answer is fine.
    CHECK(parse(answer_a(query("a.test", kTypeA), 60), m) == ParseError::none);
    CHECK(m.min_ttl == 60);
}

TEST_CASE("names over 255 bytes and reserved label types are refused") {
    std::string q("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
    for (int i = 0; i < 5; ++i)
        q += char(63) + std::string(63, 'a');
    q += std::string("\x00\x00\x01\x00\x01", 5);
    Message m;
    CHECK(parse(q, m) == ParseError::bad_name);
    std::string ext("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x41\x00\x00\x01\x00\x01", 18);
    CHECK(parse(ext, m) == ParseError::bad_name);
}

TEST_CASE("an answer matches its question case-insensitively, type and class included") {
    Message q, a, other;
    REQUIRE(parse(query("www.example.test", kTypeA), q) == ParseError::none);
    REQUIRE(parse(answer_a(query("WWW.EXAMPLE.test", kTypeA), 30), a) == ParseError::none);
    CHECK(same_question(q, a));
    REQUIRE(parse(answer_a(query("www.example.test", kTypeAaaa), 30), other) == ParseError::none);
    CHECK_FALSE(same_question(q, other));
    CHECK_FALSE(same_question(q, q)); // a query is not an answer
}

TEST_CASE("TTLs age by the time in cache and clamp to min/max, OPT untouched") {
    std::string a = answer_a(query("a.test", kTypeA), 300);
    REQUIRE(rewrite_ttls(a.data(), a.size(), 100));
    Message m;
    REQUIRE(parse(a, m) == ParseError::none);
    CHECK(m.min_ttl == 200);
    REQUIRE(rewrite_ttls(a.data(), a.size(), 500));
    REQUIRE(parse(a, m) == ParseError::none);
    CHECK(m.min_ttl == 0);
    std::string b = answer_a(query("a.test", kTypeA), 5);
    REQUIRE(rewrite_ttls(b.data(), b.size(), 0, 60, 3600));
    REQUIRE(parse(b, m) == ParseError::none);
    CHECK(m.min_ttl == 60);
    std::string c = answer_a(query("a.test", kTypeA), 99999);
    REQUIRE(rewrite_ttls(c.data(), c.size(), 0, 0, 3600));
    REQUIRE(parse(c, m) == ParseError::none);
    CHECK(m.min_ttl == 3600);
}

TEST_CASE("a negative answer's SOA gives min(SOA TTL, MINIMUM)") {
    const std::string q = query("nope.test", kTypeA);
    Message qm;
    REQUIRE(parse(q, qm) == ParseError::none);
    std::string a = q.substr(0, qm.question_end);
    a[2] = char(0x81);
    a[3] = char(0x83); // NXDOMAIN
    a[9] = 1;          // NSCOUNT
    // "test." SOA, TTL 300: MNAME and RNAME as the root, serial..minimum, minimum 120.
    a += std::string("\x04test\x00\x00\x06\x00\x01\x00\x00\x01\x2c\x00\x16\x00\x00", 18);
    a += std::string("\x00\x00\x00\x01\x00\x00\x0e\x10\x00\x00\x02\x58\x00\x01\x51\x80"
                     "\x00\x00\x00\x78",
                     20);
    Message m;
    REQUIRE(parse(a, m) == ParseError::none);
    CHECK(m.rcode() == kRcodeNxDomain);
    CHECK(m.soa_ttl == 120);
    CHECK(m.min_ttl == 300);
}

TEST_CASE("built answers: NXDOMAIN and an address record for blocked names") {
    const std::string q = query("ads.test", kTypeA, 99);
    Message qm;
    REQUIRE(parse(q, qm) == ParseError::none);
    std::string nx;
    build_answer(q, qm, kRcodeNxDomain, nx);
    Message m;
    REQUIRE(parse(nx, m) == ParseError::none);
    CHECK(m.id == 99);
    CHECK(m.response());
    CHECK(m.rcode() == kRcodeNxDomain);
    CHECK(same_question(qm, m));
    std::string addr;
    build_answer(q, qm, kRcodeNoError, addr, std::string("\x00\x00\x00\x00", 4), 60);
    REQUIRE(parse(addr, m) == ParseError::none);
    CHECK(m.ancount == 1);
    CHECK(m.min_ttl == 60);
}

TEST_CASE("base64url without padding, as RFC 8484 §4.1 writes it") {
    std::string out;
    // RFC 8484 §4.1.1's example query for www.example.com.
    REQUIRE(base64url_decode("AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", out));
    Message m;
    REQUIRE(parse(out, m) == ParseError::none);
    CHECK(name_text(m.qname, m.qname_len) == "www.example.com.");
    CHECK(base64url_encode(out) == "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB");
    CHECK_FALSE(base64url_decode("AAAB+AAA", out)); // '+' is base64, not base64url
    CHECK_FALSE(base64url_decode("AAABAA==", out)); // no padding
    CHECK_FALSE(base64url_decode("AAAAA", out));    // no encoding is 5 characters long
    for (int n = 0; n < 40; ++n) {
        std::string raw;
        for (int i = 0; i < n; ++i)
            raw += char(i * 37 + n);
        REQUIRE(base64url_decode(base64url_encode(raw), out));
        CHECK(out == raw);
    }
}

TEST_CASE("names to wire form and back") {
    uint8_t wire[kMaxName];
    size_t n = name_to_wire("Ads.Example.", wire);
    REQUIRE(n == 13);
    CHECK(name_text(wire, n) == "ads.example.");
    CHECK(name_to_wire("a..b", wire) == 0);
    CHECK(name_to_wire(std::string(64, 'a'), wire) == 0);
    CHECK(name_to_wire(".", wire) == 1);
}

namespace {

// query() with EDNS and the given options in its OPT record.
std::string query_with_options(std::string_view name,
                               std::initializer_list<std::pair<uint16_t, std::string>> options) {
    std::string q = query(name, kTypeA, 0, true);
    std::string rdata;
    for (const auto& [code, data] : options) {
        rdata += char(code >> 8);
        rdata += char(code & 0xff);
        rdata += char(data.size() >> 8);
        rdata += char(data.size() & 0xff);
        rdata += data;
    }
    q[q.size() - 2] = char(rdata.size() >> 8);
    q[q.size() - 1] = char(rdata.size() & 0xff);
    return q + rdata;
}

} // namespace

TEST_CASE("EDNS options: Padding and edns-tcp-keepalive are found, overruns refused") {
    Message m;
    REQUIRE(parse(query_with_options("a.example", {{kOptionPadding, std::string(20, '\0')},
                                                   {kOptionKeepalive, ""}}),
                  m) == ParseError::none);
    CHECK(m.padded);
    CHECK(m.keepalive == 0);
    REQUIRE(parse(query_with_options("a.example", {{10, "12345678"}}), m) == ParseError::none);
    CHECK(!m.padded);
    CHECK(m.keepalive == -1);
    std::string overrun = query_with_options("a.example", {{kOptionPadding, "xx"}});
    overrun[overrun.size() - 3] = 3; // the option claims 3 bytes, RDATA holds 2
    CHECK(parse(overrun, m) == ParseError::bad_edns);
    std::string stray = query_with_options("a.example", {{kOptionPadding, ""}});
    stray += '\0';
    stray[stray.size() - 6] = 5; // RDATA 5: the option plus one byte that is no option
    CHECK(parse(stray, m) == ParseError::bad_edns);
}

TEST_CASE("hop-by-hop options are stripped, other options kept") {
    std::string q = query_with_options(
        "a.example",
        {{kOptionPadding, std::string(50, '\0')}, {10, "12345678"}, {kOptionKeepalive, ""}});
    REQUIRE(set_hop_options(q, -1, 0));
    Message m;
    REQUIRE(parse(q, m) == ParseError::none);
    CHECK(!m.padded);
    CHECK(m.keepalive == -1);
    CHECK(q == query_with_options("a.example", {{10, "12345678"}}));
    // Nothing to strip and nothing to add: no OPT appears.
    std::string plain = query("a.example", kTypeA);
    REQUIRE(set_hop_options(plain, -1, 0));
    CHECK(plain == query("a.example", kTypeA));
}

TEST_CASE("responses pad to a multiple of 468 octets (RFC 8467 block-length padding)") {
    for (uint32_t ttl : {60u, 300u}) {
        std::string a = answer_a(query("www.example.test", kTypeA), ttl);
        REQUIRE(set_hop_options(a, -1, kResponsePaddingBlock));
        CHECK(a.size() == 468);
        Message m;
        REQUIRE(parse(a, m) == ParseError::none);
        CHECK(m.padded);
        CHECK(m.edns);
        CHECK(m.arcount == 1);
        CHECK(m.udp_size == 1232);
        CHECK(m.min_ttl == ttl); // the OPT added does not count as a record with a TTL
        // Padding again replaces the padding: still one block.
        REQUIRE(set_hop_options(a, -1, kResponsePaddingBlock));
        CHECK(a.size() == 468);
    }
    // Exactly a block once the option's header is counted: no zero bytes, still the option.
    std::string q = query("x.example", kTypeA, 0, true);
    std::string big = query_with_options("x.example", {{10, std::string(468 - q.size() - 8, 'c')}});
    REQUIRE(set_hop_options(big, -1, kResponsePaddingBlock));
    CHECK(big.size() == 468);
    Message m;
    REQUIRE(parse(big, m) == ParseError::none);
    CHECK(m.padded);
    // One byte more and it takes a second block.
    big = query_with_options("x.example", {{10, std::string(468 - q.size() - 7, 'c')}});
    REQUIRE(set_hop_options(big, -1, kResponsePaddingBlock));
    CHECK(big.size() == 936);
    // Over the limit the message is padded to the limit; past it, not at all.
    std::string capped = answer_a(query("www.example.test", kTypeA), 60);
    REQUIRE(set_hop_options(capped, -1, kResponsePaddingBlock, 300));
    CHECK(capped.size() == 300);
    std::string tight = answer_a(query("www.example.test", kTypeA), 60);
    const size_t before = tight.size();
    REQUIRE(set_hop_options(tight, -1, kResponsePaddingBlock, before + 3));
    REQUIRE(parse(tight, m) == ParseError::none);
    CHECK(!m.padded);
    CHECK(tight.size() == before + 11); // only the OPT record
}

TEST_CASE("edns-tcp-keepalive in a response carries the timeout in 100 ms units") {
    std::string a = answer_a(query("www.example.test", kTypeA), 60);
    REQUIRE(set_hop_options(a, 100, 0)); // 10 s
    Message m;
    REQUIRE(parse(a, m) == ParseError::none);
    CHECK(m.keepalive == 2);
    CHECK(a.substr(a.size() - 6) == std::string("\x00\x0b\x00\x02\x00\x64", 6));
    REQUIRE(set_hop_options(a, 100, kResponsePaddingBlock)); // keep-alive then Padding
    REQUIRE(parse(a, m) == ParseError::none);
    CHECK(m.keepalive == 2);
    CHECK(m.padded);
    CHECK(a.size() == 468);
    CHECK(!set_hop_options(a = "garbage", 1, 0));
}

TEST_CASE("a TTL rewrite that would change a name through a pointer is refused") {
    // The fuzz target's find: a record whose owner name points into another record's TTL
    // (backwards, so parse() takes it). TTL 0x01410000 reads as the name "A.".
    std::string a = answer_a(query("www.example.test", kTypeA), 0x01410000);
    Message m;
    REQUIRE(parse(a, m) == ParseError::none);
    const size_t ttl_at = m.question_end + 6;
    const char rr[16] = {
        char(0xc0 | (ttl_at >> 8)), char(ttl_at & 0xff), 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4};
    a.append(rr, sizeof rr);
    a[7] = 2; // ANCOUNT
    REQUIRE(parse(a, m) == ParseError::none);
    // Aging by 100 s makes the TTL's bytes 01 40 ff 9c: a pointer past the message.
    CHECK(!rewrite_ttls(a.data(), a.size(), 100));
}
