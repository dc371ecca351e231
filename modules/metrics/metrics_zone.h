// The metrics zone: counters every worker of every generation adds to, in one shared-memory
// zone ("metrics") that survives reload and binary upgrade, so a scrape sums them and a reload
// neither resets nor double-counts. Workers add to the shard of their slot (slot % kShards) with
// relaxed atomic adds on lines no other worker of their generation writes; a scrape sums the
// shards. Routes get a slot by name (site label + route label), claimed once per worker and
// found again by the same name after a reload. docs/decisions.md, "Metrics".
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wraith::metrics {

constexpr int kShards = 16;
constexpr int kProtocols = 3; // h1, h2, h3
constexpr int kMethods = 8;   // GET HEAD POST PUT DELETE PATCH OPTIONS other
constexpr int kCodes = 6;     // none (no status was sent), 1xx .. 5xx
constexpr int kRoutes = 512;
// Prometheus's default buckets, in microseconds; a last, implicit one catches the rest (+Inf).
constexpr uint64_t kBucketsUs[] = {5'000,   10'000,  25'000,    50'000,    100'000,   250'000,
                                   500'000, 1000'000, 2'500'000, 5'000'000, 10'000'000};
constexpr int kBuckets = sizeof(kBucketsUs) / sizeof(kBucketsUs[0]);

constexpr std::string_view kProtocolNames[kProtocols] = {"h1", "h2", "h3"};
constexpr std::string_view kMethodNames[kMethods] = {"GET",    "HEAD",  "POST",    "PUT",
                                                      "DELETE", "PATCH", "OPTIONS", "other"};
constexpr std::string_view kCodeNames[kCodes] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

using Counter = std::atomic<uint64_t>;

struct alignas(64) Shard {
    Counter requests[kProtocols][kMethods][kCodes];
    Counter duration_buckets[kProtocols][kBuckets + 1]; // per bucket, not cumulative
    Counter duration_us[kProtocols];
    Counter request_bytes[kProtocols];
    Counter response_bytes[kProtocols];
    Counter route_requests[kRoutes][kCodes];
    Counter route_response_bytes[kRoutes];
};

// A route's labels. `key` is 0 while free, kClaiming while one worker writes the names, then
// the names' hash (never 0 or 1).
struct RouteName {
    static constexpr uint64_t kClaiming = 1;
    std::atomic<uint64_t> key;
    char site[64];
    char route[128];
};

struct Zone {
    RouteName routes[kRoutes];
    Shard shards[kShards];
};

constexpr uint32_t kZoneVersion = 1;
constexpr std::string_view kZoneName = "metrics";

// Label values as stored: cut to fit their field (UTF-8 may end mid-character; Prometheus
// accepts any bytes in a quoted, escaped label value).
std::string_view fit_site(std::string_view site);
std::string_view fit_route(std::string_view route);

// The slot of (site, route) in `zone`, claimed if it has none yet; -1 when every slot is taken
// by other names (the route then counts in the totals only).
int claim_route(Zone& zone, std::string_view site, std::string_view route);

inline void add(Counter& c, uint64_t n) {
    c.fetch_add(n, std::memory_order_relaxed);
}

inline int protocol_index(int version) {
    return version >= 30 ? 2 : version >= 20 ? 1 : 0;
}

inline int code_index(int status) {
    return status >= 100 && status < 600 ? status / 100 : 0;
}

inline int bucket_index(uint64_t us) {
    int i = 0;
    while (i < kBuckets && us > kBucketsUs[i])
        ++i;
    return i;
}

} // namespace wraith::metrics
