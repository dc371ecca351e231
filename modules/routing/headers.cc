// `headers = { request = { set, add, remove }, response = { set, add, remove }, preset }` at
// server, site and route scope. Rules add up down the scopes: the server's apply first, then
// the site's, then the route's (so a route's `set` wins); `headers = false` drops the inherited
// ones. Values may hold variables; a value that expands to something with CR, LF or NUL is never
// sent (the field is left out and the error log says so).
#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/log.h"
#include "common/module.h"
#include "common/variables.h"
#include "modules/routing/routing.h"

namespace wraith {
const ModuleSpec& headers_module();
}

namespace wraith::routing {

namespace {

struct Rule {
    std::string name; // lower-case
    VarString value;
};

struct RuleSet {
    std::vector<Rule> set, add;
    std::vector<std::string> remove;
    bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

// The security-headers preset: added to responses that do not carry the field already.
struct PresetField {
    std::string_view name, value;
    bool tls_only; // HSTS means something only over HTTPS (RFC 6797 §7.2)
};
constexpr PresetField kSecurityPreset[] = {
    {"strict-transport-security", "max-age=63072000; includeSubDomains", true},
    {"x-content-type-options", "nosniff", false},
    {"x-frame-options", "SAMEORIGIN", false},
    {"referrer-policy", "strict-origin-when-cross-origin", false},
    {"permissions-policy", "camera=(), microphone=(), geolocation=()", false},
    {"cross-origin-opener-policy", "same-origin", false},
};

bool framing(std::string_view n) {
    return n == "content-length" || n == "transfer-encoding" || n == "connection" ||
           n == "keep-alive" || n == "upgrade" || n == "te" || n == "trailer";
}

std::string lower(std::string_view s) {
    std::string o(s);
    for (char& c : o)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return o;
}

// The value a rule produces for this request, or nullopt when it must not be sent.
std::optional<std::string_view> value_of(const Rule& r, const Request& req) {
    std::string_view v = r.value.constant() ? std::string_view(r.value.constant_value())
                                            : r.value.expand(req, *req.arena);
    if (!is_field_value(v)) {
        ErrorLog::limited(LogLevel::warn,
                          "headers: %s left out: its value would hold CR, LF or NUL, client: %.*s",
                          r.name.c_str(), static_cast<int>(client_ip_of(req).size()),
                          client_ip_of(req).data());
        return std::nullopt;
    }
    return v;
}

void apply(const RuleSet& rules, const Request& req, Headers& h) {
    for (const std::string& name : rules.remove)
        h.remove(name);
    for (const Rule& r : rules.set)
        if (auto v = value_of(r, req))
            h.set(r.name, *v);
        else
            h.remove(r.name);
    for (const Rule& r : rules.add)
        if (auto v = value_of(r, req))
            h.add(r.name, *v);
}

class HeadersFilter;

// Applies the response rules of a filter and its parents when the head goes out.
class HeaderWriter final : public ResponseWriter {
public:
    HeaderWriter(const HeadersFilter& filter, Request& req, ResponseWriter& next)
        : filter_(filter), req_(req), next_(next) {}
    void send_informational(int status, const Headers& headers) override {
        next_.send_informational(status, headers);
    }
    void send_headers(ResponseHead& head, bool end_stream) override;
    Result send_body(std::string_view data, bool end_stream) override {
        return next_.send_body(data, end_stream);
    }
    Result send_shared_body(std::string_view data, bool end_stream) override {
        return next_.send_shared_body(data, end_stream);
    }
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override {
        return next_.send_file(fd, offset, len, end_stream);
    }
    Result send_trailers(const Headers& trailers) override { return next_.send_trailers(trailers); }
    void on_writable(Callback cb) override { next_.on_writable(std::move(cb)); }
    void on_abort(Callback cb) override { next_.on_abort(std::move(cb)); }
    void reset() override { next_.reset(); }
    bool headers_sent() const override { return next_.headers_sent(); }
    uint64_t body_bytes_sent() const override { return next_.body_bytes_sent(); }

private:
    const HeadersFilter& filter_;
    Request& req_;
    ResponseWriter& next_;
};

class HeadersFilter final : public Filter {
public:
    HeadersFilter(const HeadersFilter* parent, RuleSet request, RuleSet response, bool security)
        : parent_(parent), request_(std::move(request)), response_(std::move(response)),
          security_(security) {}

    unsigned phases() const override {
        unsigned p = 0;
        for (const HeadersFilter* f = this; f; f = f->parent_) {
            if (!f->request_.empty())
                p |= phase_bit(Phase::access);
            if (!f->response_.empty() || f->security_)
                p |= phase_bit(Phase::response);
        }
        return p;
    }

