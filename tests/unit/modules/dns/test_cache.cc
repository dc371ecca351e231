// The shared DNS cache (modules/dns/cache.h) and the [dns] table (modules/dns/dns_config.h):
// TTLs hold, the key includes type and DO bit, the ring's FIFO eviction with a second chance,
// block lists in both formats, and every config mistake at its FILE:LINE:COL.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "modules/dns/cache.h"
#include "modules/dns/dns_config.h"
#include "modules/dns/message.h"

using namespace wraith;
using namespace wraith::dns;

namespace {

Message question(std::string_view name, uint16_t type, bool dnssec_ok = false) {
    Message m;
    m.qname_len = static_cast<uint8_t>(name_to_wire(name, m.qname));
    REQUIRE(m.qname_len > 0);
    m.qtype = type;
    m.qclass = kClassIn;
    m.dnssec_ok = dnssec_ok;
    return m;
}

struct Zone {
    explicit Zone(size_t size) : mem(size / 8 + 1) {
        Cache::init(mem.data(), size);
        cache = Cache(mem.data(), size);
        REQUIRE(cache.valid());
    }
    std::vector<uint64_t> mem; // aligned for the header
    Cache cache;
};

std::vector<std::string> errors_of(const std::string& text) {
    Diagnostics diag;
    const std::string all = "[[listen]]\naddress = \"127.0.0.1:8080\"\n" + text +
                            "\n[[site]]\nhosts = [\"*\"]\n  [[site.route]]\n  respond = {}\n";
    auto cfg = load_config_text(all, "dns.toml", "/tmp", diag);
    std::vector<std::string> out;
    for (const auto& d : diag.list())
        out.push_back(d.text());
    return out;
}

} // namespace

TEST_CASE("a cached answer is found until its TTL runs out, with its age") {
    Zone z(Cache::kMinSize);
    const CacheKey key(question("www.example.test", kTypeA));
    z.cache.store(key, "answer-bytes", 10, 1000);
    std::string out;
    uint32_t age = 0;
    REQUIRE(z.cache.lookup(key, 3500, out, age));
    CHECK(out == "answer-bytes");
    CHECK(age == 2);
    CHECK_FALSE(z.cache.lookup(key, 11000, out, age)); // 10 s later: expired
    CHECK_FALSE(z.cache.lookup(key, 1000, out, age));  // and forgotten
}

TEST_CASE("serve_stale keeps an expired answer that long, served only when asked for") {
    Zone z(Cache::kMinSize);
    const CacheKey key(question("stale.example.test", kTypeA));
    z.cache.store(key, "answer-bytes", 10, 1000);
    std::string out;
    uint32_t age = 0;
    // Expired: not a fresh answer, whether or not it is kept for serve_stale.
    CHECK(!z.cache.lookup(key, 11000, out, age, 60));
    // Kept: a stale lookup finds it until serve_stale has passed since it expired.
    REQUIRE(z.cache.lookup(key, 11000, out, age, 60, true));
    CHECK(out == "answer-bytes");
    CHECK(age == 10);
    REQUIRE(z.cache.lookup(key, 70999, out, age, 60, true));
    CHECK(!z.cache.lookup(key, 71000, out, age, 60, true));
    // Dropped once past it: not found again even with a longer window.
    CHECK(!z.cache.lookup(key, 71000, out, age, 3600, true));
    // Without serve_stale an expired entry is dropped at once.
    const CacheKey other(question("other.example.test", kTypeA));
    z.cache.store(other, "x", 10, 1000);
    CHECK(!z.cache.lookup(other, 11000, out, age));
    CHECK(!z.cache.lookup(other, 11000, out, age, 60, true));
    // A fresh answer replaces a stale one.
    z.cache.store(key, "fresh", 10, 80000);
    REQUIRE(z.cache.lookup(key, 81000, out, age, 60));
    CHECK(out == "fresh");
}

TEST_CASE("the key is name (any case), type, class and DO bit") {
    Zone z(Cache::kMinSize);
    z.cache.store(CacheKey(question("WWW.example.test", kTypeA)), "a", 60, 0);
    std::string out;
    uint32_t age;
    CHECK(z.cache.lookup(CacheKey(question("www.EXAMPLE.test", kTypeA)), 0, out, age));
    CHECK_FALSE(z.cache.lookup(CacheKey(question("www.example.test", kTypeAaaa)), 0, out, age));
    CHECK_FALSE(z.cache.lookup(CacheKey(question("www.example.test", kTypeA, true)), 0, out, age));
    z.cache.store(CacheKey(question("www.example.test", kTypeA)), "b", 60, 0); // replaces
    REQUIRE(z.cache.lookup(CacheKey(question("www.example.test", kTypeA)), 0, out, age));
    CHECK(out == "b");
}

