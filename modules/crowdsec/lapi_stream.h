// What the CrowdSec Local API says: Go duration strings ("3h59m58.123s") and the answer of
// GET /v1/decisions/stream ({"new": [...], "deleted": [...]}, either may be null). Both read
// untrusted bytes (a LAPI, or whatever answers on its address): bad input is an error with a
// message, never a crash (tests/fuzz/fuzz_crowdsec_stream.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cidr.h"
#include "modules/crowdsec/decision_table.h"

namespace wraith::crowdsec {

// Go's time.ParseDuration: "300ms", "-1.5h", "2h45m", "1h2m3.5s", units ns us µs μs ms s m h;
// "0" alone. Milliseconds, rounded toward zero; nullopt for anything else or on overflow.
std::optional<int64_t> parse_go_duration(std::string_view text);

// One decision of the stream, as far as a bouncer cares.
struct StreamDecision {
    uint64_t id = 0;
    Cidr net; // scope Ip: a host (/32, /128); Range: the network
    Remedy remedy = Remedy::none;
    Origin origin = Origin::other;
    int64_t duration_ms = 0; // how long it stays in force from now
};

struct StreamAnswer {
    std::vector<StreamDecision> added;
    std::vector<uint64_t> deleted; // decision ids
    size_t ignored = 0;            // decisions of other scopes (Country, AS ...) or unreadable
};

// Limits for the JSON tree of one answer; `max_decisions` bounds both lists.
struct StreamLimits {
    size_t max_bytes = 64u << 20;
    size_t max_decisions = 1u << 20;
};

// Parses a complete answer body. False with `error` set when it is not the stream's JSON.
bool parse_stream(std::string_view body, StreamAnswer& out, std::string& error,
                  const StreamLimits& limits = {});

} // namespace wraith::crowdsec
