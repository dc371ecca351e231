// The PROXY protocol header parser (worker/proxy_protocol.h): v1 lines and v2 binary headers
// give the client's and the destination's address and their exact length; prefixes wait for
// more; LOCAL and UNKNOWN keep the real peer; malformed headers are refused with a reason.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "worker/proxy_protocol.h"

using namespace wraith;
using proxy_protocol::Result;

namespace {

std::string ip_port(const sockaddr_storage& a) {
    char buf[INET6_ADDRSTRLEN];
    if (a.ss_family == AF_INET) {
        auto* s = reinterpret_cast<const sockaddr_in*>(&a);
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(s->sin_port));
    }
    auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s->sin6_port));
}

Result parse(const std::string& in, proxy_protocol::Header& h, std::string* why = nullptr) {
    const char* w = "";
    Result r = proxy_protocol::parse(in, h, &w);
    if (why)
        *why = w;
    return r;
}

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

} // namespace

TEST_CASE("proxy protocol: v1 lines") {
    proxy_protocol::Header h;
    std::string line = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
    REQUIRE(parse(line + "GET / HTTP/1.1\r\n", h) == Result::done);
    CHECK(h.length == line.size());
    CHECK(h.has_addresses);
    CHECK(ip_port(h.source) == "192.0.2.1:56324");
    CHECK(ip_port(h.destination) == "198.51.100.1:443");
    REQUIRE(parse("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", h) == Result::done);
    CHECK(ip_port(h.source) == "[2001:db8::1]:1");
    REQUIRE(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", h) == Result::done);
    CHECK_FALSE(h.has_addresses);
    for (size_t n = 0; n < line.size(); ++n)
        CHECK(parse(line.substr(0, n), h) == Result::need_more);
    std::string why;
    CHECK(parse("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", h, &why) == Result::invalid);
    CHECK(why == "v1 port is not a number 0..65535");
    CHECK(parse("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", h) == Result::invalid);
    CHECK(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", h) == Result::invalid);
    CHECK(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", h) == Result::invalid);
    CHECK(parse("PROXY " + std::string(200, 'A'), h) == Result::invalid);
    CHECK(parse("GET / HTTP/1.1\r\n", h, &why) == Result::invalid);
    CHECK(why == "the connection does not start with a PROXY protocol header");
}

TEST_CASE("proxy protocol: v2 headers") {
    proxy_protocol::Header h;
    std::string v4 = kSig + "\x21\x11" + std::string("\x00\x0c", 2) +
                     std::string("\xc0\x00\x02\x01", 4) + "\xc6\x33\x64\x01" + "\xdc\x04" +
                     std::string("\x01\xbb", 2);
    REQUIRE(parse(v4 + "\x16\x03", h) == Result::done);
    CHECK(h.length == 28);
    CHECK(ip_port(h.source) == "192.0.2.1:56324");
    CHECK(ip_port(h.destination) == "198.51.100.1:443");
    for (size_t n = 0; n < v4.size(); ++n)
        CHECK(parse(v4.substr(0, n), h) == Result::need_more);
    // TLVs after the addresses are skipped with the length.
    std::string tlv = kSig + "\x21\x11" + std::string("\x00\x12", 2) + v4.substr(16, 12) +
                      std::string("\x04\x00\x03"
                                  "abc",
                                  6);
    REQUIRE(parse(tlv, h) == Result::done);
    CHECK(h.length == 34);
    // LOCAL: a health check from the balancer itself.
    REQUIRE(parse(kSig + std::string("\x20\x00\x00\x00", 4), h) == Result::done);
    CHECK_FALSE(h.has_addresses);
    std::string why;
    CHECK(parse(kSig + "\x31\x11" + std::string("\x00\x00", 2), h, &why) == Result::invalid);
    CHECK(why == "v2 version is not 2");
    CHECK(parse(kSig + "\x21\x11" + std::string("\x00\x04", 2) + "abcd", h, &why) ==
          Result::invalid);
    CHECK(why == "v2 IPv4 address block shorter than 12 bytes");
    CHECK(parse(kSig + "\x21\x11" + std::string("\xff\xff", 2), h, &why) == Result::invalid);
}
