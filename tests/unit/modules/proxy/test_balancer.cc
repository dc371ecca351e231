// Upstream balancing methods: weights, unusable and excluded servers, backups, least
// connections, power of two choices, and consistent hashing (ring and Maglev).
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "modules/proxy/balancer.h"

using namespace wraith::proxy;
using Method = Balancer::Method;

namespace {

std::vector<ServerView> servers(std::vector<uint32_t> weights) {
    static std::vector<std::string> names;
    names.clear();
    for (size_t i = 0; i < weights.size(); ++i)
        names.push_back("10.0.0." + std::to_string(i + 1) + ":80");
    std::vector<ServerView> v;
    for (size_t i = 0; i < weights.size(); ++i)
        v.push_back({names[i], weights[i], true, false, 0});
    return v;
}

const std::vector<bool> none;

} // namespace

TEST_CASE("round robin: smooth weighted order, as NGINX") {
    auto s = servers({5, 1, 1});
    auto b = Balancer::make(Method::round_robin, s);
    std::string seq;
    for (int i = 0; i < 7; ++i)
        seq += static_cast<char>('a' + b->pick(s, 0, none));
    CHECK(seq == "aabacaa");
    std::map<int, int> n;
    for (int i = 0; i < 700; ++i)
        ++n[b->pick(s, 0, none)];
    CHECK(n[0] == 500);
    CHECK(n[1] == 100);
    CHECK(n[2] == 100);
}

TEST_CASE("every method skips unusable and excluded servers, then uses backups, then fails") {
    for (Method m : {Method::round_robin, Method::least_conn, Method::random_two,
                     Method::hash_ring, Method::hash_maglev}) {
        auto s = servers({1, 1, 1, 1});
        s[3].backup = true;
        auto b = Balancer::make(m, s);
        s[0].usable = false;
        std::vector<bool> exclude = {false, true, false, false};
        for (uint64_t k = 0; k < 50; ++k)
            CHECK(b->pick(s, hash_key(std::to_string(k)), exclude) == 2);
        s[2].usable = false; // every primary gone: the backup
        for (uint64_t k = 0; k < 20; ++k)
            CHECK(b->pick(s, hash_key(std::to_string(k)), exclude) == 3);
        s[3].usable = false;
        CHECK(b->pick(s, 1, exclude) == -1);
    }
}

TEST_CASE("least_conn: fewest active per weight; ties take turns by weight") {
    auto s = servers({1, 1, 2});
    auto b = Balancer::make(Method::least_conn, s);
    s[0].active = 3;
    s[1].active = 1;
    s[2].active = 4; // 4/2 = 2 per weight unit
    CHECK(b->pick(s, 0, none) == 1);
    s[1].active = 5;
    CHECK(b->pick(s, 0, none) == 2);
    for (auto& v : s)
        v.active = 0;
    std::map<int, int> n;
    for (int i = 0; i < 40; ++i)
        ++n[b->pick(s, 0, none)];
    // Idle servers share by weight (smooth round robin among the tied), as NGINX.
    CHECK(n == std::map<int, int>{{0, 10}, {1, 10}, {2, 20}});
}

TEST_CASE("random_two: the less loaded of two draws; idle servers share by weight") {
    auto s = servers({1, 1, 1, 1});
    auto b = Balancer::make(Method::random_two, s);
    s[0].active = 1000;
    std::map<int, int> n;
    for (int i = 0; i < 4000; ++i)
        ++n[b->pick(s, 0, none)];
    // Server 0 wins only when both draws are it: about 1/16 of the time.
    CHECK(n[0] < 4000 / 8);
    for (auto& v : s)
        v.active = 0;
    s[3].weight = 3;
    n.clear();
    for (int i = 0; i < 6000; ++i)
        ++n[b->pick(s, 0, none)];
    CHECK(n[3] > n[0] * 2);
}

TEST_CASE("consistent hashing: same key same server; few keys move when one leaves") {
    for (Method m : {Method::hash_ring, Method::hash_maglev}) {
        auto s = servers({1, 1, 1, 1, 1});
        auto b = Balancer::make(m, s);
        const int keys = 20000;
        std::vector<int> before(keys);
        std::map<int, int> n;
        for (int k = 0; k < keys; ++k) {
            before[k] = b->pick(s, hash_key("client-" + std::to_string(k)), none);
            ++n[before[k]];
            CHECK(b->pick(s, hash_key("client-" + std::to_string(k)), none) == before[k]);
        }
        for (auto& [server, count] : n) {
            // Even spread: the ring within 30%, Maglev within 5% of the fair share.
            double share = count / double(keys) * 5;
            CHECK(share > (m == Method::hash_maglev ? 0.95 : 0.7));
            CHECK(share < (m == Method::hash_maglev ? 1.05 : 1.3));
        }
        s[2].usable = false;
        int moved = 0;
        for (int k = 0; k < keys; ++k) {
            int now = b->pick(s, hash_key("client-" + std::to_string(k)), none);
            CHECK(now != 2);
            if (before[k] != 2)
                moved += now != before[k];
        }
        CHECK(moved == 0); // only the keys of the server that left go elsewhere
        s[2].usable = true;
        for (int k = 0; k < keys; ++k)
            CHECK(b->pick(s, hash_key("client-" + std::to_string(k)), none) == before[k]);
    }
}

TEST_CASE("maglev: weights give proportional shares") {
    auto s = servers({1, 3});
    auto b = Balancer::make(Method::hash_maglev, s);
    std::map<int, int> n;
    for (int k = 0; k < 40000; ++k)
        ++n[b->pick(s, hash_key("k" + std::to_string(k)), none)];
    CHECK(n[1] / double(n[0]) > 2.7);
    CHECK(n[1] / double(n[0]) < 3.3);
}
