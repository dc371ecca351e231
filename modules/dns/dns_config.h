// The [dns] table: where DoH queries are forwarded, the shared cache's size and TTL clamps,
// and block lists. Read once per config generation (ModuleSpec::load_table); routes with
// `dns = {}` find it through dns_config().
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/config.h"
#include "common/config_reader.h"
#include "common/http.h"

namespace wraith::dns {

constexpr size_t kMaxUpstreams = 16;

// A plain DNS server (UDP, TCP when an answer is truncated).
struct Upstream {
    SocketAddress address;
    std::string text; // as written, normalised: "127.0.0.1:53", "[::1]:53"
};

struct DnsConfig final : ModuleConfig {
    std::vector<Upstream> upstreams;
    uint64_t cache_size = 8 << 20;
    uint32_t min_ttl = 0;         // answers are cached (and their TTLs raised) at least this
    uint32_t max_ttl = 86400;     // and at most this long
    uint32_t negative_ttl = 3600; // RFC 2308 negative answers: at most this long
    uint32_t serve_stale = 0;     // RFC 8767: expired answers kept this long for failures
    Duration timeout{2000};       // one try of one upstream
    Duration fail_timeout{10000}; // an upstream that timed out is skipped this long
    // Blocked names (wire form, lower-case) and the answer they get: NXDOMAIN, or with
    // block_address an A / AAAA record of that address (other types: no records).
    std::unordered_set<std::string> blocked;
    std::string block_v4; // 4 bytes, or empty
    std::string block_v6; // 16 bytes, or empty
    bool blocks(const uint8_t* qname, size_t len) const;
    std::string zone_name() const { return "dns.cache"; }
};

const DnsConfig* dns_config(const Config& config);

// "127.0.0.1:53", "[::1]:53", "127.0.0.1", "::1" (port 53). Empty string on success, else
// what is wrong.
std::string parse_upstream(std::string_view text, Upstream& out);

// Reads a block list: hosts format ("0.0.0.0 ads.example tracker.example", '#' comments) or
// one name per line. Names go into `out` in wire form. Empty on success, else the first
// problem as "line N: ...".
std::string parse_block_list(std::string_view text, std::unordered_set<std::string>& out);

} // namespace wraith::dns
