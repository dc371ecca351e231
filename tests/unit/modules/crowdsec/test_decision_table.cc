// The crowdsec module's data structures (modules/crowdsec): the decisions trie (insert, delete,
// overlapping ranges, expiry, IPv4-mapped IPv6, full pools, a startup pull's sweep, agreement
// with a linear scan), Go durations and the Local API's stream answer.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "modules/crowdsec/decision_table.h"
#include "modules/crowdsec/lapi_stream.h"
#include "tests/unit/modules/crowdsec/zone_fixture.h"

using namespace wraith;
using namespace wraith::crowdsec;

namespace {

using crowdsec_test::ip;
using crowdsec_test::net;
using crowdsec_test::Zone;

} // namespace

TEST_CASE("crowdsec trie: hosts and ranges, most specific and strongest win, delete prunes") {
    Zone z(64);
    DecisionTable t(z.mem, z.size);
    REQUIRE(t.valid());
    REQUIRE(t.lock());
    const int64_t now = 1000000, later = now + 60000;
    CHECK(t.lookup(ip("192.0.2.1"), now) == Remedy::none);
    REQUIRE(t.upsert(net("192.0.2.1"), 1, Remedy::ban, Origin::crowdsec, later, 1));
    REQUIRE(t.upsert(net("198.51.100.0/24"), 2, Remedy::captcha, Origin::cscli, later, 1));
    REQUIRE(t.upsert(net("198.51.100.128/25"), 3, Remedy::ban, Origin::cscli, later, 1));
    REQUIRE(t.upsert(net("2001:db8::/32"), 4, Remedy::ban, Origin::capi, later, 1));
    const uint32_t nodes_with_four = t.header().nodes_used;
    CHECK(t.lookup(ip("192.0.2.1"), now) == Remedy::ban);
    CHECK(t.lookup(ip("192.0.2.2"), now) == Remedy::none);
    CHECK(t.lookup(ip("198.51.100.7"), now) == Remedy::captcha);
    CHECK(t.lookup(ip("198.51.100.200"), now) == Remedy::ban); // inside both: the stronger
    CHECK(t.lookup(ip("198.51.101.1"), now) == Remedy::none);
    CHECK(t.lookup(ip("2001:db8:1::5"), now) == Remedy::ban);
    CHECK(t.lookup(ip("2001:db9::5"), now) == Remedy::none);
    // An IPv4 client on a dual-stack socket: the same answer as its plain IPv4 address.
    CHECK(t.lookup(ip("::ffff:192.0.2.1"), now) == Remedy::ban);
    CHECK(t.lookup(ip("::ffff:198.51.100.7"), now) == Remedy::captcha);
    // ::/0 is every IPv6 address, IPv4-mapped ones (how a dual-stack socket shows IPv4) too.
    REQUIRE(t.upsert(net("::/0"), 99, Remedy::throttle, Origin::cscli, later, 1));
    CHECK(t.lookup(ip("203.0.113.1"), now) == Remedy::throttle);
    CHECK(t.lookup(ip("2001:db9::5"), now) == Remedy::throttle);
    CHECK(t.remove(99));
    CHECK(t.size() == 4);

    // The same id again refreshes, never duplicates.
    REQUIRE(t.upsert(net("192.0.2.1"), 1, Remedy::ban, Origin::crowdsec, later + 1000, 1));
    CHECK(t.size() == 4);
    CHECK(t.header().nodes_used == nodes_with_four);

    // Two decisions on one address: deleting one leaves the other in force.
    REQUIRE(t.upsert(net("192.0.2.1"), 5, Remedy::ban, Origin::cscli, later, 1));
    CHECK(t.remove(1));
    CHECK(t.lookup(ip("192.0.2.1"), now) == Remedy::ban);
    CHECK(t.remove(5));
    CHECK(t.lookup(ip("192.0.2.1"), now) == Remedy::none);
    CHECK_FALSE(t.remove(5));
    CHECK(t.remove(3));
    CHECK(t.lookup(ip("198.51.100.200"), now) == Remedy::captcha);
    CHECK(t.remove(2));
    CHECK(t.remove(4));
    CHECK(t.size() == 0);
    CHECK(t.header().nodes_used == 1); // every node went back: only the root is left
    t.unlock();
}

