#include "modules/proxy/proxy_worker.h"

#include "common/log.h"
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

} // namespace wraith::proxy
