// What the crowdsec unit tests share: a decisions zone in ordinary memory, laid out as the
// master would, and CIDR and address literals.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "common/cidr.h"
#include "modules/crowdsec/decision_table.h"

namespace crowdsec_test {

struct Zone {
    size_t size;
    void* mem;
    explicit Zone(uint32_t decisions) : size(wraith::crowdsec::zone_size(decisions)) {
        mem = std::aligned_alloc(64, (size + 63) & ~size_t{63});
        std::memset(mem, 0, size);
        wraith::crowdsec::init_zone(mem, size);
    }
    ~Zone() { std::free(mem); }
    Zone(const Zone&) = delete;
    Zone& operator=(const Zone&) = delete;
};

inline wraith::Cidr net(const char* text) {
    wraith::Cidr c;
    REQUIRE(wraith::parse_cidr(text, c).empty());
    return c;
}

inline wraith::IpAddress ip(const char* text) {
    wraith::IpAddress a = wraith::ip_of(std::string_view(text));
    REQUIRE(a.family != 0);
    return a;
}

} // namespace crowdsec_test