TEST_CASE("crowdsec trie: decisions expire on their own and sweeps free them") {
    Zone z(64);
    DecisionTable t(z.mem, z.size);
    REQUIRE(t.lock());
    REQUIRE(t.upsert(net("203.0.113.0/24"), 1, Remedy::ban, Origin::crowdsec, 5000, 1));
    REQUIRE(t.upsert(net("0.0.0.0/0"), 2, Remedy::ban, Origin::lists, 9000, 1));
    CHECK(t.lookup(ip("203.0.113.9"), 4999) == Remedy::ban);
    CHECK(t.lookup(ip("8.8.8.8"), 4999) == Remedy::ban);      // /0 covers every IPv4 address
    CHECK(t.lookup(ip("2001:db8::1"), 4999) == Remedy::none); // but not IPv6
    CHECK(t.lookup(ip("8.8.8.8"), 9000) == Remedy::none);
    t.recount(4999);
    CHECK(t.header().held[size_t(Remedy::ban)][size_t(Origin::crowdsec)].load() == 1);
    CHECK(t.sweep(6000) == 1);
    CHECK(t.size() == 1);
    t.recount(6000);
    CHECK(t.header().held[size_t(Remedy::ban)][size_t(Origin::crowdsec)].load() == 0);
    // A startup pull of epoch 2 saw only decision 3: everything older goes.
    REQUIRE(t.upsert(net("2001:db8::1"), 3, Remedy::ban, Origin::cscli, 9000, 2));
    CHECK(t.sweep(6000, 2) == 1);
    CHECK(t.lookup(ip("8.8.8.8"), 6000) == Remedy::none);
    CHECK(t.lookup(ip("2001:db8::1"), 6000) == Remedy::ban);
    t.unlock();
}

TEST_CASE("crowdsec trie: full pools refuse more and lose nothing already held") {
    Zone z(16);
    DecisionTable t(z.mem, z.size);
    REQUIRE(t.lock());
    const uint32_t cap = t.header().entry_capacity;
    CHECK(cap >= 16);
    char text[64];
    uint32_t added = 0;
    for (uint32_t i = 0; i < cap + 5; ++i) {
        std::snprintf(text, sizeof text, "2001:db8:%x::%x", (i * 7919) & 0xffff, i + 1);
        if (t.upsert(net(text), i + 1, Remedy::ban, Origin::crowdsec, 1000, 1))
            ++added;
    }
    CHECK(added == cap); // two nodes per decision at most: the node pool never runs out first
    CHECK(t.size() == added);
    std::snprintf(text, sizeof text, "2001:db8:%x::%x", 0u, 1u);
    CHECK(t.lookup(ip(text), 0) == Remedy::ban);
    t.unlock();
    // Another process's writer (a second view) rebuilds its id index from the zone.
    DecisionTable other(z.mem, z.size);
    REQUIRE(other.lock());
    CHECK(other.remove(1));
    CHECK(other.size() == added - 1);
    other.unlock();
    CHECK(t.lookup(ip(text), 0) == Remedy::none);
}

TEST_CASE("crowdsec trie: random networks answer as a linear scan does, and prune fully") {
    Zone z(512);
    DecisionTable t(z.mem, z.size);
    REQUIRE(t.lock());
    std::mt19937 rng(1234);
    struct Held {
        Cidr net;
        Remedy remedy;
        bool live;
    };
    std::vector<Held> held;
    auto random_net = [&] {
        Cidr c;
        c.family = rng() % 2 ? AF_INET : AF_INET6;
        const int bits = c.family == AF_INET ? 32 : 128;
        // Few distinct leading bytes, so networks nest and share paths.
        for (int i = 0; i < 16; ++i)
            c.addr[i] = static_cast<uint8_t>(i < 2 ? rng() % 3 : rng());
        if (c.family == AF_INET6) {
            c.addr[0] = 0x20;
            c.addr[1] = 0x01;
        }
        // IPv6 ranges from /3 on: shorter ones (::/1, ::/2) also hold ::ffff:0:0/96, where the
        // trie keeps IPv4 (checked on its own below), which cidr_contains does not model.
        c.prefix = static_cast<int>(c.family == AF_INET ? rng() % 33 : 3 + rng() % 126);
        if (rng() % 3 == 0)
            c.prefix = bits;
        std::string text = cidr_text(c); // clears host bits through a round trip
        Cidr back;
        REQUIRE(parse_cidr(text, back).empty());
        return back;
    };
    for (uint64_t id = 1; id <= 400; ++id) {
        Held h{random_net(), static_cast<Remedy>(1 + rng() % 4), true};
        REQUIRE(t.upsert(h.net, id, h.remedy, Origin::crowdsec, 1000, 1));
        held.push_back(h);
    }
    auto check_all = [&] {
        for (int i = 0; i < 2000; ++i) {
            IpAddress a{};
            const Held& near = held[rng() % held.size()];
            a.family = near.net.family;
            std::memcpy(a.bytes, near.net.addr, 16);
            const int bits = a.family == AF_INET ? 4 : 16;
            a.bytes[rng() % bits] ^= static_cast<uint8_t>(rng() % 2 ? 0 : 1u << (rng() % 8));
            Remedy expected = Remedy::none;
            for (const Held& h : held)
                if (h.live && cidr_contains(h.net, a) && h.remedy > expected)
                    expected = h.remedy;
            if (t.lookup(a, 0) != expected) {
                char txt[64];
                inet_ntop(a.family, a.bytes, txt, sizeof txt);
                std::string why = std::string("address ") + txt + " matches:";
                for (const Held& h : held)
                    if (h.live && cidr_contains(h.net, a))
                        why += " " + cidr_text(h.net) + "=" + std::to_string(int(h.remedy));
                FAIL(why);
            }
        }
    };
    check_all();
    for (uint64_t id = 1; id <= 400; id += 2) {
        REQUIRE(t.remove(id));
        held[id - 1].live = false;
    }
    check_all();
    for (uint64_t id = 2; id <= 400; id += 2)
        REQUIRE(t.remove(id));
    CHECK(t.size() == 0);
    CHECK(t.header().nodes_used == 1);
    t.unlock();
}

