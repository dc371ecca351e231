// Metrics: the `observe` filter counts every exchange into the shared metrics zone (on by
// default at [server] scope; `observe = false` leaves a site or route out), the `metrics`
// handler answers a scrape (prometheus.cc) and the `dashboard` handler serves the live page
// (dashboard.cc). modules/metrics/metrics.h lists the parts.
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>

#include "common/config_reader.h"
#include "common/metrics_text.h"
#include "common/module.h"
#include "modules/metrics/metrics.h"
#include "modules/metrics/protobuf.h"

namespace wraith {

namespace metrics {

std::string site_label(const Site* site) {
    if (!site || site->hosts.empty())
        return "";
    const HostMatch& h = site->hosts.front();
    switch (h.kind) {
    case HostMatch::Kind::wildcard:
        return "*" + h.text;
    case HostMatch::Kind::regex:
        return "~" + h.text;
    case HostMatch::Kind::exact:
        break;
    }
    return h.text;
}

std::string route_label(const Route* route) {
    if (!route)
        return "";
    switch (route->match.kind) {
    case PathMatch::Kind::exact:
        return "=" + route->match.text;
    case PathMatch::Kind::regex:
        return "~" + route->match.text;
    case PathMatch::Kind::prefix:
        break;
    }
    return route->match.text;
}

MetricsWorker::MetricsWorker(const WorkerContext& ctx)
    : config_(ctx.config), generation_(ctx.generation) {
    if (ctx.zones)
        zones_ = *ctx.zones;
    zone_ = zones_.get<Zone>(kZoneName);
    if (!zone_) {
        private_.reset(static_cast<Zone*>(std::aligned_alloc(alignof(Zone), sizeof(Zone))));
        std::memset(static_cast<void*>(private_.get()), 0, sizeof(Zone));
        zone_ = private_.get();
        zones_.add({std::string(kZoneName), zone_, sizeof(Zone), kZoneVersion});
    }
    shard_ = &zone_->shards[static_cast<unsigned>(ctx.slot) % kShards];
}

void MetricsWorker::Free::operator()(Zone* z) const {
    std::free(z);
}

int MetricsWorker::route_slot(const Request& req) {
    auto it = slots_.find(req.route);
    if (it != slots_.end())
        return it->second;
    int slot = claim_route(*zone_, site_label(req.site), route_label(req.route));
    slots_.emplace(req.route, slot);
    return slot;
}

namespace {

// Method (common/http.h, in its order) -> index into kMethodNames.
constexpr int kMethodIndex[] = {
    /* other */ 7, /* get */ 0,  /* head */ 1,    /* post */ 2,
    /* put */ 3,   /* del */ 4,  /* options */ 6, /* connect */ 7,
    /* trace */ 7, /* patch */ 5};
static_assert(std::size(kMethodIndex) == static_cast<size_t>(Method::patch) + 1);

int method_index(Method m) {
    return kMethodIndex[static_cast<size_t>(m)];
}

class ObserveFilter final : public Filter {
public:
    explicit ObserveFilter(size_t module_index) : module_index_(module_index) {}
    unsigned phases() const override { return phase_bit(Phase::log); }

