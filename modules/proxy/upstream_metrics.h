// Upstream metrics: what the proxy's requests did at each server of each upstream, in one
// shared-memory zone ("proxy.metrics") that every worker of every generation adds to and that
// survives reload and binary upgrade, as the metrics module's zone does
// (modules/metrics/metrics_zone.h). Counters and histograms are sharded by worker slot
// (relaxed atomic adds on lines no other worker of the generation writes); a scrape sums the
// shards. Upstreams and servers get a slot by name (upstream name, server address as written),
// claimed once per worker and found again by the same name after a reload.
//
// Requests in flight are a gauge, which a counter-style shared sum would get wrong for ever
// once a worker died in the middle of requests. So each worker process counts them in a row
// of its own (claimed by pid, given back when the worker exits); the master clears the row of
// a process that is gone (ModuleSpec::worker_lost), and a scrape sums the rows.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/name_slots.h"
#include <unordered_map>
#include <vector>

namespace wraith::proxy {

struct UpstreamConfig;

// Why a try failed (UpstreamReport::failure, wraith_upstream_failures_total{kind}).
enum class Failure : uint8_t {
    connect,  // DNS, the TCP connect, the TLS or QUIC handshake (errors and connect_timeout)
    timeout,  // read, send, first-byte or total timeout once connected
    reset,    // the connection or stream closed or reset before the response was whole
    protocol, // a malformed or impossible answer
    status,   // an answer of the upstream's fail_statuses
};
constexpr int kFailureKinds = 5;
constexpr const char* kFailureNames[kFailureKinds] = {"connect", "timeout", "reset", "protocol",
                                                      "status"};
inline const char* failure_name(Failure f) {
    return kFailureNames[static_cast<int>(f)];
}

namespace upstream_metrics {

constexpr int kShards = 16;
constexpr int kUpstreams = 128; // upstream names, across reloads
constexpr int kServers = 256;   // (upstream, server) pairs, across reloads
constexpr int kOwners = 256;    // worker processes (all generations) counting requests in flight
constexpr int kCodes = 6;       // none (no answer), 1xx .. 5xx
constexpr std::string_view kCodeNames[kCodes] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
// Prometheus's default buckets plus three below them (upstreams on a LAN answer in well under
// 5 ms), in microseconds; a last, implicit one catches the rest (+Inf).
constexpr uint64_t kBucketsUs[] = {500,       1'000,     2'500,     5'000,     10'000,
                                   25'000,    50'000,    100'000,   250'000,   500'000,
                                   1'000'000, 2'500'000, 5'000'000, 10'000'000};
constexpr int kBuckets = sizeof(kBucketsUs) / sizeof(kBucketsUs[0]);
// Host-name servers' addresses (UpstreamPool::addresses): hit (a fresh answer), stale (an
// answer past its TTL, used while a refresh runs), miss (none yet: the try waits for DNS).
enum class DnsUse : uint8_t { hit, stale, miss };
constexpr int kDnsUses = 3;
constexpr std::string_view kDnsUseNames[kDnsUses] = {"hit", "stale", "miss"};
// The answers of those lookups: ok, not_found (NXDOMAIN or no address), timeout, error.
enum class DnsResult : uint8_t { ok, not_found, timeout, error };
constexpr int kDnsResults = 4;
constexpr std::string_view kDnsResultNames[kDnsResults] = {"ok", "not_found", "timeout", "error"};

using Counter = std::atomic<uint64_t>;

struct Histogram {
    Counter buckets[kBuckets + 1]; // per bucket, not cumulative
    Counter sum_us;
};

struct alignas(64) Shard {
    Counter requests[kServers][kCodes];           // tries, by the class of the server's answer
    Counter failures[kServers][kFailureKinds];    // failed tries, by why
    Counter retries[kUpstreams];                  // tries beyond a request's first
    Histogram connect[kUpstreams];                // new connections: until ready
    Histogram header[kUpstreams];                 // tries answered: until the response head
    Counter dns_uses[kUpstreams][kDnsUses];       // address lookups in the worker's DNS cache
    Counter dns_lookups[kUpstreams][kDnsResults]; // DNS queries sent, by answer
};

// A slot's names, upstream then server (an upstream slot's server is empty):
// common/name_slots.h.
using SlotName = NameSlot<128, 120>;

// One worker process's requests in flight, per server slot. `pid` 0: free. Only that process
// writes the counts; the master clears a row whose process is gone.
struct alignas(64) InFlightRow {
    std::atomic<int32_t> pid;
    std::atomic<uint32_t> servers[kServers];
};

struct Zone {
    SlotName upstreams[kUpstreams];
    SlotName servers[kServers];
    Shard shards[kShards];
    InFlightRow in_flight[kOwners];
};

constexpr uint32_t kZoneVersion = 2;
constexpr std::string_view kZoneName = "proxy.metrics";

// The slot of `upstream` (of its server `server`) in `zone`, claimed if it has none yet; -1
// when every slot is taken by other names. Names longer than their field are cut.
int claim_upstream(Zone& zone, std::string_view upstream);
int claim_server(Zone& zone, std::string_view upstream, std::string_view server);
// The same without claiming: -1 when the name has no slot.
int find_server(const Zone& zone, std::string_view upstream, std::string_view server);

// A row for process `pid`, zeroed; null when all are taken.
InFlightRow* claim_row(Zone& zone, pid_t pid);
// The process is done with its row (its counts go to zero).
void release_row(InFlightRow& row);
// In the master, after a worker was lost: frees the rows of processes that no longer exist.
// Returns how many it freed.
int reap_rows(Zone& zone);

// Sums over the shards, and over the rows in use.
template <class F> uint64_t total(const Zone& z, F counter) {
    uint64_t n = 0;
    for (const Shard& s : z.shards)
        n += counter(s).load(std::memory_order_relaxed);
    return n;
}
uint64_t in_flight(const Zone& zone, int server);

// The scrape's series (upstream_metrics_export.cc), in the text format or OpenMetrics.
void render(const Zone& zone, bool openmetrics, std::string& out);
// One server's totals for the status object: tries, failed tries, in flight now.
struct ServerTotals {
    uint64_t requests = 0;
    uint64_t failures = 0;
    uint64_t in_flight = 0;
};
ServerTotals server_totals(const Zone& zone, std::string_view upstream, std::string_view server);

inline int code_index(int status) {
    return status >= 100 && status < 600 ? status / 100 : 0;
}

inline int bucket_index(uint64_t us) {
    int i = 0;
    while (i < kBuckets && us > kBucketsUs[i])
        ++i;
    return i;
}

} // namespace upstream_metrics

// This worker's way into the zone: its shard, its in-flight row, and the slots of the
// upstreams it proxied to (claimed on first use, kept for the worker's life: the
// UpstreamConfig objects of its generation outlive it). Part of ProxyWorker.
class UpstreamMetrics {
public:
    UpstreamMetrics(upstream_metrics::Zone& zone, int worker_slot);
    ~UpstreamMetrics();
    UpstreamMetrics(const UpstreamMetrics&) = delete;
    UpstreamMetrics& operator=(const UpstreamMetrics&) = delete;