    AccessVerdict access(Request& req, ResponseWriter&, AccessResume&) const override {
        apply_request(req);
        return AccessVerdict::next;
    }

    ResponseWriter* wrap(Request& req, ResponseWriter& next) const override {
        return req.arena->make<HeaderWriter>(*this, req, next);
    }

    void apply_request(Request& req) const {
        if (parent_)
            parent_->apply_request(req);
        apply(request_, req, req.headers);
    }

    void apply_response(const Request& req, ResponseHead& head) const {
        if (parent_)
            parent_->apply_response(req, head);
        apply(response_, req, head.headers);
        if (security_)
            for (const PresetField& f : kSecurityPreset)
                if ((!f.tls_only || req.scheme == "https") && !head.headers.find(f.name))
                    head.headers.add(f.name, f.value);
    }

private:
    const HeadersFilter* parent_; // the enclosing scope's rules (applied first), or null
    RuleSet request_, response_;
    bool security_;
};

void HeaderWriter::send_headers(ResponseHead& head, bool end_stream) {
    filter_.apply_response(req_, head);
    next_.send_headers(head, end_stream);
}

void read_rules(TableReader& parent, std::string_view which, BuildContext& ctx, RuleSet& out) {
    const toml::table* t = parent.table(which);
    if (!t)
        return;
    Diagnostics& diag = parent.diag();
    const std::string where = "headers." + std::string(which);
    TableReader r(*t, diag, where);
    for (std::string_view op : {"set", "add"}) {
        const toml::table* pairs = r.table(op);
        if (!pairs)
            continue;
        for (const auto& [k, v] : *pairs) {
            std::string at = where + "." + std::string(op) + "." + std::string(k.str()) + ": ";
            const auto* str = v.as_string();
            if (!str) {
                diag.error(&v, at + "expected a string value, got " + describe_value(v));
                continue;
            }
            if (!is_token(k.str())) {
                diag.error(&v, at + "not a valid header name (letters, digits and "
                                    "!#$%&'*+-.^_`|~ only)");
                continue;
            }
            Rule rule{lower(k.str()), {}};
            if (framing(rule.name)) {
                diag.error(&v, at + rule.name +
                                   " is part of the message framing and cannot be "
                                   "set by a rule");
                continue;
            }
            if (!is_clean_field_value(str->get())) {
                diag.error(&v, at + "header values cannot contain control characters");
                continue;
            }
            std::string why;
            size_t pos = 0;
            if (!rule.value.compile(str->get(), &why, &pos)) {
                diag.error(&v, at + why + " (at character " + std::to_string(pos + 1) + ")");
                continue;
            }
            if (std::string bad = check_captures(rule.value.highest_capture(), ctx); !bad.empty()) {
                diag.error(&v, at + bad);
                continue;
            }
            (op == "set" ? out.set : out.add).push_back(std::move(rule));
        }
    }
    if (auto names = r.strings("remove")) {
        for (const std::string& n : *names) {
            if (!is_token(n))
                r.error("remove", "\"" + n + "\" is not a valid header name");
            else if (framing(lower(n)))
                r.error("remove", lower(n) + " is part of the message framing");
            else
                out.remove.push_back(lower(n));
        }
    }
}

// The enclosing scope's headers filter: the site's for a route, the server's for a site.
const HeadersFilter* parent_filter(const BuildContext& ctx) {
    const FilterScope* scope = ctx.scope == Scope::route && ctx.site ? &ctx.site->filters
                               : ctx.scope == Scope::site            ? &ctx.config.filters
                                                                     : nullptr;
    if (!scope)
        return nullptr;
    for (size_t i = 0; i < scope->chain.size(); ++i)
        if (scope->chain_modules[i]->key == headers_module().key) // the registry keeps copies
            return static_cast<const HeadersFilter*>(scope->chain[i]);
    return nullptr;
}

} // namespace

std::unique_ptr<Filter> build_headers(TableReader& r, BuildContext& ctx) {
    const size_t errors = r.diag().count();
    RuleSet request, response;
    read_rules(r, "request", ctx, request);
    read_rules(r, "response", ctx, response);
    std::string preset = r.choice("preset", "none", {"none", "security"});
    if (r.diag().count() != errors)
        return nullptr;
    return std::make_unique<HeadersFilter>(parent_filter(ctx), std::move(request),
                                           std::move(response), preset == "security");
}

} // namespace wraith::routing