    void log(const Request& req, const ExchangeSummary& s) const override {
        auto* w = req.modules ? req.modules->get<MetricsWorker>(module_index_) : nullptr;
        if (!w)
            return;
        Shard& sh = w->shard();
        const int p = protocol_index(req.version);
        const int code = code_index(s.status);
        add(sh.requests[p][method_index(req.method_id)][code], 1);
        add(sh.duration_buckets[p][bucket_index(s.duration_us)], 1);
        add(sh.latency[p][fine_bucket_index(s.duration_us)], 1);
        if (const int n = native_bucket_index(s.duration_us); n >= 0)
            add(sh.native[p][n], 1);
        else
            add(sh.native_zero[p], 1);
        add(sh.duration_us[p], s.duration_us);
        add(sh.request_bytes[p], s.request_bytes);
        add(sh.response_bytes[p], s.body_bytes);
        if (req.route) {
            int slot = w->route_slot(req);
            if (slot >= 0) {
                add(sh.route_requests[slot][code], 1);
                add(sh.route_response_bytes[slot], s.body_bytes);
            }
        }
        if (s.status >= 500)
            record_error(w->zone(), req.start.tv_sec * 1000 + req.start.tv_nsec / 1000000, s.status,
                         p, req.method, req.host, req.path);
    }

private:
    size_t module_index_;
};

class MetricsHandler final : public Handler {
public:
    explicit MetricsHandler(size_t observe_index) : observe_index_(observe_index) {}

    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override {
        if (req.has_body)
            body.discard();
        if (req.method_id != Method::get && req.method_id != Method::head)
            return send_error(req, out, 405, {});
        auto* w = req.modules ? req.modules->get<MetricsWorker>(observe_index_) : nullptr;
        if (!w)
            return send_error(req, out, 503, "metrics: this worker has no metrics state");
        // The protobuf exposition when the client asks for it (a Prometheus with native
        // histograms on lists it first); else OpenMetrics when listed (Prometheus does), else
        // the classic text.
        const std::string_view accept = req.headers.get("accept");
        const bool protobuf = accepts_protobuf(accept);
        const bool om =
            !protobuf && accept.find("application/openmetrics-text") != std::string_view::npos;
        std::string text;
        if (protobuf)
            render_prometheus_protobuf(w->view(false), text);
        else
            render_prometheus(w->view(om), text);
        auto* head = req.arena->make<ResponseHead>();
        head->headers.add("content-type",
                          protobuf ? kProtobufContentType
                          : om     ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                   : "text/plain; version=0.0.4; charset=utf-8");
        head->headers.add("cache-control", "no-store");
        head->headers.add("vary", "accept");
        head->content_length = static_cast<int64_t>(text.size());
        if (req.method_id == Method::head) {
            out.send_headers(*head, true);
            return;
        }
        out.send_headers(*head, false);
        out.send_body(req.arena->copy(text), true);
    }

private:
    size_t observe_index_; // the observe module's: its worker holds the zone
};

std::unique_ptr<Filter> build_observe(TableReader&, BuildContext& ctx) {
    return std::make_unique<ObserveFilter>(ctx.module_index);
}

std::unique_ptr<Handler> build_metrics(TableReader&, BuildContext&) {
    const ModuleRegistry& registry = ModuleRegistry::instance();
    return std::make_unique<MetricsHandler>(registry.index_of(*registry.find("observe")));
}

void declare_zone(const Config&, std::vector<ZoneSpec>& out) {
    // Zeros are the initial state; handed to a new master on binary upgrade, so its workers
    // count on where the old ones left off.
    out.push_back({std::string(kZoneName), sizeof(Zone), kZoneVersion, nullptr, true});
}

std::unique_ptr<ModuleWorker> start_worker(const WorkerContext& ctx) {
    return std::make_unique<MetricsWorker>(ctx);
}

} // namespace
} // namespace metrics

// The counting filter. Order 50: its log hook is called whatever else the chain does. It owns
// the metrics zone and the status object's counters.
const ModuleSpec& observe_module() {
    static const ModuleSpec spec{.key = "observe",
                                 .order = 50,
                                 .build_filter = metrics::build_observe,
                                 .default_on_server = true,
                                 .zones = metrics::declare_zone,
                                 .worker_start = metrics::start_worker,
                                 .export_status = metrics::export_status};
    return spec;
}

// The scrape endpoint: `metrics = {}` on a route.
const ModuleSpec& metrics_module() {
    static const ModuleSpec spec{
        .key = "metrics", .is_handler = true, .build_handler = metrics::build_metrics};
    return spec;
}

// The live dashboard: `dashboard = {}` on a route; and [admin], its own listener.
const ModuleSpec& dashboard_module() {
    static const ModuleSpec spec{.key = "dashboard",
                                 .is_handler = true,
                                 .build_handler = metrics::build_dashboard,
                                 .table = "admin",
                                 .load_table = metrics::load_admin};
    return spec;
}

} // namespace wraith
