// The proxy module's per-worker state (ModuleSpec::worker_start): this worker's connection
// pools, DNS answers and balancer state (UpstreamPool), its HTTP/2 sessions (H2Sessions), its
// QUIC connections to HTTP/3 upstreams (H3Sessions) and,
// while the worker serves, the active health checks it runs. Passive and active health
// verdicts live in the shared zone "proxy.health" (health.h), which all workers read; the
// upstream metrics in the shared zone "proxy.metrics" (upstream_metrics.h).
#pragma once

#include <ev.h>

#include <memory>

#include "common/module.h"
#include "modules/proxy/h2_session.h"
#include "modules/proxy/h3_session.h"
#include "modules/proxy/health.h"
#include "modules/proxy/health_check.h"
#include "modules/proxy/mirror.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/upstream_metrics.h"

namespace wraith::proxy {

class ProxyWorker final : public ModuleWorker {
public:
    ProxyWorker(const WorkerContext& ctx, Health& health, upstream_metrics::Zone& metrics);
    ~ProxyWorker() override;

    struct ev_loop* loop() const {
        return loop_;
    }
    UpstreamPool& pool() { return pool_; }
    H2Sessions& sessions() { return sessions_; }
    H3Sessions& h3_sessions() { return h3_sessions_; }
    Health& health() { return health_; }
    UpstreamMetrics& metrics() { return metrics_; }
    // Draining: health checks stop (they must not hold the drain open); requests in flight
    // keep their connections.
    void drain() override { checker_.reset(); }
    MirrorSet& mirrors() { return mirrors_; }

private:
    struct ev_loop* loop_;
    Health& health_;
    UpstreamMetrics metrics_; // before the sessions and exchanges that record into it
    UpstreamPool pool_;
    H2Sessions sessions_; // after pool_: sessions give their DNS waits back to it
    H3Sessions h3_sessions_;
    std::unique_ptr<HealthChecker> checker_;
    MirrorSet mirrors_; // last: mirrored exchanges end before the pools they use
};

// ModuleSpec hooks.
std::unique_ptr<ModuleWorker> start_proxy_worker(const WorkerContext& ctx);
void declare_proxy_zones(const Config& config, std::vector<ZoneSpec>& out);
// ModuleSpec::export_metrics: the state of every server of every [upstream.NAME], and the
// upstream metrics (requests, failures, retries, timings, in flight).
void export_proxy_metrics(const MetricsExport& ctx, std::string& out);
// ModuleSpec::export_status: "upstreams", each server's state and counts, for the dashboard
// and top.
void export_proxy_status(const MetricsExport& ctx, std::string& out);
// ModuleSpec::worker_lost: frees the in-flight rows of worker processes that are gone.
void proxy_worker_lost(const SharedZones& zones);

} // namespace wraith::proxy
