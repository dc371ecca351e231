// Shared-memory zones (master/zones.h): a zone is initialised once, kept by a reload whose
// config declares it unchanged, made fresh when its size or layout version changed, unmapped
// when no generation holds it; a binary upgrade hands `handover` zones to the new master,
// which adopts them only when its config declares them the same way.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "master/handover.h"
#include "master/zones.h"

using namespace wraith;

namespace {

int g_inits = 0;

ZoneSpec spec(const std::string& name, size_t size, uint32_t version = 1, bool handover = true) {
    return ZoneSpec{name, size, version,
                    [](void* mem, size_t size) {
                        ++g_inits;
                        std::memset(mem, 0x5a, size);
                    },
                    handover};
}

} // namespace

TEST_CASE("zones: kept when unchanged, made fresh when size or version change") {
    ZoneManager zones;
    ZoneManager::ZoneSet gen1, gen2, gen3;
    std::string err;
    g_inits = 0;
    REQUIRE(zones.prepare({spec("a", 4096), spec("b", 8192)}, gen1, &err));
    CHECK(g_inits == 2);
    auto* a = static_cast<unsigned char*>(gen1.view.find("a"));
    REQUIRE(a);
    CHECK(a[100] == 0x5a);
    a[0] = 42; // state a worker wrote

    // A reload: "a" unchanged, "b" grows, "c" is new.
    REQUIRE(zones.prepare({spec("a", 4096), spec("b", 16384), spec("c", 4096)}, gen2, &err));
    CHECK(g_inits == 4); // b and c
    CHECK(gen2.view.find("a") == a);
    CHECK(static_cast<unsigned char*>(gen2.view.find("a"))[0] == 42);
    CHECK(gen2.view.find("b") != gen1.view.find("b"));
    CHECK(gen2.view.find("b", 16384));
    CHECK_FALSE(gen2.view.find("b", 16385)); // smaller than asked for: not this zone

    // The old generation finishes: its "b" goes, the shared "a" stays.
    gen1 = {};
    CHECK(static_cast<unsigned char*>(gen2.view.find("a"))[0] == 42);

    // A new layout version is a new zone, whatever the size.
    REQUIRE(zones.prepare({spec("a", 4096, 2)}, gen3, &err));
    CHECK(static_cast<unsigned char*>(gen3.view.find("a"))[0] == 0x5a);
}

TEST_CASE("zones: bad declarations are refused with a message") {
    ZoneManager zones;
    ZoneManager::ZoneSet set;
    std::string err;
    CHECK_FALSE(zones.prepare({spec("a", 4096), spec("a", 4096)}, set, &err));
    CHECK(err.find("declared twice") != std::string::npos);
    CHECK_FALSE(zones.prepare({spec("z", 0)}, set, &err));
    CHECK(err.find("no size") != std::string::npos);
}

TEST_CASE("zones: a binary upgrade hands over handover zones only, adopted when they match") {
    ZoneManager old_master;
    ZoneManager::ZoneSet old_gen;
    std::string err;
    REQUIRE(old_master.prepare(
        {spec("health", 4096), spec("status", 4096, 1, false), spec("limits", 8192)}, old_gen,
        &err));
    static_cast<char*>(old_gen.view.find("health"))[0] = 'h';
    static_cast<char*>(old_gen.view.find("limits"))[0] = 'l';

    auto given = old_master.handover();
    CHECK(given.count("health") == 1);
    CHECK(given.count("limits") == 1);
    CHECK(given.count("status") == 0); // one master's own

    // The new binary gets duplicates of the descriptors (what exec inherits).
    std::map<std::string, ZoneManager::Inherited> inherited;
    for (auto [name, z] : given) {
        z.fd = dup(z.fd);
        REQUIRE(z.fd >= 0);
        inherited[name] = z;
    }
    ZoneManager new_master;
    REQUIRE(new_master.adopt(inherited, &err));
    ZoneManager::ZoneSet new_gen;
    g_inits = 0;
    // Its config: the same health zone, a resized limits zone.
    REQUIRE(new_master.prepare({spec("health", 4096), spec("limits", 16384)}, new_gen, &err));
    CHECK(static_cast<char*>(new_gen.view.find("health"))[0] == 'h');  // the old pages
    CHECK(static_cast<char*>(new_gen.view.find("limits"))[0] == 0x5a); // fresh
    CHECK(g_inits == 1);
    // Both masters see the same pages while they overlap.
    static_cast<char*>(new_gen.view.find("health"))[1] = 'x';
    CHECK(static_cast<char*>(old_gen.view.find("health"))[1] == 'x');
    new_master.forget_inherited();

    // What travels in the environment.
    Handover h;
    h.parent = 123;
    h.marker = 7;
    h.zones = given;
    setenv(Handover::kEnv, h.encode().c_str(), 1);
    std::string error;
    auto back = Handover::from_env(&error);
    REQUIRE(back);
    CHECK(error.empty());
    REQUIRE(back->zones.size() == 2);
    CHECK(back->zones["health"].fd == given["health"].fd);
    CHECK(back->zones["limits"].size == 8192);
    CHECK(back->zones["limits"].version == 1);
    std::vector<int> fds = back->all_fds();
    CHECK(std::find(fds.begin(), fds.end(), given["health"].fd) != fds.end());

    setenv(Handover::kEnv, "v1|parent=1|marker=1|zone=health@nope", 1);
    CHECK_FALSE(Handover::from_env(&error));
    CHECK(error.find("malformed zone entry") != std::string::npos);
}