TEST_CASE("crowdsec: Go durations") {
    CHECK(parse_go_duration("3h59m58.123s") == (3 * 3600 + 59 * 60 + 58) * 1000 + 123);
    CHECK(parse_go_duration("4h") == 4 * 3600 * 1000);
    CHECK(parse_go_duration("1.5h") == 5400 * 1000);
    CHECK(parse_go_duration("300ms") == 300);
    CHECK(parse_go_duration("2m0.5s") == 120500);
    CHECK(parse_go_duration("1500us") == 1);
    CHECK(parse_go_duration("1500\xC2\xB5s") == 1);
    CHECK(parse_go_duration("999999ns") == 0);
    CHECK(parse_go_duration("-1h2m") == -3720000);
    CHECK(parse_go_duration("+5s") == 5000);
    CHECK(parse_go_duration("0") == 0);
    CHECK(parse_go_duration(".5s") == 500);
    CHECK_FALSE(parse_go_duration(""));
    CHECK_FALSE(parse_go_duration("5"));
    CHECK_FALSE(parse_go_duration("h"));
    CHECK_FALSE(parse_go_duration("5d"));
    CHECK_FALSE(parse_go_duration("-"));
    CHECK_FALSE(parse_go_duration("1h 2m"));
    CHECK_FALSE(parse_go_duration("."));
    CHECK_FALSE(parse_go_duration("9999999999h"));
}

TEST_CASE("crowdsec: the stream answer") {
    StreamAnswer a;
    std::string err;
    REQUIRE(parse_stream(R"({"deleted":[{"duration":"-2h","id":7,"origin":"cscli","scenario":"x",
        "scope":"Ip","type":"ban","value":"192.0.2.9"}],
        "new":[{"duration":"3h59m58.123s","id":11,"origin":"crowdsec",
        "scenario":"crowdsecurity/http-probing","scope":"Ip","type":"ban","value":"192.0.2.1"},
        {"duration":"1h","id":12,"origin":"cscli","scope":"Range","type":"captcha",
        "value":"2001:db8::/48"},
        {"duration":"1h","id":13,"origin":"CAPI","scope":"Country","type":"ban","value":"FR"},
        {"duration":"1h","id":14,"origin":"lists","scope":"Ip","type":"ban","value":"nope"},
        {"duration":"1h","id":15,"origin":"lists","scope":"Range","type":"ban","value":"10.0.0.1"},
        {"duration":"1h","origin":"lists","scope":"Ip","type":"ban","value":"10.0.0.1"}]})",
                         a, err));
    CHECK(err.empty());
    REQUIRE(a.added.size() == 2);
    CHECK(a.added[0].id == 11);
    CHECK(a.added[0].remedy == Remedy::ban);
    CHECK(a.added[0].origin == Origin::crowdsec);
    CHECK(a.added[0].duration_ms == 14398123);
    CHECK(a.added[0].net.family == AF_INET);
    CHECK(a.added[0].net.prefix == 32);
    CHECK(a.added[1].remedy == Remedy::captcha);
    CHECK(a.added[1].net.family == AF_INET6);
    CHECK(a.added[1].net.prefix == 48);
    REQUIRE(a.deleted.size() == 1);
    CHECK(a.deleted[0] == 7);
    CHECK(a.ignored == 4); // a country, an unparsable address, a range without /, no id

    REQUIRE(parse_stream(R"({"new":null,"deleted":null})", a, err));
    CHECK(a.added.empty());
    CHECK(a.deleted.empty());
    CHECK_FALSE(parse_stream("[]", a, err));
    CHECK(err == "the stream answer is not a JSON object");
    CHECK_FALSE(parse_stream(R"({"new":{}})", a, err));
    CHECK(err == "the stream answer's \"new\" is not a list");
    CHECK_FALSE(parse_stream("{\"new\":[", a, err));
    CHECK(err.starts_with("the stream answer is not JSON: at byte"));
    StreamLimits small;
    small.max_decisions = 1;
    CHECK_FALSE(parse_stream(R"({"deleted":[{"id":1},{"id":2}]})", a, err, small));
    CHECK(err == "the stream answer has more than 1 decisions");
}
