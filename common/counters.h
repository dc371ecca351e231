// The core's own counters: what the transports and the master count that no module sees (TLS
// handshakes and their failures, QUIC handshakes, Retry, migrations, losses, RTT and congestion
// windows at close, reloads). They live in the master's shared-memory zone "core.counters",
// sharded like the metrics zone (a worker adds to shard slot % kShards with relaxed atomics;
// a reader sums), kept across reload and handed over on binary upgrade, so they only grow.
// A process binds its shard once (bind()); until then, and in processes without the zone (unit
// tests, `wraith check`), counts go to a private shard nobody reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace wraith::counters {

enum Id : int {
    tls_handshakes,       // TCP TLS handshakes completed
    tls_resumed,          // of them, resumed sessions (tickets)
    tls_fail_closed,      // the client went away or reset mid-handshake
    tls_fail_timeout,     // http.header_timeout passed first
    tls_fail_version,     // no protocol version in common
    tls_fail_cipher,      // no cipher suite or group in common
    tls_fail_alpn,        // no application protocol in common
    tls_fail_certificate, // a client certificate was missing or did not verify (mTLS)
    tls_fail_plain_http,  // an HTTP request on the TLS port
    tls_fail_other,       // any other alert or protocol error
    quic_handshakes,      // QUIC handshakes completed
    quic_resumed,         // of them, resumed sessions
    quic_early_data,      // of them, with 0-RTT accepted
    quic_retry_sent,      // Retry packets sent (address validation)
    quic_migrations,      // paths validated after the client's address changed
    quic_closed,          // connections closed after their handshake (the summaries below)
    quic_congested,       // of them, ones that lost packets (ngtcp2 left slow start on a loss)
    quic_stream_lost,     // packets with stream data declared lost, summed at each stream's close
    reloads,              // configuration reloads that started a generation (master)
    reload_failures,      // reloads refused: the new config did not load (master)
    upgrades,             // binary upgrades this server went through (master)
    kCount
};

// Smoothed RTT and congestion window of each QUIC connection at its close, as histograms.
constexpr uint64_t kRttBucketsUs[] = {1'000,   5'000,   10'000,  25'000,    50'000,
                                      100'000, 250'000, 500'000, 1'000'000, 2'500'000};
constexpr int kRttBuckets = sizeof(kRttBucketsUs) / sizeof(kRttBucketsUs[0]);
constexpr uint64_t kCwndBuckets[] = {16'384,  32'768,    65'536,    131'072,
                                     262'144, 1'048'576, 4'194'304, 16'777'216};
constexpr int kCwndBucketCount = sizeof(kCwndBuckets) / sizeof(kCwndBuckets[0]);

struct alignas(64) Shard {
    std::atomic<uint64_t> n[kCount];
    std::atomic<uint64_t> rtt[kRttBuckets + 1]; // per bucket; the last is +Inf
    std::atomic<uint64_t> rtt_sum_us;
    std::atomic<uint64_t> cwnd[kCwndBucketCount + 1];
    std::atomic<uint64_t> cwnd_sum;
};

constexpr int kShards = 16;
struct Zone {
    Shard shards[kShards];
};
constexpr std::string_view kZoneName = "core.counters";
constexpr uint32_t kZoneVersion = 2;

// This process's shard (private until bind()).
Shard& shard();
// Counts into `zone`'s shard for `slot` from now on (a worker at start; the master with -1:
// its own counts go to shard 0, which workers share, with atomic adds).
void bind(Zone* zone, int slot);

inline void add(Id id, uint64_t n = 1) {
    shard().n[id].fetch_add(n, std::memory_order_relaxed);
}

// One QUIC connection's summary at close; `congested`: a loss cut its window (ssthresh set).
// ngtcp2 1.11 counts no packets lost per connection (its ngtcp2_conn_info has no such field):
// losses are counted per stream instead (quic_stream_lost), as each stream closes.
void quic_connection_closed(uint64_t smoothed_rtt_us, uint64_t cwnd, bool congested);

// Sum over the shards of `zone`.
inline uint64_t total(const Zone& zone, Id id) {
    uint64_t n = 0;
    for (const Shard& s : zone.shards)
        n += s.n[id].load(std::memory_order_relaxed);
    return n;
}

} // namespace wraith::counters
