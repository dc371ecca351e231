// The scrape: Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when the client asks for it.
// Everything is summed over the shards of the shared zones, so any worker of any generation
// answers the same totals.
#include <cstdio>
#include <string>

#include "common/counters.h"
#include "common/metrics_text.h"
#include "common/status.h"
#include "modules/metrics/metrics.h"
#include "modules/metrics/protobuf.h"

namespace wraith::metrics {

namespace {

void number(std::string& out, uint64_t n) {
    out += std::to_string(n);
}

template <class F> uint64_t total(const Zone& z, F counter) {
    uint64_t n = 0;
    for (const Shard& s : z.shards)
        n += counter(s).load(std::memory_order_relaxed);
    return n;
}

// One sample line: name{labels} value.
void sample(std::string& out, std::string_view name, std::string_view labels, uint64_t v) {
    out.append(name);
    if (!labels.empty())
        out.append("{").append(labels).append("}");
    out += ' ';
    number(out, v);
    out += '\n';
}

// A histogram's _bucket, _sum and _count lines from per-bucket counts (`n` bounds, then +Inf);
// `bound` writes a bound's value, `sum` the sum's.
template <class Bound>
void histogram(std::string& out, std::string_view name, std::string_view labels,
               const uint64_t* counts, int n, Bound bound, const std::string& sum) {
    uint64_t cumulative = 0;
    std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
    for (int b = 0; b <= n; ++b) {
        cumulative += counts[b];
        out.append(name).append("_bucket{").append(prefix).append("le=\"");
        if (b < n)
            bound(out, b);
        else
            out += "+Inf";
        out += "\"} ";
        number(out, cumulative);
        out += '\n';
    }
    out.append(name).append("_sum");
    if (!labels.empty())
        out.append("{").append(labels).append("}");
    out.append(" ").append(sum).append("\n");
    sample(out, std::string(name) + "_count", labels, cumulative);
}

void render_requests(const Zone& z, bool om, std::string& out) {
    metric_header(out, om, "wraith_requests_total", "counter",
                  "Requests answered, by protocol, method and status class.");
    for (int p = 0; p < kProtocols; ++p)
        for (int m = 0; m < kMethods; ++m)
            for (int c = 0; c < kCodes; ++c) {
                uint64_t n =
                    total(z, [&](const Shard& s) -> const Counter& { return s.requests[p][m][c]; });
                if (!n)
                    continue;
                std::string labels = "protocol=\"" + std::string(kProtocolNames[p]) +
                                     "\",method=\"" + std::string(kMethodNames[m]) + "\",code=\"" +
                                     std::string(kCodeNames[c]) + "\"";
                sample(out, "wraith_requests_total", labels, n);
            }

    metric_header(out, om, "wraith_request_duration_seconds", "histogram",
                  "Time from a complete request head to the end of the response, by protocol.");
    for (int p = 0; p < kProtocols; ++p) {
        uint64_t buckets[kBuckets + 1], count = 0;
        for (int b = 0; b <= kBuckets; ++b) {
            buckets[b] = total(
                z, [&](const Shard& s) -> const Counter& { return s.duration_buckets[p][b]; });
            count += buckets[b];
        }
        if (!count)
            continue;
        std::string sum;
        metric_seconds(
            sum, total(z, [&](const Shard& s) -> const Counter& { return s.duration_us[p]; }));
        histogram(
            out, "wraith_request_duration_seconds",
            "protocol=\"" + std::string(kProtocolNames[p]) + "\"", buckets, kBuckets,
            [](std::string& o, int b) { metric_seconds(o, kBucketsUs[b]); }, sum);
    }

    struct Bytes {
        std::string_view name, help;
    };
    const Bytes bytes[] = {
        {"wraith_request_body_bytes_total", "Request body bytes received, by protocol."},
        {"wraith_response_body_bytes_total", "Response body bytes sent, by protocol."}};
    for (int i = 0; i < 2; ++i) {
        metric_header(out, om, bytes[i].name, "counter", bytes[i].help);
        for (int p = 0; p < kProtocols; ++p)
            sample(out, bytes[i].name, "protocol=\"" + std::string(kProtocolNames[p]) + "\"",
                   total(z, [&](const Shard& s) -> const Counter& {
                       return i == 0 ? s.request_bytes[p] : s.response_bytes[p];
                   }));
    }
}

void render_routes(const Zone& z, bool om, std::string& out) {
    metric_header(out, om, "wraith_route_requests_total", "counter",
                  "Requests answered, by site (its first host name), route (its path) and "
                  "status class.");
    std::string routes_bytes;
    for (int r = 0; r < kRoutes; ++r) {
        const RouteName& name = z.routes[r];
        if (!name.claimed())
            continue;
        std::string labels = "site=\"";
        metric_label_value(labels, std::string_view(name.first));
        labels += "\",route=\"";
        metric_label_value(labels, std::string_view(name.second));
        labels += '"';
        for (int c = 0; c < kCodes; ++c) {
            uint64_t n =
                total(z, [&](const Shard& s) -> const Counter& { return s.route_requests[r][c]; });
            if (n)
                sample(out, "wraith_route_requests_total",
                       labels + ",code=\"" + std::string(kCodeNames[c]) + "\"", n);
        }
        sample(
            routes_bytes, "wraith_route_response_body_bytes_total", labels,
            total(z, [&](const Shard& s) -> const Counter& { return s.route_response_bytes[r]; }));
    }
    metric_header(out, om, "wraith_route_response_body_bytes_total", "counter",
                  "Response body bytes sent, by site and route.");
    out += routes_bytes;
}

// What the workers publish in the master's status table: gauges a dead worker's slot cannot
// leave behind (the master clears a slot when it reaps the worker).
void render_workers(const WorkerStatus* table, bool om, std::string& out) {
    uint64_t connections = 0, by_state[4] = {}, by_kind[4] = {}, exchanges[kProtocols] = {};
    for (int i = 0; i < kMaxWorkerStatus; ++i) {
        const WorkerStatus& st = table[i];
        WorkerState state = st.state.load(std::memory_order_relaxed);
        if (st.pid.load(std::memory_order_relaxed) == 0 || state == WorkerState::free)
            continue;
        by_state[static_cast<int>(state)]++;
        connections += st.connections.load(std::memory_order_relaxed);
        for (int k = 0; k < 4; ++k)
            by_kind[k] += st.open_by_kind[k].load(std::memory_order_relaxed);
        for (int p = 0; p < kProtocols; ++p)
            exchanges[p] += st.exchanges[p].load(std::memory_order_relaxed);
    }
    metric_header(out, om, "wraith_connections", "gauge", "Client connections open now.");
    sample(out, "wraith_connections", "", connections);
    metric_header(out, om, "wraith_connections_by_protocol", "gauge",
                  "Client connections open now, by protocol (other: a TLS handshake or PROXY "
                  "header not done yet, or a stream protocol).");
    for (int k = 0; k < 4; ++k)
        sample(out, "wraith_connections_by_protocol",
               "protocol=\"" + std::string(kConnectionKindNames[k]) + "\"", by_kind[k]);
    metric_header(out, om, "wraith_requests_in_flight", "gauge",
                  "Requests (HTTP/1.1 exchanges, HTTP/2 and HTTP/3 streams) in progress now.");
    for (int p = 0; p < kProtocols; ++p)
        sample(out, "wraith_requests_in_flight",
               "protocol=\"" + std::string(kProtocolNames[p]) + "\"", exchanges[p]);
    metric_header(out, om, "wraith_workers", "gauge", "Worker processes, by state.");
    const char* names[] = {"free", "starting", "serving", "draining"};
    for (int s = 1; s < 4; ++s)
        sample(out, "wraith_workers", "state=\"" + std::string(names[s]) + "\"", by_state[s]);
}

void render_core(const counters::Zone& cz, bool om, std::string& out) {
    using namespace counters;
    auto n = [&](Id id) { return total(cz, id); };
    metric_header(out, om, "wraith_tls_handshakes_total", "counter",
                  "TLS handshakes over TCP completed, by whether they resumed a session.");
    sample(out, "wraith_tls_handshakes_total", "resumed=\"false\"",
           n(tls_handshakes) - n(tls_resumed));
    sample(out, "wraith_tls_handshakes_total", "resumed=\"true\"", n(tls_resumed));
    metric_header(out, om, "wraith_tls_handshake_failures_total", "counter",
                  "TLS handshakes over TCP that failed, by reason.");
    const std::pair<Id, const char*> reasons[] = {{tls_fail_closed, "closed"},
                                                  {tls_fail_timeout, "timeout"},
                                                  {tls_fail_version, "version"},
                                                  {tls_fail_cipher, "cipher"},
                                                  {tls_fail_alpn, "alpn"},
                                                  {tls_fail_certificate, "client_certificate"},
                                                  {tls_fail_plain_http, "plain_http"},
                                                  {tls_fail_other, "other"}};
    for (const auto& [id, name] : reasons)
        sample(out, "wraith_tls_handshake_failures_total", "reason=\"" + std::string(name) + "\"",
               n(id));

    struct Plain {
        Id id;
        const char* name;
        const char* help;
    };
    const Plain plain[] = {
        {quic_handshakes, "wraith_quic_handshakes_total", "QUIC handshakes completed."},
        {quic_resumed, "wraith_quic_resumed_handshakes_total",
         "QUIC handshakes that resumed a session."},
        {quic_early_data, "wraith_quic_early_data_accepted_total",
         "QUIC handshakes whose 0-RTT data was accepted."},
        {quic_retry_sent, "wraith_quic_retry_sent_total",
         "Retry packets sent to validate a client's address."},
        {quic_migrations, "wraith_quic_migrations_total",
         "QUIC connections that moved to a new, validated client address."},
        {quic_congested, "wraith_quic_congested_connections_total",
         "QUIC connections closed that had lost packets (their window was cut at least once)."},
        {quic_stream_lost, "wraith_quic_stream_packets_lost_total",
         "QUIC packets carrying response or request stream data that were declared lost (and "
         "their data sent again), counted per stream as it closes."},
        {reloads, "wraith_reloads_total", "Configuration reloads that started a generation."},
        {reload_failures, "wraith_reload_failures_total",
         "Reloads refused (the configuration did not load) or whose workers failed to start."},
        {upgrades, "wraith_binary_upgrades_total", "Binary upgrades this server went through."}};
    for (const Plain& p : plain) {
        metric_header(out, om, p.name, "counter", p.help);
        sample(out, p.name, "", n(p.id));
    }

    uint64_t rtt[kRttBuckets + 1] = {}, cwnd[kCwndBucketCount + 1] = {}, rtt_sum = 0, cwnd_sum = 0;
    for (const counters::Shard& s : cz.shards) {
        for (int b = 0; b <= kRttBuckets; ++b)
            rtt[b] += s.rtt[b].load(std::memory_order_relaxed);
        for (int b = 0; b <= kCwndBucketCount; ++b)
            cwnd[b] += s.cwnd[b].load(std::memory_order_relaxed);
        rtt_sum += s.rtt_sum_us.load(std::memory_order_relaxed);
        cwnd_sum += s.cwnd_sum.load(std::memory_order_relaxed);
    }
    metric_header(out, om, "wraith_quic_rtt_seconds", "histogram",
                  "Smoothed round-trip time of each QUIC connection when it closed.");
    std::string sum;
    metric_seconds(sum, rtt_sum);
    histogram(
        out, "wraith_quic_rtt_seconds", "", rtt, kRttBuckets,
        [](std::string& o, int b) { metric_seconds(o, kRttBucketsUs[b]); }, sum);
    metric_header(out, om, "wraith_quic_congestion_window_bytes", "histogram",
                  "Congestion window of each QUIC connection when it closed.");
    histogram(
        out, "wraith_quic_congestion_window_bytes", "", cwnd, kCwndBucketCount,
        [](std::string& o, int b) { number(o, kCwndBuckets[b]); }, std::to_string(cwnd_sum));
}

} // namespace

void render_prometheus(const MetricsExport& ctx, std::string& out) {
    const bool om = ctx.openmetrics;
    out.reserve(12288);
    if (const Zone* z = ctx.zones.get<Zone>(kZoneName)) {
        render_requests(*z, om, out);
        render_routes(*z, om, out);
    }
    if (const auto* table = static_cast<const WorkerStatus*>(
            ctx.zones.find(kStatusZoneName, sizeof(WorkerStatus) * kMaxWorkerStatus)))
        render_workers(table, om, out);
    if (const auto* cz = ctx.zones.get<counters::Zone>(counters::kZoneName))
        render_core(*cz, om, out);
    metric_header(out, om, "wraith_config_generation", "gauge",
                  "The config generation of the worker that answered (1 at start, +1 per "
                  "reload).");
    sample(out, "wraith_config_generation", "", ctx.generation);
    export_certificate_metrics(ctx, out);
    // Series of other modules (upstream health, limits ...), from their own shared state.
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.export_metrics)
            m.export_metrics(ctx, out);
    if (om)
        out += "# EOF\n";
}

