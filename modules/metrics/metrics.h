// The metrics module's parts (one folder, several files):
//   metrics.cc    the `observe` filter that counts, the `metrics` and `dashboard` handlers,
//                 the module specs
//   prometheus.cc the scrape: Prometheus text format 0.0.4 and OpenMetrics 1.0.0
//   status.cc     its members of the live status object (common/metrics_text.h status_json)
//   dashboard.cc  the page, embedded, and status.json next to it
//   admin.cc      [admin]: a listener of its own that serves them
// docs/decisions.md, "Metrics", says why it is built this way; wraith.toml(5), METRICS, lists
// the series.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "common/module.h"
#include "common/shm.h"
#include "modules/metrics/metrics_zone.h"

namespace wraith::metrics {

// A worker's view of the zones it counts into and reads: the generation's, plus (a worker
// without the master's zones: unit tests) a private metrics zone, so counting still works
// within the process.
class MetricsWorker final : public ModuleWorker {
public:
    explicit MetricsWorker(const WorkerContext& ctx);

    Zone& zone() const { return *zone_; }
    Shard& shard() const { return *shard_; }
    // What the hooks of every module see when this worker answers a scrape or the dashboard.
    MetricsExport view(bool openmetrics) const {
        return MetricsExport{*config_, zones_, openmetrics, generation_};
    }
    // The route's slot (-1: none), looked up by name once per route and worker.
    int route_slot(const Request& req);

private:
    struct Free {
        void operator()(Zone* z) const;
    };
    std::shared_ptr<const Config> config_;
    SharedZones zones_;
    uint32_t generation_;
    Zone* zone_ = nullptr;
    Shard* shard_ = nullptr;
    std::unique_ptr<Zone, Free> private_;
    std::unordered_map<const Route*, int> slots_; // this generation's routes: stable pointers
};

// The scrape, from ctx.zones (the metrics zone, the core counters, the status table) and every
// module's export_metrics.
void render_prometheus(const MetricsExport& ctx, std::string& out);
// The same as the protobuf exposition (modules/metrics/protobuf.h), with the request
// duration's native histogram by protocol.
void render_prometheus_protobuf(const MetricsExport& ctx, std::string& out);
// ModuleSpec::export_status of the observe module.
void export_status(const MetricsExport& ctx, std::string& out);
// Site certificates and their expiry (certificates.cc): in the status object, in the scrape.
void export_certificate_status(const MetricsExport& ctx, std::string& out);
void export_certificate_metrics(const MetricsExport& ctx, std::string& out);

// Label values of a site and a route, as the zone stores them.
std::string site_label(const Site* site);
std::string route_label(const Route* route);

// The dashboard page (dashboard.html, embedded at build time).
extern const char kDashboardHtml[];
extern const size_t kDashboardHtmlSize;

std::unique_ptr<Handler> build_dashboard(TableReader& options, BuildContext& ctx);
// [admin]
void load_admin(const toml::node& value, TableContext& ctx);

} // namespace wraith::metrics
