// Metrics: the `observe` filter counts every exchange into the shared metrics zone (on by
// default at [server] scope; `observe = false` leaves a site or route out), and the `metrics`
// handler answers a scrape in Prometheus's text format, summed over every worker of every
// generation. docs/decisions.md, "Metrics", says why it is built this way; wraith.toml(5),
// METRICS, lists the series.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/config_reader.h"
#include "common/metrics_text.h"
#include "common/module.h"
#include "common/status.h"
#include "modules/metrics/metrics_zone.h"

namespace wraith {

namespace metrics {

namespace {

// Method (common/http.h, in its order) -> index into kMethodNames.
constexpr int kMethodIndex[] = {/* other */ 7, /* get */ 0,   /* head */ 1,    /* post */ 2,
                                /* put */ 3,   /* del */ 4,   /* options */ 6, /* connect */ 7,
                                /* trace */ 7, /* patch */ 5};
static_assert(std::size(kMethodIndex) == static_cast<size_t>(Method::patch) + 1);

int method_index(Method m) {
    return kMethodIndex[static_cast<size_t>(m)];
}

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

// The zone this worker adds to and reads: the master's, or (a worker without one: unit tests)
// a private one, so counting still works within the process.
class MetricsWorker final : public ModuleWorker {
public:
    explicit MetricsWorker(const WorkerContext& ctx)
        : config_(ctx.config), zones_(ctx.zones), generation_(ctx.generation),
          status_(ctx.zones ? static_cast<const WorkerStatus*>(ctx.zones->find(
                                  kStatusZoneName, sizeof(WorkerStatus) * kMaxWorkerStatus))
                            : nullptr) {
        zone_ = ctx.zones ? ctx.zones->get<Zone>(kZoneName) : nullptr;
        if (!zone_) {
            private_.reset(static_cast<Zone*>(std::aligned_alloc(alignof(Zone), sizeof(Zone))));
            std::memset(static_cast<void*>(private_.get()), 0, sizeof(Zone));
            zone_ = private_.get();
        }
        shard_ = &zone_->shards[static_cast<unsigned>(ctx.slot) % kShards];
    }

    Zone& zone() const { return *zone_; }
    Shard& shard() const { return *shard_; }
    uint32_t generation() const { return generation_; }
    const Config* config() const { return config_.get(); }
    const SharedZones* zones() const { return zones_; }
    const WorkerStatus* status_table() const { return status_; }