void render_prometheus_protobuf(const MetricsExport& ctx, std::string& out) {
    MetricsExport text_ctx = ctx;
    text_ctx.openmetrics = false;
    std::string text;
    render_prometheus(text_ctx, text);
    // wraith_request_duration_seconds{protocol="…"}: from the same shards, read after the
    // text (so the native count is at least the classic one's: never fewer observations in
    // the buckets than the count says).
    NativeHistogram native[kProtocols];
    if (const Zone* z = ctx.zones.get<Zone>(kZoneName))
        for (int p = 0; p < kProtocols; ++p) {
            uint64_t counts[kNativeBuckets] = {};
            uint64_t zero = 0;
            for (const Shard& s : z->shards) {
                for (int b = 0; b < kNativeBuckets; ++b)
                    counts[b] += s.native[p][b].load(std::memory_order_relaxed);
                zero += s.native_zero[p].load(std::memory_order_relaxed);
            }
            native[p] = make_native(counts, kNativeBuckets, kNativeMinKey, kNativeSchema,
                                    kNativeZeroThreshold, zero);
        }
    out = text_to_protobuf(
        text, [&](std::string_view family, std::string_view labels) -> const NativeHistogram* {
            if (family != "wraith_request_duration_seconds")
                return nullptr;
            for (int p = 0; p < kProtocols; ++p)
                if (labels == "protocol=\"" + std::string(kProtocolNames[p]) + "\"")
                    return native[p].count ? &native[p] : nullptr;
            return nullptr;
        });
}

} // namespace wraith::metrics
