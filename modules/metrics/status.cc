// The observe module's members of the live status object (the dashboard's status.json and
// `wraith top`): totals, the latency histogram, gauges, the core counters, routes, workers and
// the recent 5xx answers. Counters only grow; readers compute rates between two reads.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/counters.h"
#include "common/json.h"
#include "common/status.h"
#include "modules/metrics/metrics.h"

namespace wraith::metrics {

namespace {

template <class F> uint64_t total(const Zone& z, F counter) {
    uint64_t n = 0;
    for (const Shard& s : z.shards)
        n += counter(s).load(std::memory_order_relaxed);
    return n;
}

void num(std::string& out, uint64_t n) {
    char buf[24];
    int len = std::snprintf(buf, sizeof(buf), "%" PRIu64, n);
    out.append(buf, static_cast<size_t>(len));
}

// "key":n pairs from parallel name and value arrays, as one object.
template <class Names>
void object(std::string& out, std::string_view key, const Names& names, const uint64_t* values,
            int n) {
    out.append(",\"").append(key).append("\":{");
    for (int i = 0; i < n; ++i) {
        if (i)
            out += ',';
        out.append("\"").append(names[i]).append("\":");
        num(out, values[i]);
    }
    out += '}';
}

void zone_members(const Zone& z, std::string& out) {
    uint64_t requests[kProtocols] = {}, codes[kCodes] = {}, latency[kFineBuckets + 1] = {};
    uint64_t bytes[2] = {};
    for (const Shard& s : z.shards) {
        for (int p = 0; p < kProtocols; ++p) {
            for (int m = 0; m < kMethods; ++m)
                for (int c = 0; c < kCodes; ++c) {
                    uint64_t n = s.requests[p][m][c].load(std::memory_order_relaxed);
                    requests[p] += n;
                    codes[c] += n;
                }
            for (int b = 0; b <= kFineBuckets; ++b)
                latency[b] += s.latency[p][b].load(std::memory_order_relaxed);
            bytes[0] += s.request_bytes[p].load(std::memory_order_relaxed);
            bytes[1] += s.response_bytes[p].load(std::memory_order_relaxed);
        }
    }
    object(out, "requests", kProtocolNames, requests, kProtocols);
    object(out, "status", kCodeNames, codes, kCodes);
    const char* byte_names[] = {"in", "out"};
    object(out, "bytes", byte_names, bytes, 2);
    out += ",\"latency\":{\"bounds_us\":[";
    for (int b = 0; b < kFineBuckets; ++b) {
        if (b)
            out += ',';
        num(out, kFineBoundsUs[b]);
    }
    out += "],\"counts\":[";
    for (int b = 0; b <= kFineBuckets; ++b) {
        if (b)
            out += ',';
        num(out, latency[b]);
    }
    out += "]}";

    out += ",\"routes\":[";
    bool first = true;
    for (int r = 0; r < kRoutes; ++r) {
        const RouteName& name = z.routes[r];
        if (!name.claimed())
            continue;
        uint64_t n = 0, errors = 0;
        for (int c = 0; c < kCodes; ++c) {
            uint64_t k =
                total(z, [&](const Shard& s) -> const Counter& { return s.route_requests[r][c]; });
            n += k;
            if (c == 5)
                errors = k;
        }
        out += first ? "{\"site\":" : ",{\"site\":";
        first = false;
        append_json_string(out, name.first);
        out += ",\"route\":";
        append_json_string(out, name.second);
        out += ",\"requests\":";
        num(out, n);
        out += ",\"errors\":";
        num(out, errors);
        out += ",\"bytes\":";
        num(out,
            total(z, [&](const Shard& s) -> const Counter& { return s.route_response_bytes[r]; }));
        out += '}';
    }
    out += ']';

    // The recent 5xx answers, newest first: entries read whole (seq unchanged around the copy).
    out += ",\"errors\":[";
    const uint64_t next = z.errors.next.load(std::memory_order_acquire);
    first = true;
    for (uint64_t i = next; i > 0 && i + kRecentErrors > next; --i) {
        const RecentError& e = z.errors.entries[(i - 1) % kRecentErrors];
        const uint64_t seq = e.seq.load(std::memory_order_acquire);
        if (seq != i)
            continue; // being written, or already overwritten by a newer one
        RecentError copy;
        std::memcpy(static_cast<void*>(&copy.time_ms), &e.time_ms,
                    sizeof(RecentError) - offsetof(RecentError, time_ms));
        std::atomic_thread_fence(std::memory_order_acquire);
        if (e.seq.load(std::memory_order_relaxed) != seq)
            continue;
        copy.method[sizeof(copy.method) - 1] = copy.host[sizeof(copy.host) - 1] =
            copy.path[sizeof(copy.path) - 1] = 0;
        char head[96];
        std::snprintf(head, sizeof(head), "%s{\"time\":%lld.%03lld,\"status\":%u,\"protocol\":\"",
                      first ? "" : ",", static_cast<long long>(copy.time_ms / 1000),
                      static_cast<long long>(copy.time_ms % 1000), copy.status);
        first = false;
        out += head;
        out.append(kProtocolNames[copy.protocol % kProtocols]);
        out += "\",\"method\":";
        append_json_string(out, copy.method);
        out += ",\"host\":";
        append_json_string(out, copy.host);
        out += ",\"path\":";
        append_json_string(out, copy.path);
        out += '}';
    }
    out += ']';
}

void worker_members(const WorkerStatus* table, std::string& out) {
    uint64_t kinds[4] = {}, exchanges[kProtocols] = {};
    std::string rows;
    const char* states[] = {"free", "starting", "serving", "draining"};
    for (int i = 0; i < kMaxWorkerStatus; ++i) {
        const WorkerStatus& st = table[i];
        const int pid = st.pid.load(std::memory_order_relaxed);
        const WorkerState state = st.state.load(std::memory_order_relaxed);
        if (!pid || state == WorkerState::free)
            continue;
        for (int k = 0; k < 4; ++k)
            kinds[k] += st.open_by_kind[k].load(std::memory_order_relaxed);
        for (int p = 0; p < kProtocols; ++p)
            exchanges[p] += st.exchanges[p].load(std::memory_order_relaxed);
        char row[256];
        std::snprintf(
            row, sizeof(row),
            "%s{\"pid\":%d,\"slot\":%d,\"generation\":%u,\"state\":\"%s\","
            "\"connections\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"started\":%lld}",
            rows.empty() ? "" : ",", pid, st.slot, st.generation,
            states[static_cast<int>(state) & 3], st.connections.load(std::memory_order_relaxed),
            st.requests.load(std::memory_order_relaxed), static_cast<long long>(st.started_unix));
        rows += row;
    }
    object(out, "connections", kConnectionKindNames, kinds, 4);
    object(out, "streams", kProtocolNames, exchanges, kProtocols);
    out.append(",\"workers\":[").append(rows).append("]");
}

void core_members(const counters::Zone& cz, std::string& out) {
    using namespace counters;
    auto n = [&](Id id) { return total(cz, id); };
    const uint64_t fails = n(tls_fail_closed) + n(tls_fail_timeout) + n(tls_fail_version) +
                           n(tls_fail_cipher) + n(tls_fail_alpn) + n(tls_fail_certificate) +
                           n(tls_fail_plain_http) + n(tls_fail_other);
    const char* tls_names[] = {"handshakes", "resumed", "failures"};
    const uint64_t tls[] = {n(tls_handshakes), n(tls_resumed), fails};
    object(out, "tls", tls_names, tls, 3);
    const char* quic_names[] = {"handshakes", "resumed", "early_data", "retry",
                                "migrations", "closed",  "congested",  "packets_lost"};
    const uint64_t quic[] = {n(quic_handshakes), n(quic_resumed),    n(quic_early_data),
                             n(quic_retry_sent), n(quic_migrations), n(quic_closed),
                             n(quic_congested),  n(quic_stream_lost)};
    object(out, "quic", quic_names, quic, 8);
    const char* reload_names[] = {"reloads", "failures", "upgrades"};
    const uint64_t reloads_[] = {n(reloads), n(reload_failures), n(upgrades)};
    object(out, "reloads", reload_names, reloads_, 3);
}

} // namespace

void export_status(const MetricsExport& ctx, std::string& out) {
    if (const Zone* z = ctx.zones.get<Zone>(kZoneName))
        zone_members(*z, out);
    if (const auto* table = static_cast<const WorkerStatus*>(
            ctx.zones.find(kStatusZoneName, sizeof(WorkerStatus) * kMaxWorkerStatus)))
        worker_members(table, out);
    if (const auto* cz = ctx.zones.get<counters::Zone>(counters::kZoneName))
        core_members(*cz, out);
    export_certificate_status(ctx, out);
}

} // namespace wraith::metrics
