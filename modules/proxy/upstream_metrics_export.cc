// The upstream metrics in a scrape and in the status object, summed over the zone's shards
// (and its in-flight rows), so any worker of any generation answers the same totals. Every
// upstream and server that has a slot is listed, with zeros for what did not happen yet: the
// slots are bounded by the configs since the zone was made.
#include <cstdio>

#include "common/metrics_text.h"
#include "modules/proxy/upstream_metrics.h"

namespace wraith::proxy::upstream_metrics {

namespace {

void number(std::string& out, uint64_t n) {
    out += std::to_string(n);
}

// `upstream="..."` or `upstream="...",server="..."`.
std::string labels(const SlotName& s, bool with_server) {
    std::string l = "upstream=\"";
    metric_label_value(l, std::string_view(s.first));
    l += '"';
    if (with_server) {
        l += ",server=\"";
        metric_label_value(l, std::string_view(s.second));
        l += '"';
    }
    return l;
}

void sample(std::string& out, std::string_view name, const std::string& labels,
            std::string_view extra, uint64_t v) {
    out.append(name).append("{").append(labels);
    if (!extra.empty())
        out.append(",").append(extra);
    out += "} ";
    number(out, v);
    out += '\n';
}

// A histogram's _bucket, _sum and _count lines; `of(shard)` is its Histogram in a shard.
template <class Of>
void histogram(std::string& out, std::string_view name, const std::string& labels, const Zone& z,
               Of of) {
    uint64_t cumulative = 0;
    for (int b = 0; b <= kBuckets; ++b) {
        cumulative += total(z, [&](const Shard& s) -> const Counter& { return of(s).buckets[b]; });
        out.append(name).append("_bucket{").append(labels).append(",le=\"");
        if (b < kBuckets)
            metric_seconds(out, kBucketsUs[b]);
        else
            out += "+Inf";
        out += "\"} ";
        number(out, cumulative);
        out += '\n';
    }
    out.append(name).append("_sum{").append(labels).append("} ");
    metric_seconds(out, total(z, [&](const Shard& s) -> const Counter& { return of(s).sum_us; }));
    out += '\n';
    out.append(name).append("_count{").append(labels).append("} ");
    number(out, cumulative);
    out += '\n';
}

} // namespace

void render(const Zone& z, bool om, std::string& out) {
    std::vector<int> upstreams, servers;
    for (int u = 0; u < kUpstreams; ++u)
        if (z.upstreams[u].claimed())
            upstreams.push_back(u);
    for (int s = 0; s < kServers; ++s)
        if (z.servers[s].claimed())
            servers.push_back(s);
    if (upstreams.empty() && servers.empty())
        return; // no upstream proxied to since the zone was made: no families at all

    metric_header(out, om, "wraith_upstream_requests_total", "counter",
                  "Requests sent to each server of each upstream (every try, retries "
                  "included), by the status class of its answer, or none.");
    for (int s : servers) {
        const std::string l = labels(z.servers[s], true);
        for (int c = 0; c < kCodes; ++c)
            sample(out, "wraith_upstream_requests_total", l,
                   "code=\"" + std::string(kCodeNames[c]) + "\"",
                   total(z, [&](const Shard& sh) -> const Counter& { return sh.requests[s][c]; }));
    }
    metric_header(out, om, "wraith_upstream_failures_total", "counter",
                  "Tries that failed at each server, by why: connect, timeout, reset, protocol "
                  "(a malformed answer) or status (an answer of fail_statuses).");
    for (int s : servers) {
        const std::string l = labels(z.servers[s], true);
        for (int k = 0; k < kFailureKinds; ++k)
            sample(out, "wraith_upstream_failures_total", l,
                   "kind=\"" + std::string(kFailureNames[k]) + "\"",
                   total(z, [&](const Shard& sh) -> const Counter& { return sh.failures[s][k]; }));
    }
    metric_header(out, om, "wraith_upstream_in_flight", "gauge",
                  "Requests in progress at each server now.");
    for (int s : servers)
        sample(out, "wraith_upstream_in_flight", labels(z.servers[s], true), {}, in_flight(z, s));
    metric_header(out, om, "wraith_upstream_retries_total", "counter",
                  "Tries beyond a request's first (another server, or a fresh connection), by "
                  "upstream.");
    for (int u : upstreams)
        sample(out, "wraith_upstream_retries_total", labels(z.upstreams[u], false), {},
               total(z, [&](const Shard& sh) -> const Counter& { return sh.retries[u]; }));
    metric_header(out, om, "wraith_upstream_connect_seconds", "histogram",
                  "Time to set up each new upstream connection (DNS when needed, TCP, TLS; "
                  "HTTP/2: until the server's SETTINGS; HTTP/3: the QUIC handshake).");
    for (int u : upstreams)
        histogram(out, "wraith_upstream_connect_seconds", labels(z.upstreams[u], false), z,
                  [u](const Shard& s) -> const Histogram& { return s.connect[u]; });
    metric_header(out, om, "wraith_upstream_header_seconds", "histogram",
                  "Time from the start of a try (connecting, or taking a kept-alive connection) "
                  "to the server's response head.");
    for (int u : upstreams)
        histogram(out, "wraith_upstream_header_seconds", labels(z.upstreams[u], false), z,
                  [u](const Shard& s) -> const Histogram& { return s.header[u]; });
    metric_header(out, om, "wraith_upstream_dns_cache_lookups_total", "counter",
                  "Addresses a connection to a host-name server needed, by where they came "
                  "from: hit (the worker's last DNS answer, within its TTL), stale (past its TTL, "
                  "used while a refresh runs), miss (no answer yet: the connection waited). Hit "
                  "ratio: (hit + stale) / all.");
    for (int u : upstreams)
        for (int k = 0; k < kDnsUses; ++k)
            sample(out, "wraith_upstream_dns_cache_lookups_total", labels(z.upstreams[u], false),
                   "result=\"" + std::string(kDnsUseNames[k]) + "\"",
                   total(z, [&](const Shard& sh) -> const Counter& { return sh.dns_uses[u][k]; }));
    metric_header(out, om, "wraith_upstream_dns_queries_total", "counter",
                  "DNS lookups of host-name servers (A and AAAA at once), by answer: ok, "
                  "not_found (NXDOMAIN or no address), timeout, error.");
    for (int u : upstreams)
        for (int k = 0; k < kDnsResults; ++k)
            sample(
                out, "wraith_upstream_dns_queries_total", labels(z.upstreams[u], false),
                "result=\"" + std::string(kDnsResultNames[k]) + "\"",
                total(z, [&](const Shard& sh) -> const Counter& { return sh.dns_lookups[u][k]; }));
}

ServerTotals server_totals(const Zone& z, std::string_view upstream, std::string_view server) {
    ServerTotals t;
    const int s = find_server(z, upstream, server);
    if (s < 0)
        return t;
    for (const Shard& sh : z.shards) {
        for (const Counter& c : sh.requests[s])
            t.requests += c.load(std::memory_order_relaxed);
        for (const Counter& c : sh.failures[s])
            t.failures += c.load(std::memory_order_relaxed);
    }
    t.in_flight = in_flight(z, s);
    return t;
}

} // namespace wraith::proxy::upstream_metrics
