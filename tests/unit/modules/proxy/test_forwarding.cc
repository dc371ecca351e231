#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <cstring>
#include <netinet/in.h>
#include <set>
#include <string>

#include "modules/proxy/forwarding.h"

using namespace wraith::proxy;

namespace {

sockaddr_storage v4(const char* ip) {
    sockaddr_storage ss{};
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    return ss;
}

sockaddr_storage v6(const char* ip) {
    sockaddr_storage ss{};
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    return ss;
}

std::vector<Cidr> list(std::initializer_list<const char*> items) {
    std::vector<Cidr> out;
    for (const char* i : items) {
        Cidr c;
        REQUIRE(parse_cidr(i, c).empty());
        out.push_back(c);
    }
    return out;
}

} // namespace

TEST_CASE("parse_cidr accepts IPv4, IPv6 and bare addresses", "[proxy][cidr]") {
    Cidr c;
    REQUIRE(parse_cidr("10.0.0.0/8", c).empty());
    CHECK(c.family == AF_INET);
    CHECK(c.prefix == 8);
    REQUIRE(parse_cidr("127.0.0.1", c).empty());
    CHECK(c.prefix == 32);
    REQUIRE(parse_cidr("::1/128", c).empty());
    CHECK(c.family == AF_INET6);
    CHECK(c.prefix == 128);
    REQUIRE(parse_cidr("2001:db8::/32", c).empty());
    CHECK(c.prefix == 32);
    REQUIRE(parse_cidr("::1", c).empty());
    CHECK(c.prefix == 128);
    REQUIRE(parse_cidr("0.0.0.0/0", c).empty());
    CHECK(c.prefix == 0);
}

TEST_CASE("parse_cidr rejects malformed input", "[proxy][cidr]") {
    Cidr c;
    for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x",
                            "example.com", "10.0.0.0/8/8", "10.0.0.0/-1", "1.2.3.4 /8"})
        CHECK_FALSE(parse_cidr(bad, c).empty());
}

TEST_CASE("cidr_match", "[proxy][cidr]") {
    auto l = list({"10.0.0.0/8", "::1/128", "127.0.0.1", "192.168.1.128/25"});
    CHECK(cidr_match(l, v4("10.1.2.3")));
    CHECK(cidr_match(l, v4("127.0.0.1")));
    CHECK_FALSE(cidr_match(l, v4("127.0.0.2")));
    CHECK_FALSE(cidr_match(l, v4("11.0.0.1")));
    CHECK(cidr_match(l, v4("192.168.1.200")));
    CHECK_FALSE(cidr_match(l, v4("192.168.1.127")));
    CHECK(cidr_match(l, v6("::1")));
    CHECK_FALSE(cidr_match(l, v6("::2")));
    CHECK(cidr_match(l, v6("::ffff:10.9.9.9"))); // IPv4-mapped matches the IPv4 block
    CHECK_FALSE(cidr_match({}, v4("10.0.0.1")));
    auto host_bits = list({"10.1.2.3/8"});
    CHECK(cidr_match(host_bits, v4("10.200.0.1")));
    auto all6 = list({"::/0"});
    CHECK(cidr_match(all6, v6("2001:db8::1")));
    CHECK_FALSE(cidr_match(all6, v4("10.0.0.1")));
}

TEST_CASE("request ids", "[proxy][request-id]") {
    CHECK(valid_request_id("abc-DEF_1.2"));
    CHECK(valid_request_id(std::string(200, 'a')));
    CHECK_FALSE(valid_request_id(std::string(201, 'a')));
    CHECK_FALSE(valid_request_id(""));
    CHECK_FALSE(valid_request_id("a b"));
    CHECK_FALSE(valid_request_id("a\r\nb"));
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        char id[32];
        wraith::generate_request_id(id);
        std::string s(id, 32);
        CHECK(s.find_first_not_of("0123456789abcdef") == std::string::npos);
        seen.insert(s);
    }
    CHECK(seen.size() == 1000);
}

TEST_CASE("Forwarded node and value quoting", "[proxy][forwarded]") {
    CHECK(forwarded_node("192.0.2.60") == "192.0.2.60");
    CHECK(forwarded_node("2001:db8:cafe::17") == "\"[2001:db8:cafe::17]\"");
    CHECK(forwarded_value("example.com") == "example.com");
    CHECK(forwarded_value("example.com:8080") == "\"example.com:8080\"");
    CHECK(forwarded_value("a\"b") == "\"a\\\"b\"");
    CHECK(wraith::is_token("x-a"));
    CHECK_FALSE(wraith::is_token("x a"));
    CHECK_FALSE(wraith::is_token(""));
    CHECK(wraith::is_field_value("fine value"));
    CHECK_FALSE(wraith::is_field_value("bad\r\nvalue"));
}
