// The metrics zone: counters every worker of every generation adds to, in one shared-memory
// zone ("metrics") that survives reload and binary upgrade, so a scrape sums them and a reload
// neither resets nor double-counts. Workers add to the shard of their slot (slot % kShards) with
// relaxed atomic adds on lines no other worker of their generation writes; a scrape sums the
// shards. Routes get a slot by name (site label + route label, common/name_slots.h), claimed
// once per worker and found again by the same name after a reload. docs/decisions.md, "Metrics".
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/name_slots.h"

namespace wraith::metrics {

constexpr int kShards = 16;
constexpr int kProtocols = 3; // h1, h2, h3
constexpr int kMethods = 8;   // GET HEAD POST PUT DELETE PATCH OPTIONS other
constexpr int kCodes = 6;     // none (no status was sent), 1xx .. 5xx
constexpr int kRoutes = 512;
// Prometheus's default buckets, in microseconds; a last, implicit one catches the rest (+Inf).
constexpr uint64_t kBucketsUs[] = {5'000,   10'000,   25'000,    50'000,    100'000,   250'000,
                                   500'000, 1000'000, 2'500'000, 5'000'000, 10'000'000};
constexpr int kBuckets = sizeof(kBucketsUs) / sizeof(kBucketsUs[0]);

// A finer latency histogram for the dashboard's percentiles: bounds 2^(k/2) µs (1 µs .. 47 s),
// about ±20 % within a bucket; a last, implicit one catches the rest.
constexpr int kFineBuckets = 52;
constexpr auto kFineBoundsUs = [] {
    std::array<uint64_t, kFineBuckets> b{};
    for (int k = 0; k < kFineBuckets; ++k) {
        const uint64_t p = uint64_t{1} << (k / 2);
        b[k] = k % 2 ? (p * 1414 + 500) / 1000 : p;
        if (k && b[k] <= b[k - 1])
            b[k] = b[k - 1] + 1; // the first few: whole microseconds, strictly increasing
    }
    return b;
}();

// The request duration as a Prometheus native histogram (sparse exponential buckets, sent to
// scrapers that ask for the protobuf exposition): schema 3, so bucket `key` holds durations in
// (2^((key-1)/8), 2^(key/8)] seconds, about ±4.5 % wide. Keys kNativeMinKey (just above 1 µs)
// to kNativeMaxKey (2^12 s, 68 minutes; longer ones count there too); 0 µs goes to the zero
// bucket, whose threshold is the lowest bucket's lower bound.
constexpr int kNativeSchema = 3;
constexpr int kNativeMinKey = -159; // (2^-20, 2^-19.875] s: 0.95 .. 1.03 µs
constexpr int kNativeMaxKey = 96;   // .. 2^12 s
constexpr int kNativeBuckets = kNativeMaxKey - kNativeMinKey + 1;
constexpr double kNativeZeroThreshold = 1.0 / (1 << 20); // 2^-20 s

// The bucket index (0 .. kNativeBuckets-1, or -1 for the zero bucket) of a duration.
int native_bucket_index(uint64_t us);

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
    Counter latency[kProtocols][kFineBuckets + 1]; // per bucket, not cumulative
    Counter native[kProtocols][kNativeBuckets];    // by native_bucket_index
    Counter native_zero[kProtocols];               // 0 µs
};

// The last kRecentErrors 5xx answers, newest at `next - 1`. A writer takes a number with
// fetch_add and fills the entry between two stores of `seq` (0 while writing, then the
// number + 1); a reader keeps a copy only if `seq` was the same, non-zero, before and after.
constexpr int kRecentErrors = 64;
struct RecentError {
    std::atomic<uint64_t> seq;
    int64_t time_ms;
    uint16_t status;
    uint8_t protocol;
    char method[12];
    char host[64];
    char path[160];
};
struct RecentErrors {
    std::atomic<uint64_t> next;
    RecentError entries[kRecentErrors];
};

// A route's labels: its site (first host name) and its path as written (common/name_slots.h).
using RouteName = NameSlot<64, 128>;

struct Zone {
    RouteName routes[kRoutes];
    Shard shards[kShards];
    RecentErrors errors;
};

constexpr uint32_t kZoneVersion = 3;
constexpr std::string_view kZoneName = "metrics";

// The slot of (site, route) in `zone`, claimed if it has none yet; -1 when every slot is taken
// by other names (the route then counts in the totals only).
inline int claim_route(Zone& zone, std::string_view site, std::string_view route) {
    return claim_slot(zone.routes, kRoutes, site, route);
}

inline void add(Counter& c, uint64_t n) {
    c.fetch_add(n, std::memory_order_relaxed);
}

inline int protocol_index(int version) {
    return version >= 30 ? 2 : version >= 20 ? 1 : 0;
}

inline int code_index(int status) {
    return status >= 100 && status < 600 ? status / 100 : 0;
}

inline int fine_bucket_index(uint64_t us) {
    // The first bound >= us (binary search over kFineBoundsUs).
    int lo = 0, hi = kFineBuckets;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (kFineBoundsUs[mid] < us)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Records a 5xx answer in the zone's ring.
void record_error(Zone& zone, int64_t time_ms, int status, int protocol, std::string_view method,
                  std::string_view host, std::string_view path);

inline int bucket_index(uint64_t us) {
    int i = 0;
    while (i < kBuckets && us > kBucketsUs[i])
        ++i;
    return i;
}

} // namespace wraith::metrics
