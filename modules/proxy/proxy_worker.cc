#include "modules/proxy/proxy_worker.h"

#include "common/log.h"
#include "common/json.h"
#include "common/metrics_text.h"
#include "modules/proxy/health_check.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

namespace {
constexpr std::string_view kHealthZone = "proxy.health";
} // namespace

ProxyWorker::ProxyWorker(const WorkerContext& ctx, Health& health)
    : loop_(ctx.loop), health_(health), pool_(health), sessions_(ctx.loop, pool_),
      h3_sessions_(ctx.loop, pool_) {
    if (proxy_config(*ctx.config)) {
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
    return std::make_unique<ProxyWorker>(ctx, *health);
}

void declare_proxy_zones(const Config&, std::vector<ZoneSpec>& out) {
    // Always declared, so verdicts survive a reload that adds the first upstream, and
    // implicit upstreams (pass = ...) have passive health too.
    out.push_back({std::string(kHealthZone), sizeof(Health), Health::kLayoutVersion,
                   [](void* mem, size_t) { new (mem) Health(); }});
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
    if (!pc || pc->upstreams.empty() || !health)
        return;
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

void export_proxy_status(const MetricsExport& ctx, std::string& out) {
    const ProxyConfig* pc = proxy_config(ctx.config);
    auto* health = ctx.zones.get<Health>(kHealthZone);
    if (!pc || !health)
        return;
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
            out.append(",\"state\":\"").append(server_state(*health, *up, server, now)).append("\"}");
        }
        out += "]}";
    }
    out += ']';
}

} // namespace wraith::proxy