TEST_CASE("a full ring evicts the oldest entries first, but keeps those still asked for") {
    Zone z(Cache::kMinSize);
    const std::string answer(300, 'x');
    auto name = [](int i) { return std::to_string(i) + ".n.test"; }; // (GCC 12: "n" + s warns)
    z.cache.store(CacheKey(question("hot.test", kTypeA)), answer, 3600, 0);
    std::string out;
    uint32_t age;
    // Far more than fits (64 KiB); the hot entry is asked for all along.
    for (int i = 0; i < 2000; ++i) {
        z.cache.store(CacheKey(question(name(i), kTypeA)), answer, 3600, 0);
        REQUIRE(z.cache.lookup(CacheKey(question("hot.test", kTypeA)), 0, out, age));
    }
    CHECK_FALSE(z.cache.lookup(CacheKey(question(name(0), kTypeA)), 0, out, age));
    CHECK(z.cache.lookup(CacheKey(question(name(1999), kTypeA)), 0, out, age));
    CHECK(out == answer);
}

TEST_CASE("answers too large for the ring are not stored") {
    Zone z(Cache::kMinSize);
    const CacheKey key(question("big.test", kTypeTxt));
    z.cache.store(key, std::string(20000, 'x'), 60, 0);
    std::string out;
    uint32_t age;
    CHECK_FALSE(z.cache.lookup(key, 0, out, age));
}

TEST_CASE("block lists: hosts format and plain names; a domain blocks its subdomains") {
    std::unordered_set<std::string> names;
    CHECK(parse_block_list("# comment\n127.0.0.1 localhost\n0.0.0.0 ads.example tracker.test\n"
                           "\nplain.example\n:: six.example # trailing\n",
                           names)
              .empty());
    DnsConfig dc;
    dc.blocked = names;
    auto blocked = [&](std::string_view n) {
        uint8_t wire[kMaxName];
        size_t len = name_to_wire(n, wire);
        return dc.blocks(wire, len);
    };
    CHECK(blocked("ads.example"));
    CHECK(blocked("x.ADS.example"));
    CHECK(blocked("tracker.test"));
    CHECK(blocked("plain.example"));
    CHECK(blocked("six.example"));
    CHECK_FALSE(blocked("example"));
    CHECK_FALSE(blocked("localhost"));
    CHECK_FALSE(blocked("bads.example"));
    CHECK(parse_block_list("ok.example\nnot an address line\n", names) ==
          "line 2: expected \"ADDRESS NAME...\" (hosts format) or one name");
}

TEST_CASE("upstream addresses") {
    Upstream u;
    CHECK(parse_upstream("127.0.0.1:5353", u).empty());
    CHECK(u.text == "127.0.0.1:5353");
    CHECK(parse_upstream("[::1]:53", u).empty());
    CHECK(u.text == "[::1]:53");
    CHECK(parse_upstream("9.9.9.9", u).empty());
    CHECK(u.text == "9.9.9.9:53");
    CHECK_FALSE(parse_upstream("dns.example:53", u).empty());
    CHECK_FALSE(parse_upstream("127.0.0.1:0", u).empty());
    CHECK_FALSE(parse_upstream("127.0.0.1:70000", u).empty());
    CHECK(parse_upstream("tls://9.9.9.9:853", u).find("not supported yet") != std::string::npos);
}

TEST_CASE("[dns] mistakes are reported at their FILE:LINE:COL") {
    CHECK(errors_of("[dns]\nupstreams = [\"nowhere\"]\n") ==
          std::vector<std::string>{
              "dns.toml:4:14: dns.upstreams: \"nowhere\": expected an IP address and port, like "
              "\"127.0.0.1:53\" or \"[::1]:53\" (upstreams are not resolved by name)"});
    CHECK(
        errors_of("[dns]\nupstreams = [\"127.0.0.1:53\"]\nblock_lists = [\"/nonexistent/x\"]\n") ==
        std::vector<std::string>{"dns.toml:5:16: dns.block_lists: cannot read \"/nonexistent/x\""});
    CHECK(errors_of("[dns]\nupstreams = [\"127.0.0.1:53\"]\ncache_size = \"1k\"\n") ==
          std::vector<std::string>{
              "dns.toml:5:14: dns.cache_size: expected a size from \"64k\" to \"1g\""});
    CHECK(errors_of("[dns]\ncache_size = \"1m\"\n") ==
          std::vector<std::string>{"dns.toml:3:1: dns.upstreams: [dns] needs upstreams = "
                                   "[\"ADDRESS:PORT\", ...] (plain DNS servers)"});
    const std::vector<std::string> route = errors_of(
        "[[site]]\nhosts = [\"x\"]\n  [[site.route]]\n  path = \"=/dns-query\"\n  dns = {}\n");
    REQUIRE(route.size() == 1);
    CHECK(route[0] == "dns.toml:7:9: dns: answering DNS over HTTPS needs a [dns] table with "
                      "upstreams = [\"ADDRESS:PORT\", ...]");
    CHECK(errors_of("[dns]\nupstreams = [\"127.0.0.1:53\"]\nblock_address = [\"nope\"]\n").size() ==
          1);
    CHECK(errors_of("[dns]\nupstreams = [\"127.0.0.1:53\"]\nmin_ttl = \"2h\"\nmax_ttl = \"1h\"\n")
              .size() == 1);
    CHECK(errors_of("[dns]\nupstreams = [\"127.0.0.1:53\", \"[::1]:53\"]\ncache_size = \"1m\"\n"
                    "min_ttl = \"10s\"\nnegative_ttl = \"5m\"\ntimeout = \"1s\"\n")
              .empty());
}