    // The route's slot (-1: none), looked up by name once per route and worker.
    int route_slot(const Request& req) {
        auto it = slots_.find(req.route);
        if (it != slots_.end())
            return it->second;
        int slot = claim_route(*zone_, site_label(req.site), route_label(req.route));
        slots_.emplace(req.route, slot);
        return slot;
    }

private:
    struct Free {
        void operator()(Zone* z) const { std::free(z); }
    };
    std::shared_ptr<const Config> config_;
    const SharedZones* zones_;
    uint32_t generation_;
    const WorkerStatus* status_;
    Zone* zone_ = nullptr;
    Shard* shard_ = nullptr;
    std::unique_ptr<Zone, Free> private_;
    std::unordered_map<const Route*, int> slots_; // this generation's routes: stable pointers
};

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
    }

private:
    size_t module_index_;
};

// ---- the exposition

void number(std::string& out, uint64_t n) {
    out += std::to_string(n);
}

// Microseconds as seconds, without trailing zeros ("0.005", "10").
void seconds(std::string& out, uint64_t us) {
    char buf[32];
    int n = std::snprintf(buf, sizeof(buf), "%llu.%06llu",
                          static_cast<unsigned long long>(us / 1000000),
                          static_cast<unsigned long long>(us % 1000000));
    while (n > 0 && buf[n - 1] == '0')
        --n;
    if (n > 0 && buf[n - 1] == '.')
        --n;
    out.append(buf, static_cast<size_t>(n));
}

template <class F> uint64_t total(const Zone& z, F counter) {
    uint64_t n = 0;
    for (const Shard& s : z.shards)
        n += counter(s).load(std::memory_order_relaxed);
    return n;
}

// Prometheus text format 0.0.4, or OpenMetrics 1.0.0 (`om`).
void render(const MetricsWorker& w, bool om, std::string& out) {
    const Zone& z = w.zone();
    out.reserve(8192);
    metric_header(out, om, "wraith_requests_total", "counter",
           "Requests answered, by protocol, method and status class.");
    for (int p = 0; p < kProtocols; ++p)
        for (int m = 0; m < kMethods; ++m)
            for (int c = 0; c < kCodes; ++c) {
                uint64_t n = total(z, [&](const Shard& s) -> const Counter& {
                    return s.requests[p][m][c];
                });
                if (!n)
                    continue;
                out.append("wraith_requests_total{protocol=\"").append(kProtocolNames[p]);
                out.append("\",method=\"").append(kMethodNames[m]);
                out.append("\",code=\"").append(kCodeNames[c]).append("\"} ");
                number(out, n);
                out += '\n';
            }

    metric_header(out, om, "wraith_request_duration_seconds", "histogram",
           "Time from a complete request head to the end of the response, by protocol.");
    for (int p = 0; p < kProtocols; ++p) {
        uint64_t buckets[kBuckets + 1], count = 0;
        for (int b = 0; b <= kBuckets; ++b) {
            buckets[b] = total(z, [&](const Shard& s) -> const Counter& {
                return s.duration_buckets[p][b];
            });
            count += buckets[b];
        }
        if (!count)
            continue;
        uint64_t cumulative = 0;
        for (int b = 0; b <= kBuckets; ++b) {
            cumulative += buckets[b];
            out.append("wraith_request_duration_seconds_bucket{protocol=\"")
                .append(kProtocolNames[p])
                .append("\",le=\"");
            if (b < kBuckets)
                seconds(out, kBucketsUs[b]);
            else
                out += "+Inf";
            out += "\"} ";
            number(out, cumulative);
            out += '\n';
        }
        out.append("wraith_request_duration_seconds_sum{protocol=\"")
            .append(kProtocolNames[p])
            .append("\"} ");
        seconds(out, total(z, [&](const Shard& s) -> const Counter& { return s.duration_us[p]; }));
        out.append("\nwraith_request_duration_seconds_count{protocol=\"")
            .append(kProtocolNames[p])
            .append("\"} ");
        number(out, count);
        out += '\n';
    }

    struct Bytes {
        std::string_view name, help;
    };
    const Bytes bytes[] = {
        {"wraith_request_body_bytes_total", "Request body bytes received, by protocol."},
        {"wraith_response_body_bytes_total", "Response body bytes sent, by protocol."}};
    for (int i = 0; i < 2; ++i) {
        metric_header(out, om, bytes[i].name, "counter", bytes[i].help);
        for (int p = 0; p < kProtocols; ++p) {
            uint64_t n = total(z, [&](const Shard& s) -> const Counter& {
                return i == 0 ? s.request_bytes[p] : s.response_bytes[p];
            });
            out.append(bytes[i].name).append("{protocol=\"").append(kProtocolNames[p]).append(
                "\"} ");
            number(out, n);
            out += '\n';
        }
    }

    metric_header(out, om, "wraith_route_requests_total", "counter",
           "Requests answered, by site (its first host name), route (its path) and status "
           "class.");
    std::string routes_bytes;
    for (int r = 0; r < kRoutes; ++r) {
        const RouteName& name = z.routes[r];
        if (name.key.load(std::memory_order_acquire) <= RouteName::kClaiming)
            continue;
        std::string labels = "site=\"";
        metric_label_value(labels, std::string_view(name.site));
        labels += "\",route=\"";
        metric_label_value(labels, std::string_view(name.route));
        labels += '"';
        for (int c = 0; c < kCodes; ++c) {
            uint64_t n = total(z, [&](const Shard& s) -> const Counter& {
                return s.route_requests[r][c];
            });
            if (!n)
                continue;
            out.append("wraith_route_requests_total{").append(labels).append(",code=\"");
            out.append(kCodeNames[c]).append("\"} ");
            number(out, n);
            out += '\n';
        }
        routes_bytes.append("wraith_route_response_body_bytes_total{").append(labels).append(
            "} ");
        number(routes_bytes, total(z, [&](const Shard& s) -> const Counter& {
                   return s.route_response_bytes[r];
               }));
        routes_bytes += '\n';
    }
    metric_header(out, om, "wraith_route_response_body_bytes_total", "counter",
           "Response body bytes sent, by site and route.");
    out += routes_bytes;

    // From the master's status table: what `wraith status` shows.
    if (const WorkerStatus* table = w.status_table()) {
        uint64_t connections = 0, by_state[4] = {};
        for (int i = 0; i < kMaxWorkerStatus; ++i) {
            const WorkerStatus& st = table[i];
            WorkerState state = st.state.load(std::memory_order_relaxed);
            if (st.pid.load(std::memory_order_relaxed) == 0 || state == WorkerState::free)
                continue;
            by_state[static_cast<int>(state)]++;
            connections += st.connections.load(std::memory_order_relaxed);
        }
        metric_header(out, om, "wraith_connections", "gauge", "Client connections open now.");
        out += "wraith_connections ";
        number(out, connections);
        out += '\n';
        metric_header(out, om, "wraith_workers", "gauge", "Worker processes, by state.");
        const char* names[] = {"free", "starting", "serving", "draining"};
        for (int s = 1; s < 4; ++s) {
            out.append("wraith_workers{state=\"").append(names[s]).append("\"} ");
            number(out, by_state[s]);
            out += '\n';
        }
    }
    metric_header(out, om, "wraith_config_generation", "gauge",
           "The config generation of the worker that answered (1 at start, +1 per reload).");
    out += "wraith_config_generation ";
    number(out, w.generation());
    out += '\n';
    // Series of other modules (upstream health ...), from their own shared state.
    if (w.config() && w.zones()) {
        MetricsExport ctx{*w.config(), *w.zones(), om};
        for (const ModuleSpec& m : ModuleRegistry::instance().all())
            if (m.export_metrics)
                m.export_metrics(ctx, out);
    }
    if (om)
        out += "# EOF\n";
}

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
        // OpenMetrics when the client lists it (Prometheus does, first), else the classic text.
        const bool om = req.headers.get("accept").find("application/openmetrics-text") !=
                        std::string_view::npos;
        std::string text;
        render(*w, om, text);
        auto* head = req.arena->make<ResponseHead>();
        head->headers.add("content-type",
                          om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
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

} // namespace

} // namespace metrics

namespace metrics {
namespace {

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

// The counting filter. Order 50: its log hook is called whatever else the chain does.
const ModuleSpec& observe_module() {
    static const ModuleSpec spec{.key = "observe",
                                 .order = 50,
                                 .build_filter = metrics::build_observe,
                                 .default_on_server = true,
                                 .zones = metrics::declare_zone,
                                 .worker_start = metrics::start_worker};
    return spec;
}

// The scrape endpoint: `metrics = {}` on a route.
const ModuleSpec& metrics_module() {
    static const ModuleSpec spec{
        .key = "metrics", .is_handler = true, .build_handler = metrics::build_metrics};
    return spec;
}

} // namespace wraith
