#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "modules/metrics/metrics_zone.h"

using namespace wraith::metrics;

namespace {

struct FreshZone {
    Zone* z;
    FreshZone() : z(static_cast<Zone*>(std::aligned_alloc(alignof(Zone), sizeof(Zone)))) {
        std::memset(static_cast<void*>(z), 0, sizeof(Zone));
    }
    ~FreshZone() { std::free(z); }
};

} // namespace

TEST_CASE("a route keeps its slot by name; other names get other slots", "[metrics]") {
    FreshZone f;
    int a = claim_route(*f.z, "example.test", "/api/");
    int b = claim_route(*f.z, "example.test", "/");
    int c = claim_route(*f.z, "other.test", "/api/");
    REQUIRE(a >= 0);
    REQUIRE(b >= 0);
    REQUIRE(c >= 0);
    CHECK(a != b);
    CHECK(a != c);
    CHECK(b != c);
    // What a worker of the next generation (or another worker) finds for the same names.
    CHECK(claim_route(*f.z, "example.test", "/api/") == a);
    CHECK(std::string(f.z->routes[a].first) == "example.test");
    CHECK(std::string(f.z->routes[a].second) == "/api/");
}

TEST_CASE("long labels are cut to their field, and the cut name is found again", "[metrics]") {
    FreshZone f;
    std::string route = "~^/" + std::string(300, 'x');
    int a = claim_route(*f.z, "example.test", route);
    REQUIRE(a >= 0);
    CHECK(std::strlen(f.z->routes[a].second) == sizeof(RouteName::second) - 1);
    CHECK(claim_route(*f.z, "example.test", route) == a);
}

TEST_CASE("a full route table leaves new routes to the totals", "[metrics]") {
    FreshZone f;
    for (int i = 0; i < kRoutes; ++i)
        REQUIRE(claim_route(*f.z, "s", "/r" + std::to_string(i)) >= 0);
    CHECK(claim_route(*f.z, "s", "/one-too-many") == -1);
    CHECK(claim_route(*f.z, "s", "/r7") >= 0); // known names still find theirs
}

TEST_CASE("protocol, status class and duration bucket indexes", "[metrics]") {
    CHECK(protocol_index(10) == 0);
    CHECK(protocol_index(11) == 0);
    CHECK(protocol_index(20) == 1);
    CHECK(protocol_index(30) == 2);
    CHECK(code_index(0) == 0);
    CHECK(code_index(99) == 0);
    CHECK(code_index(101) == 1);
    CHECK(code_index(204) == 2);
    CHECK(code_index(499) == 4);
    CHECK(code_index(599) == 5);
    CHECK(code_index(600) == 0);
    CHECK(bucket_index(0) == 0);
    CHECK(bucket_index(5'000) == 0); // le="0.005" includes 5 ms
    CHECK(bucket_index(5'001) == 1);
    CHECK(bucket_index(10'000'000) == kBuckets - 1);
    CHECK(bucket_index(10'000'001) == kBuckets); // +Inf only
}
