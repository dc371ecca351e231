#include "modules/proxy/upstream_metrics.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

namespace upstream_metrics {

namespace {

void zero_counts(InFlightRow& row) {
    for (auto& n : row.servers)
        n.store(0, std::memory_order_relaxed);
}

} // namespace

int claim_upstream(Zone& zone, std::string_view upstream) {
    return claim_slot(zone.upstreams, kUpstreams, upstream, {});
}

int claim_server(Zone& zone, std::string_view upstream, std::string_view server) {
    return claim_slot(zone.servers, kServers, upstream, server);
}

int find_server(const Zone& zone, std::string_view upstream, std::string_view server) {
    return find_slot(zone.servers, kServers, upstream, server);
}

InFlightRow* claim_row(Zone& zone, pid_t pid) {
    for (InFlightRow& row : zone.in_flight) {
        int32_t expected = 0;
        if (row.pid.load(std::memory_order_relaxed) == 0 &&
            row.pid.compare_exchange_strong(expected, pid, std::memory_order_acq_rel)) {
            zero_counts(row); // a previous owner that died may have left counts
            return &row;
        }
    }
    return nullptr;
}

void release_row(InFlightRow& row) {
    zero_counts(row);
    row.pid.store(0, std::memory_order_release);
}

int reap_rows(Zone& zone) {
    int freed = 0;
    for (InFlightRow& row : zone.in_flight) {
        int32_t pid = row.pid.load(std::memory_order_acquire);
        // ESRCH: no such process (a live one owned by another user answers EPERM). The
        // master just reaped the lost worker, so its pid cannot have been reused yet.
        if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        zero_counts(row);
        if (row.pid.compare_exchange_strong(pid, 0, std::memory_order_acq_rel))
            ++freed;
    }
    return freed;
}

uint64_t in_flight(const Zone& zone, int server) {
    uint64_t n = 0;
    for (const InFlightRow& row : zone.in_flight)
        if (row.pid.load(std::memory_order_relaxed) != 0)
            n += row.servers[server].load(std::memory_order_relaxed);
    return n;
}

} // namespace upstream_metrics

UpstreamMetrics::UpstreamMetrics(upstream_metrics::Zone& zone, int worker_slot)
    : zone_(zone),
      shard_(zone.shards[static_cast<unsigned>(worker_slot) % upstream_metrics::kShards]),
      row_(upstream_metrics::claim_row(zone, getpid())) {
    if (!row_)
        WLOG_WARN("proxy: no free row in the upstream metrics zone (%d worker processes): this "
                  "worker's upstream requests in flight are not counted",
                  upstream_metrics::kOwners);
}

UpstreamMetrics::~UpstreamMetrics() {
    if (row_)
        upstream_metrics::release_row(*row_);
}

const UpstreamMetrics::Slots& UpstreamMetrics::slots(const UpstreamConfig& up) {
    auto [it, added] = slots_.try_emplace(&up);
    Slots& s = it->second;
    if (!added)
        return s;
    s.upstream = upstream_metrics::claim_upstream(zone_, up.name);
    s.servers.reserve(up.servers.size());
    bool full = s.upstream < 0;
    for (const UpstreamServer& server : up.servers) {
        s.servers.push_back(upstream_metrics::claim_server(zone_, up.name, server.address));
        full = full || s.servers.back() < 0;
    }
    if (full && !full_logged_) {
        full_logged_ = true;
        WLOG_WARN("proxy: the upstream metrics zone is full (%d upstreams, %d servers seen since "
                  "it was made): upstream \"%s\" is not counted in every upstream series",
                  upstream_metrics::kUpstreams, upstream_metrics::kServers, up.name.c_str());
    }
    return s;
}

} // namespace wraith::proxy