    // An upstream's slots: its own, and each server's (by index in up.servers); -1 where the
    // table was full (those series are not counted).
    struct Slots {
        int upstream = -1;
        std::vector<int> servers;
    };
    const Slots& slots(const UpstreamConfig& up);

    // A try to a server ended; `status` its answer (0: none).
    void count_request(int server, int status) {
        if (server >= 0)
            add(shard_.requests[server][upstream_metrics::code_index(status)], 1);
    }
    void count_failure(int server, Failure kind) {
        if (server >= 0)
            add(shard_.failures[server][static_cast<int>(kind)], 1);
    }
    void count_retry(int upstream) {
        if (upstream >= 0)
            add(shard_.retries[upstream], 1);
    }
    void observe_connect(int upstream, uint64_t us) {
        if (upstream >= 0)
            observe(shard_.connect[upstream], us);
    }
    void observe_header(int upstream, uint64_t us) {
        if (upstream >= 0)
            observe(shard_.header[upstream], us);
    }
    void count_dns_use(int upstream, upstream_metrics::DnsUse use) {
        if (upstream >= 0)
            add(shard_.dns_uses[upstream][static_cast<int>(use)], 1);
    }
    void count_dns_lookup(int upstream, upstream_metrics::DnsResult result) {
        if (upstream >= 0)
            add(shard_.dns_lookups[upstream][static_cast<int>(result)], 1);
    }
    // A request starts or stops being in flight at a server. Our row alone: a plain load and
    // store (no other process writes it).
    void enter(int server) {
        if (server >= 0 && row_)
            bump(row_->servers[server], 1);
    }
    void leave(int server) {
        if (server >= 0 && row_)
            bump(row_->servers[server], -1);
    }

private:
    static void add(upstream_metrics::Counter& c, uint64_t n) {
        c.fetch_add(n, std::memory_order_relaxed);
    }
    static void observe(upstream_metrics::Histogram& h, uint64_t us) {
        add(h.buckets[upstream_metrics::bucket_index(us)], 1);
        add(h.sum_us, us);
    }
    static void bump(std::atomic<uint32_t>& n, int by) {
        const uint32_t v = n.load(std::memory_order_relaxed);
        if (by > 0 || v > 0)
            n.store(v + static_cast<uint32_t>(by), std::memory_order_relaxed);
    }

    upstream_metrics::Zone& zone_;
    upstream_metrics::Shard& shard_;
    upstream_metrics::InFlightRow* row_; // null: no row was free (in flight is not counted)
    std::unordered_map<const UpstreamConfig*, Slots> slots_;
    bool full_logged_ = false; // the table-full warning went out once
};

} // namespace wraith::proxy
