// The DNS module's spec (dns.h): its table, its route key, its zone, its worker state and its
// metrics.
#include "modules/dns/dns.h"

#include "common/metrics_text.h"
#include "modules/dns/cache.h"
#include "modules/dns/dns_config.h"
#include "modules/dns/forwarder.h"

namespace wraith {

namespace {

void declare_dns_zones(const Config& config, std::vector<ZoneSpec>& out) {
    if (const dns::DnsConfig* dc = dns::dns_config(config))
        out.push_back(
            {dc->zone_name(), dc->cache_size, dns::Cache::kLayoutVersion, dns::Cache::init, true});
}

std::unique_ptr<ModuleWorker> start_dns_worker(const WorkerContext& ctx) {
    const dns::DnsConfig* dc = dns::dns_config(*ctx.config);
    if (!dc)
        return nullptr;
    dns::Cache cache(ctx.zones ? ctx.zones->find(dc->zone_name(), dc->cache_size) : nullptr,
                     dc->cache_size);
    return std::make_unique<dns::DnsWorker>(ctx.loop, ctx.config, *dc, cache);
}

void export_dns_metrics(const MetricsExport& ctx, std::string& out) {
    const dns::DnsConfig* dc = dns::dns_config(ctx.config);
    if (!dc)
        return;
    dns::Cache cache(ctx.zones.find(dc->zone_name(), dc->cache_size), dc->cache_size);
    if (!cache.valid())
        return;
    const dns::Counters& c = cache.counters();
    auto counter = [&](std::string_view name, std::string_view help,
                       const std::atomic<uint64_t>& n) {
        metric_header(out, ctx.openmetrics, name, "counter", help);
        out.append(name).append(" ").append(std::to_string(n.load(std::memory_order_relaxed)));
        out += '\n';
    };
    counter("wraith_dns_queries_total", "DNS queries accepted (DoH, DoT and DoQ).", c.queries);
    counter("wraith_dns_cache_hits_total", "DNS queries answered from the shared cache.",
            c.cache_hits);
    counter("wraith_dns_cache_misses_total", "DNS queries forwarded to an upstream.",
            c.cache_misses);
    counter("wraith_dns_upstream_failures_total",
            "Upstream tries that timed out or failed (the next upstream was tried).",
            c.upstream_failures);
    counter("wraith_dns_dropped_total",
            "Upstream answers dropped: wrong source address, ID or question.", c.dropped);
    counter("wraith_dns_blocked_total", "DNS queries answered from the block lists.", c.blocked);
    counter("wraith_dns_stale_answers_total",
            "Expired answers served because every upstream failed (serve_stale).", c.stale);
    counter("wraith_dns_malformed_total",
            "DNS queries refused as malformed (DoH 400/415, DoT and DoQ closes).", c.malformed);
}

} // namespace

// A handler on routes (`dns = {}`) and the [dns] table.
const ModuleSpec& dns_module() {
    static const ModuleSpec spec{.key = "dns",
                                 .is_handler = true,
                                 .build_handler = dns::build_doh,
                                 .table = "dns",
                                 .load_table = dns::load_dns_table,
                                 .zones = declare_dns_zones,
                                 .worker_start = start_dns_worker,
                                 .export_metrics = export_dns_metrics};
    return spec;
}

} // namespace wraith
