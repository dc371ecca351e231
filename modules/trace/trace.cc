#include "modules/trace/trace.h"

#include <arpa/inet.h>
#include <cstddef>
#include <cstring>

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/config_values.h"
#include "common/variables.h"

namespace wraith::trace {

namespace {

constexpr std::string_view kZeros32 = "00000000000000000000000000000000";
constexpr std::string_view kNoteName = "trace_id";

bool lower_hex(std::string_view s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    return true;
}

size_t module_index() {
    static const size_t index =
        ModuleRegistry::instance().index_of(*ModuleRegistry::instance().find("trace"));
    return index;
}

// "http[s]://HOST[:PORT][/path]" → scheme, host (an IP literal's address too), port, Host
// field and path. A host name is resolved by the worker when it exports (c-ares, as upstream
// names), so a collector that moves is followed without a reload.
std::string parse_endpoint(const std::string& url, TraceConfig& out) {
    std::string_view rest = url;
    if (rest.starts_with("https://")) {
        out.tls = true;
        rest.remove_prefix(8);
    } else if (rest.starts_with("http://")) {
        out.tls = false;
        rest.remove_prefix(7);
    } else {
        return "expected http:// or https:// (OTLP/HTTP), e.g. "
               "\"http://127.0.0.1:4318/v1/traces\"; got \"" +
               url + "\"";
    }
    size_t slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    out.path = slash == std::string_view::npos ? "/v1/traces" : std::string(rest.substr(slash));
    std::string_view port;
    if (hostport.starts_with('[')) {
        size_t close = hostport.find(']');
        if (close == std::string_view::npos)
            return "unclosed [ in \"" + url + "\"";
        out.host = std::string(hostport.substr(1, close - 1));
        port = hostport.substr(close + 1);
    } else {
        size_t colon = hostport.rfind(':');
        out.host = std::string(hostport.substr(0, colon));
        port = colon == std::string_view::npos ? std::string_view() : hostport.substr(colon);
    }
    if (out.host.empty())
        return "no host in \"" + url + "\"";
    int p = out.tls ? 443 : 80;
    if (!port.empty()) {
        if (!port.starts_with(':') || port.size() < 2)
            return "bad port in \"" + url + "\"";
        p = 0;
        for (char c : port.substr(1))
            if (c < '0' || c > '9' || (p = p * 10 + (c - '0')) > 65535)
                return "bad port in \"" + url + "\"";
        if (p == 0)
            return "bad port in \"" + url + "\"";
    }
    out.port = static_cast<uint16_t>(p);
    out.addr = {};
    out.addr_len = 0;
    if (auto* a4 = reinterpret_cast<sockaddr_in*>(&out.addr);
        inet_pton(AF_INET, out.host.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(out.port);
        out.addr_len = sizeof(sockaddr_in);
    } else if (auto* a6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
               inet_pton(AF_INET6, out.host.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(out.port);
        out.addr_len = sizeof(sockaddr_in6);
    } else {
        for (char c : out.host)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.'))
                return "\"" + out.host + "\" is neither an IP address nor a host name";
    }
    out.host_header = std::string(hostport);
    return "";
}

void load_trace(const toml::node& value, TableContext& ctx) {
    const toml::table* t = value.as_table();
    if (!t) {
        ctx.diag.error(&value, "trace: expected a table, e.g. [trace] generate = true");
        return;
    }
    auto tc = std::make_unique<TraceConfig>();
    TableReader r(*t, ctx.diag, "trace");
    tc->generate = r.boolean("generate", tc->generate);
    tc->trust_incoming = r.boolean("trust_incoming", tc->trust_incoming);
    if (std::optional<std::string> url = r.string("otlp")) {
        tc->endpoint = *url;
        if (std::string err = parse_endpoint(*url, *tc); !err.empty())
            r.error("otlp", err);
    }
    if (std::optional<std::string> ca = r.string("otlp_ca")) {
        tc->ca_pos = r.pos("otlp_ca");
        if (!tc->tls)
            r.error("otlp_ca", "needs an https:// otlp endpoint");
        else if (ca->empty())
            r.error("otlp_ca", "must not be empty (leave it out for the system CA bundle)");
        else
            tc->ca = readable_file(r, "otlp_ca", *ca, ctx.config.server.cert_dir);
    }
    tc->service_name = r.string("service_name", tc->service_name);
    tc->queue =
        static_cast<size_t>(r.integer("queue", static_cast<int64_t>(tc->queue), 1, 1 << 20));
    tc->batch = static_cast<size_t>(r.integer("batch", static_cast<int64_t>(tc->batch), 1, 8192));
    tc->interval =
        std::chrono::duration<double>(r.duration("interval", std::chrono::milliseconds(1000)))
            .count();
    tc->timeout =
        std::chrono::duration<double>(r.duration("timeout", std::chrono::milliseconds(5000)))
            .count();
    if (tc->batch > tc->queue)
        r.error("batch", "must not exceed queue (" + std::to_string(tc->queue) + ")");
    r.finish();
    ctx.config.modules["trace"] = std::move(tc);
}

// Writes `n` random lower-case hex digits.
void random_hex(char* out, size_t n) {
    char id[32];
    while (n) {
        generate_request_id(id);
        size_t take = std::min<size_t>(n, sizeof(id));
        std::memcpy(out, id, take);
        out += take;
        n -= take;
    }
}

class TraceFilter final : public Filter {
public:
    explicit TraceFilter(const TraceConfig& config) : config_(config) {}
    unsigned phases() const override {
        return phase_bit(Phase::request_head) | phase_bit(Phase::log);
    }

    AccessVerdict request_head(Request& req, ResponseWriter&) const override {
        auto* span = req.arena->make<Span>();
        bool continued = false;
        if (config_.trust_incoming)
            continued = parse_traceparent(req.headers.get("traceparent"), *span);
        if (!continued) {
            // A trace starts here (or not at all); an unusable tracestate goes with the
            // traceparent it belonged to (W3C Trace Context §3.3.1.3).
            req.headers.remove("tracestate");
            req.headers.remove("traceparent");
            if (!config_.generate)
                return AccessVerdict::next;
            random_hex(span->trace_id, sizeof(span->trace_id));
            std::memset(span->parent_id, '0', sizeof(span->parent_id));
            span->has_parent = false;
            span->sampled = true;
        }
        random_hex(span->span_id, sizeof(span->span_id));
        // 00-TRACE-SPAN-FLAGS: what handlers and upstreams see as the parent.
        char* tp = static_cast<char*>(req.arena->alloc(55, 1));
        std::memcpy(tp, "00-", 3);
        std::memcpy(tp + 3, span->trace_id, 32);
        tp[35] = '-';
        std::memcpy(tp + 36, span->span_id, 16);
        std::memcpy(tp + 52, span->sampled ? "-01" : "-00", 3);
        span->traceparent = {tp, 55};
        req.headers.set("traceparent", span->traceparent);
        // The note logs the trace ID and is how span_of() finds the Span again: its value
        // points at Span::trace_id, the Span's first member.
        add_log_note(req, kNoteName, {span->trace_id, sizeof(span->trace_id)});
        return AccessVerdict::next;
    }

    void log(const Request& req, const ExchangeSummary& s) const override {
        const Span* span = span_of(req);
        if (span && span->sampled && !config_.endpoint.empty())
            enqueue(req, s, *span, module_index());
    }

private:
    const TraceConfig& config_;
};

std::unique_ptr<Filter> build_trace(TableReader&, BuildContext& ctx) {
    const TraceConfig* tc = trace_config(ctx.config);
    if (!tc)
        return nullptr; // no [trace]: nothing to do (the implicit server-scope build)
    return std::make_unique<TraceFilter>(*tc);
}

void register_variables() {
    Variables& v = Variables::instance();
    v.add("trace_id", [](const Request& r, std::string_view, Arena&) -> std::string_view {
        const Span* s = span_of(r);
        return s ? std::string_view(s->trace_id, sizeof(s->trace_id)) : std::string_view{};
    });
    v.add("span_id", [](const Request& r, std::string_view, Arena&) -> std::string_view {
        const Span* s = span_of(r);
        return s ? std::string_view(s->span_id, sizeof(s->span_id)) : std::string_view{};
    });
    v.add("traceparent", [](const Request& r, std::string_view, Arena&) -> std::string_view {
        const Span* s = span_of(r);
        return s ? s->traceparent : std::string_view{};
    });
}

} // namespace

const TraceConfig* trace_config(const Config& config) {
    return config.module_config<TraceConfig>("trace");
}

const Span* span_of(const Request& req) {
    // The trace filter's note: its name is a constant of this file (compared by address, so
    // no other note can pass for it), its value points at Span::trace_id, the first member.
    static_assert(offsetof(Span, trace_id) == 0);
    for (const LogNote* n = req.log_notes; n; n = n->next)
        if (n->name.data() == kNoteName.data())
            return reinterpret_cast<const Span*>(n->value.data());
    return nullptr;
}

bool parse_traceparent(std::string_view v, Span& out) {
    // version "-" trace-id "-" parent-id "-" flags; a later version may append "-" fields.
    if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    std::string_view version = v.substr(0, 2), id = v.substr(3, 32), parent = v.substr(36, 16),
                     flags = v.substr(53, 2);
    if (!lower_hex(version) || version == "ff" || !lower_hex(id) || !lower_hex(parent) ||
        !lower_hex(flags))
        return false;
    if (version == "00" ? v.size() != 55 : v.size() > 55 && v[55] != '-')
        return false;
    if (id == kZeros32 || parent == kZeros32.substr(0, 16))
        return false;
    std::memcpy(out.trace_id, id.data(), 32);
    std::memcpy(out.parent_id, parent.data(), 16);
    out.has_parent = true;
    const int f = (flags[1] >= 'a' ? flags[1] - 'a' + 10 : flags[1] - '0');
    out.sampled = f & 1;
    return true;
}

} // namespace wraith::trace

namespace wraith {

// W3C Trace Context and OTLP export: [trace], on for every request when the table is there
// (`trace = false` turns a site or route's spans off). Order 5: its request-head hook runs
// first, so the trace covers what every other filter does.
const ModuleSpec& trace_module() {
    static const ModuleSpec spec = [] {
        trace::register_variables();
        return ModuleSpec{.key = "trace",
                          .order = 5,
                          .build_filter = trace::build_trace,
                          .default_on_server = true,
                          .table = "trace",
                          .load_table = trace::load_trace,
                          .zones = trace::declare_zones,
                          .worker_start = trace::start_worker,
                          .export_metrics = trace::export_metrics};
    }();
    return spec;
}

} // namespace wraith
