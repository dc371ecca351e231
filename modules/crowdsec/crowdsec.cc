// The crowdsec module: the `[crowdsec]` table, the `crowdsec` filter (access phase; with
// ban_at_accept also the accept phase of [server]), the decisions zone, the pulling worker and
// the metrics. See crowdsec.h.
#include "modules/crowdsec/crowdsec.h"

#include <toml++/toml.h>

#include "common/metrics_text.h"
#include "modules/crowdsec/crowdsec_worker.h"

namespace wraith::crowdsec {

namespace {

class CrowdsecFilter final : public Filter {
public:
    CrowdsecFilter(const CrowdsecConfig& cc, size_t module_index, bool at_accept)
        : cc_(cc), module_index_(module_index), at_accept_(at_accept) {}

    unsigned phases() const override {
        return phase_bit(Phase::access) | (at_accept_ ? phase_bit(Phase::accept) : 0u);
    }

    bool accept(AcceptContext& ctx) const override {
        CrowdsecWorker* w = ctx.modules ? ctx.modules->get<CrowdsecWorker>(module_index_) : nullptr;
        if (!w || !w->refuses(ip_of(ctx.conn.peer), true))
            return true;
        ctx.refusal_status = 0; // closed without a word: a banned client learns nothing
        return false;
    }

    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume&) const override {
        CrowdsecWorker* w = req.modules ? req.modules->get<CrowdsecWorker>(module_index_) : nullptr;
        if (!w || !w->refuses(ip_of(client_ip_of(req)), false))
            return AccessVerdict::next;
        auto* head = req.arena->make<ResponseHead>();
        head->status = 403;
        head->headers.add("content-type", "text/html; charset=utf-8");
        head->headers.add("cache-control", "no-store");
        head->content_length = static_cast<int64_t>(cc_.ban_page.size());
        if (cc_.ban_page.empty() || req.method_id == Method::head) {
            out.send_headers(*head, true);
        } else {
            out.send_headers(*head, false);
            out.send_body(cc_.ban_page, true);
        }
        return AccessVerdict::answered;
    }

private:
    const CrowdsecConfig& cc_;
    size_t module_index_;
    bool at_accept_;
};

} // namespace

std::unique_ptr<Filter> build_crowdsec(TableReader& r, BuildContext& ctx) {
    const CrowdsecConfig* cc = crowdsec_config(ctx.config);
    if (!cc) {
        // Written (`crowdsec = true`, a table), not the implicit server-scope build, whose
        // value is an empty table with no place in the file.
        if (ctx.value && ctx.value->source().begin.line != 0)
            r.diag().error(ctx.value, "crowdsec: needs a [crowdsec] table (url, api_key_file) "
                                      "naming the Local API");
        return nullptr;
    }
    return std::make_unique<CrowdsecFilter>(*cc, ctx.module_index,
                                            cc->ban_at_accept && ctx.scope == Scope::server);
}

std::unique_ptr<ModuleWorker> start_worker(const WorkerContext& ctx) {
    const CrowdsecConfig* cc = crowdsec_config(*ctx.config);
    if (!cc)
        return nullptr;
    return std::make_unique<CrowdsecWorker>(ctx, *cc);
}

namespace {

struct Totals {
    uint64_t lookups = 0, blocked = 0, refused_accept = 0;
};

// The decisions zone's header when the generation has [crowdsec] and its zone, else null.
const ZoneHeader* zone_of(const MetricsExport& ctx, DecisionTable& t) {
    if (!crowdsec_config(ctx.config))
        return nullptr;
    for (const SharedZone& z : ctx.zones.all())
        if (z.name == kZoneName)
            t = DecisionTable(z.mem, z.size);
    return t.valid() ? &t.header() : nullptr;
}

Totals totals(const ZoneHeader& h) {
    Totals t;
    for (const CounterShard& s : h.shards) {
        t.lookups += s.lookups.load(std::memory_order_relaxed);
        t.blocked += s.blocked.load(std::memory_order_relaxed);
        t.refused_accept += s.refused_accept.load(std::memory_order_relaxed);
    }
    return t;
}

const char* state_name(uint32_t s) {
    switch (static_cast<LapiState>(s)) {
    case LapiState::up:
        return "up";
    case LapiState::down:
        return "down";
    case LapiState::refused:
        return "refused";
    case LapiState::unknown:
        break;
    }
    return "unknown";
}

} // namespace

