#include "modules/proxy/proxy_worker.h"

#include "common/json.h"
#include "common/log.h"
#include "common/metrics_text.h"
#include "modules/proxy/health_check.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

namespace {
constexpr std::string_view kHealthZone = "proxy.health";
} // namespace

ProxyWorker::ProxyWorker(const WorkerContext& ctx, Health& health, upstream_metrics::Zone& metrics)
    : loop_(ctx.loop), health_(health), metrics_(metrics, ctx.slot), pool_(health, &metrics_),
      sessions_(ctx.loop, pool_, metrics_), h3_sessions_(ctx.loop, pool_, metrics_) {
    if (const ProxyConfig* pc = proxy_config(*ctx.config)) {
        // Every [upstream.NAME] server gets its slots now, so its series show (at 0) before
        // its first request.
        for (const auto& [name, up] : pc->upstreams)
            metrics_.slots(*up);
        checker_ = std::make_unique<HealthChecker>(ctx.loop, ctx.config, pool_, health_, ctx.slot,
                                                   ctx.workers);
        if (checker_->probes())
            WLOG_DEBUG("proxy: health-checking %zu server(s)", checker_->probes());
    }
}

ProxyWorker::~ProxyWorker() = default;

std::unique_ptr<ModuleWorker> start_proxy_worker(const WorkerContext& ctx) {
    Health* health = ctx.zones ? ctx.zones->get<Health>(kHealthZone) : nullptr;
    if (!health) {
        // Every config declares the zone (declare_proxy_zones), so this is a bug or a worker
        // started without the master's zones (tests): a worker-private table still works.
        static Health private_table;
        health = &private_table;
    }
    auto* metrics =
        ctx.zones ? ctx.zones->get<upstream_metrics::Zone>(upstream_metrics::kZoneName) : nullptr;
    if (!metrics) {
        static upstream_metrics::Zone private_zone; // the same reasons
        metrics = &private_zone;
    }
    return std::make_unique<ProxyWorker>(ctx, *health, *metrics);
}

void declare_proxy_zones(const Config&, std::vector<ZoneSpec>& out) {
    // Always declared, so verdicts survive a reload that adds the first upstream, and
    // implicit upstreams (pass = ...) have passive health too.
    out.push_back({std::string(kHealthZone), sizeof(Health), Health::kLayoutVersion,
                   [](void* mem, size_t) { new (mem) Health(); }});
    // Zeros are the initial state; handed to a new master on binary upgrade, so its workers
    // count on where the old ones left off (and its scrape sees the old workers' in flight).
    out.push_back({std::string(upstream_metrics::kZoneName), sizeof(upstream_metrics::Zone),
                   upstream_metrics::kZoneVersion, nullptr, true});
}

void proxy_worker_lost(const SharedZones& zones) {
    if (auto* zone = zones.get<upstream_metrics::Zone>(upstream_metrics::kZoneName))
        if (int n = upstream_metrics::reap_rows(*zone))
            WLOG_DEBUG("proxy: cleared the upstream requests in flight of %d lost worker(s)", n);
}

namespace {

// The state of one server now: disabled in the config, ejected by passive health, down by
// the active check, else up.
const char* server_state(Health& health, const UpstreamConfig& up, const UpstreamServer& server,
                         uint64_t now) {
    const uint64_t key = Health::key(up.name, server.address);
    const HealthCheckConfig& hc = up.health_check;
    return server.down                                                      ? "disabled"
           : health.ejected_for(key, now) > 0                               ? "ejected"
           : hc.enabled && !health.active_up(key, now, active_stale_ms(hc)) ? "down"
                                                                            : "up";
}

} // namespace

void export_proxy_metrics(const MetricsExport& ctx, std::string& out) {
    const ProxyConfig* pc = proxy_config(ctx.config);
    auto* health = ctx.zones.get<Health>(kHealthZone);
    if (pc && !pc->upstreams.empty() && health) {
        metric_header(out, ctx.openmetrics, "wraith_upstream_server_state", "gauge",
                      "1 for the state each server of an [upstream.NAME] is in now: up, ejected "
                      "(passive health: too many failures), down (an active check failed) or "
                      "disabled (down = true in the config).");
        const uint64_t now = monotonic_ms();
        for (const auto& [name, up] : pc->upstreams) {
            for (const UpstreamServer& server : up->servers) {
                const std::string_view state = server_state(*health, *up, server, now);
                for (const char* s : {"up", "ejected", "down", "disabled"}) {
                    out += "wraith_upstream_server_state{upstream=\"";
                    metric_label_value(out, up->name);
                    out += "\",server=\"";
                    metric_label_value(out, server.address);
                    out.append("\",state=\"").append(s).append("\"} ");
                    out += state == s ? "1\n" : "0\n";
                }
            }
        }
    }
    if (const auto* zone = ctx.zones.get<upstream_metrics::Zone>(upstream_metrics::kZoneName))
        upstream_metrics::render(*zone, ctx.openmetrics, out);
}

void export_proxy_status(const MetricsExport& ctx, std::string& out) {
    const ProxyConfig* pc = proxy_config(ctx.config);
    auto* health = ctx.zones.get<Health>(kHealthZone);
    if (!pc || !health)
        return;
    const auto* zone = ctx.zones.get<upstream_metrics::Zone>(upstream_metrics::kZoneName);
    const uint64_t now = monotonic_ms();
    out += ",\"upstreams\":[";
    bool first_pool = true;
    for (const auto& [name, up] : pc->upstreams) {
        out += first_pool ? "{\"name\":" : ",{\"name\":";
        first_pool = false;
        append_json_string(out, up->name);
        out += ",\"servers\":[";
        bool first = true;
        for (const UpstreamServer& server : up->servers) {
            out += first ? "{\"address\":" : ",{\"address\":";
            first = false;
            append_json_string(out, server.address);
            out.append(",\"state\":\"").append(server_state(*health, *up, server, now));
            // Counters only grow: a reader takes rates from two status objects.
            upstream_metrics::ServerTotals t;
            if (zone)
                t = upstream_metrics::server_totals(*zone, up->name, server.address);
            out.append("\",\"requests\":").append(std::to_string(t.requests));
            out.append(",\"failures\":").append(std::to_string(t.failures));
            out.append(",\"in_flight\":").append(std::to_string(t.in_flight)).append("}");
        }
        out += "]}";
    }
    out += ']';
}

} // namespace wraith::proxy