void export_metrics(const MetricsExport& ctx, std::string& out) {
    DecisionTable table;
    const ZoneHeader* h = zone_of(ctx, table);
    if (!h)
        return;
    const bool om = ctx.openmetrics;
    auto line = [&](std::string_view name, std::string_view labels, uint64_t v) {
        out.append(name);
        if (!labels.empty())
            out.append("{").append(labels).append("}");
        out.append(" ").append(std::to_string(v)).append("\n");
    };
    metric_header(out, om, "wraith_crowdsec_decisions", "gauge",
                  "CrowdSec decisions in force (scopes Ip and Range), by remediation type and "
                  "origin.");
    for (size_t r = 1; r < kRemedies; ++r)
        for (size_t o = 0; o < kOrigins; ++o)
            if (uint32_t n = h->held[r][o].load(std::memory_order_relaxed))
                line("wraith_crowdsec_decisions",
                     std::string("type=\"") + remedy_name(static_cast<Remedy>(r)) + "\",origin=\"" +
                         origin_name(static_cast<Origin>(o)) + "\"",
                     n);
    const Totals t = totals(*h);
    metric_header(out, om, "wraith_crowdsec_lookups_total", "counter",
                  "Client addresses looked up in the decisions (requests and, with "
                  "ban_at_accept, connections).");
    line("wraith_crowdsec_lookups_total", {}, t.lookups);
    metric_header(out, om, "wraith_crowdsec_blocked_total", "counter",
                  "Clients refused: requests answered 403 (phase=\"request\"), connections closed "
                  "at accept (phase=\"accept\").");
    line("wraith_crowdsec_blocked_total", "phase=\"request\"", t.blocked);
    line("wraith_crowdsec_blocked_total", "phase=\"accept\"", t.refused_accept);
    metric_header(out, om, "wraith_crowdsec_pulls_total", "counter",
                  "Pulls of the Local API's decision stream, by result.");
    line("wraith_crowdsec_pulls_total", "result=\"ok\"",
         h->pulls_ok.load(std::memory_order_relaxed));
    line("wraith_crowdsec_pulls_total", "result=\"failed\"",
         h->pulls_failed.load(std::memory_order_relaxed));
    metric_header(out, om, "wraith_crowdsec_lapi_up", "gauge",
                  "1 when the last pull of the Local API succeeded.");
    line("wraith_crowdsec_lapi_up", {},
         h->lapi_state.load(std::memory_order_relaxed) == static_cast<uint32_t>(LapiState::up));
}

void export_status(const MetricsExport& ctx, std::string& out) {
    DecisionTable table;
    const ZoneHeader* h = zone_of(ctx, table);
    if (!h)
        return;
    const Totals t = totals(*h);
    uint64_t held = 0;
    for (const auto& row : h->held)
        for (const auto& n : row)
            held += n.load(std::memory_order_relaxed);
    out += ",\"crowdsec\":{\"decisions\":" + std::to_string(held) +
           ",\"lookups\":" + std::to_string(t.lookups) +
           ",\"blocked\":" + std::to_string(t.blocked) +
           ",\"refused_at_accept\":" + std::to_string(t.refused_accept) +
           ",\"pulls_ok\":" + std::to_string(h->pulls_ok.load(std::memory_order_relaxed)) +
           ",\"pulls_failed\":" + std::to_string(h->pulls_failed.load(std::memory_order_relaxed)) +
           ",\"lapi\":\"" + state_name(h->lapi_state.load(std::memory_order_relaxed)) + "\"}";
}

} // namespace wraith::crowdsec

namespace wraith {

// Order 15: before allow/deny (20), auth (30, 40) and the limit module (300), so a banned
// client costs no password check, sub-request or rate-limit state (at accept: no connection
// count); after real_ip (5, request-head anyway), which decides who the client is.
const ModuleSpec& crowdsec_module() {
    static const ModuleSpec spec{.key = "crowdsec",
                                 .order = 15,
                                 .build_filter = crowdsec::build_crowdsec,
                                 .default_on_server = true,
                                 .table = "crowdsec",
                                 .load_table = crowdsec::load_crowdsec,
                                 .zones = crowdsec::declare_zones,
                                 .worker_start = crowdsec::start_worker,
                                 .export_metrics = crowdsec::export_metrics,
                                 .export_status = crowdsec::export_status};
    return spec;
}

} // namespace wraith
