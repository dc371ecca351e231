#include "modules/proxy/proxy.h"

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/variables.h"
#include "modules/proxy/mirror.h"
#include "modules/proxy/upstream_request.h"

#include "modules/proxy/exchange.h"
#include "modules/proxy/h2_upstream.h"
#include "modules/proxy/h3_upstream.h"
#include "modules/proxy/proxy_worker.h"
#include "modules/proxy/upstream_tls.h"
#include <random>

namespace wraith::proxy {

ProxyHandler::ProxyHandler(std::shared_ptr<const UpstreamConfig> upstream, ProxyOptions options,
                           size_t module_index)
    : upstream_(std::move(upstream)), opts_(std::move(options)), module_index_(module_index) {}

void ProxyHandler::handle(Request& req, BodyReader& body, ResponseWriter& out) const {
    ProxyWorker* worker = req.modules ? req.modules->get<ProxyWorker>(module_index_) : nullptr;
    if (!req.loop || !worker || upstream_->servers.empty()) {
        if (req.has_body)
            body.discard();
        return send_error(req, out, 500, "proxy: not running in a worker");
    }
    if (mirror_)
        mirror_->send(req, *worker); // detached: nothing it does reaches this exchange
    if (upstream_->http3)
        req.arena->make<H3Exchange>(*this, *worker, req, body, out)->start();
    else if (upstream_->http2)
        req.arena->make<H2Exchange>(*this, *worker, req, body, out)->start();
    else
        req.arena->make<ProxyExchange>(*this, *worker, req, body, out)->start();
}

std::string parse_pass_url(std::string_view url, UpstreamConfig& out) {
    // HTTP/1.1 (http, https), or HTTP/2: cleartext with prior knowledge (h2c, grpc, as
    // NGINX's grpc_pass) or over TLS (grpcs).
    struct Scheme {
        std::string_view prefix;
        bool tls, http2, http3;
    };
    static constexpr Scheme kSchemes[] = {{"http://", false, false, false},
                                          {"https://", true, false, false},
                                          {"h2c://", false, true, false},
                                          {"grpc://", false, true, false},
                                          {"grpcs://", true, true, false},
                                          {"h3://", true, false, true}};
    const Scheme* scheme = nullptr;
    for (const Scheme& s : kSchemes)
        if (url.substr(0, s.prefix.size()) == s.prefix)
            scheme = &s;
    if (!scheme)
        return "expected a URL like \"http://127.0.0.1:9000\", \"https://app.internal\" or "
               "\"grpc://127.0.0.1:50051\" (or h2c://, grpcs://, h3://), got \"" +
               std::string(url) + "\"";
    const bool tls = scheme->tls;
    out.http2 = scheme->http2;
    out.http3 = scheme->http3;
    std::string_view rest = url.substr(scheme->prefix.size());
    if (out.http3 && rest.substr(0, 5) == "unix:")
        return "HTTP/3 needs UDP: h3:// takes a host and port, not a Unix socket";
    if (!tls && rest.substr(0, 5) == "unix:") {
        // "http://unix:/run/app.sock", or NGINX's "http://unix:/run/app.sock:/".
        if (rest.size() > 2 && rest.substr(rest.size() - 2) == ":/")
            rest.remove_suffix(2);
        UpstreamServer server;
        if (std::string err = parse_upstream_address(rest, server); !err.empty())
            return err;
        out.servers.push_back(std::move(server));
        return {};
    }
    size_t slash = rest.find('/');
    if (slash != std::string_view::npos) {
        if (rest.substr(slash) != "/")
            return "a path in pass is not supported by this version yet (use strip_prefix)";
        rest = rest.substr(0, slash);
    }
    std::string address(rest);
    bool has_port =
        !rest.empty() && (rest.front() == '[' ? rest.find("]:") != std::string_view::npos
                                              : rest.find(':') != std::string_view::npos);
    if (!has_port)
        address += tls ? ":443" : ":80";
    UpstreamServer server;
    if (std::string err = parse_upstream_address(address, server); !err.empty())
        return err;
    out.servers.push_back(std::move(server));
    if (tls)
        out.tls = std::make_shared<UpstreamTls>(); // the defaults: verified, system CAs
    return {};
}

namespace {

std::string lower(std::string_view s) {
    std::string o(s);
    for (char& c : o)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c + 32);
    return o;
}

bool framing_header(std::string_view name) {
    return name == "content-length" || name == "transfer-encoding" || name == "connection";
}

// `key = { set = { "x-a" = "1" }, add = { ... }, remove = ["x-b"] }`
void read_header_rules(TableReader& t, std::string_view key, HeaderRules& out, BuildContext& ctx) {
    const toml::table* tbl = t.table(key);
    if (!tbl)
        return;
    Diagnostics& diag = t.diag();
    TableReader r(*tbl, diag, "proxy." + std::string(key));
    for (std::string_view which : {"set", "add"}) {
        const toml::table* pairs = r.table(which);
        if (!pairs)
            continue;
        auto& dest = which == "set" ? out.set : out.add;
        for (auto&& [k, v] : *pairs) {
            std::string where = "proxy." + std::string(key) + "." + std::string(which) + "." +
                                std::string(k.str()) + ": ";
            const auto* str = v.as_string();
            if (!str) {
                diag.error(&v, where + "expected a string value, got " + describe_value(v));
                continue;
            }
            if (!is_token(k.str())) {
                diag.error(&v, where + "not a valid header name (letters, digits and "
                                       "!#$%&'*+-.^_`|~ only)");
                continue;
            }
            std::string name = lower(k.str());
            if (framing_header(name)) {
                diag.error(&v, where + name + " is managed by the proxy and cannot be set");
                continue;
            }
            if (!is_field_value(str->get())) {
                diag.error(&v, where + "header values cannot contain CR, LF or NUL");
                continue;
            }
            VarString value;
            std::string why;
            size_t at = 0;
            if (!value.compile(str->get(), &why, &at)) {
                diag.error(&v, where + why + " (at character " + std::to_string(at + 1) + ")");
                continue;
            }
            if (std::string bad = check_captures(value.highest_capture(), ctx); !bad.empty()) {
                diag.error(&v, where + bad);
                continue;
            }
            dest.push_back({std::move(name), std::move(value)});
        }
    }
    if (auto names = r.strings("remove")) {
        for (const std::string& n : *names) {
            if (!is_token(n)) {
                r.error("remove", "\"" + n + "\" is not a valid header name");
                continue;
            }
            std::string name = lower(n);
            if (framing_header(name)) {
                r.error("remove", name + " is managed by the proxy and cannot be removed");
                continue;
            }
            out.remove.push_back(std::move(name));
        }
    }
    r.finish();
}

void read_trusted_proxies(TableReader& t, std::vector<Cidr>& out) {
    const toml::array* arr = t.array("trusted_proxies");
    if (!arr)
        return;
    for (const toml::node& n : *arr) {
        const auto* str = n.as_string();
        if (!str) {
            t.diag().error(&n, "proxy.trusted_proxies: expected a string like \"10.0.0.0/8\", "
                               "got " +
                                   describe_value(n));
            continue;
        }
        Cidr c;
        if (std::string err = parse_cidr(str->get(), c); !err.empty()) {
            t.diag().error(&n, "proxy.trusted_proxies: " + err);
            continue;
        }
        out.push_back(c);
    }
}

} // namespace

namespace {

// `upstream = "NAME"` or `pass = "URL"` of `t` (a proxy table, a split target, a mirror).
std::shared_ptr<const UpstreamConfig> read_upstream(TableReader& t, BuildContext& ctx,
                                                    bool required) {
    const size_t errors_before = t.diag().count();
    std::shared_ptr<const UpstreamConfig> upstream;
    std::optional<std::string> name = t.string("upstream");
    std::optional<std::string> pass = t.string("pass");
    if (name && pass) {
        t.error("pass", "give either upstream or pass, not both");
    } else if (name) {
        upstream = find_upstream(ctx.config, *name);
        if (!upstream)
            t.error("upstream", "unknown upstream \"" + *name + "\" (define it with [upstream." +
                                    *name + "] servers = [...])");
    } else if (pass) {
        auto implicit = std::make_shared<UpstreamConfig>();
        implicit->name = *pass;
        implicit->pos = t.pos("pass");
        const size_t before = t.diag().count();
        if (std::string err = parse_pass_url(*pass, *implicit); !err.empty()) {
            t.error("pass", err);
        } else {
            if (implicit->tls) {
                implicit->tls->pos = t.pos("pass");
                prepare_upstream_tls(*implicit, t.diag());
            }
            if (t.diag().count() == before)
                upstream = std::move(implicit);
        }
    } else if (required && t.diag().count() == errors_before) {
        t.error("upstream", "a proxy route needs upstream = \"NAME\" or pass = "
                            "\"http://127.0.0.1:9000\"");
    }
    return upstream;
}

// `split = [{ upstream = "v1", weight = 90 }, { upstream = "v2", weight = 10 }]`.
struct SplitTarget {
    std::shared_ptr<const UpstreamConfig> upstream;
    uint32_t weight = 1;
};

std::vector<SplitTarget> read_split(TableReader& t, BuildContext& ctx) {
    std::vector<SplitTarget> out;
    const toml::array* arr = t.array("split");
    if (!arr)
        return out;
    if (arr->size() < 2)
        t.error("split", "needs at least two targets, e.g. [{ upstream = \"v1\", weight = 90 }, "
                         "{ upstream = \"v2\", weight = 10 }]");
    for (const toml::node& e : *arr) {
        const toml::table* tt = e.as_table();
        if (!tt) {
            t.diag().error(&e, "proxy.split: expected tables { upstream = ..., weight = ... }, "
                               "got " +
                                   describe_value(e));
            continue;
        }
        TableReader r(*tt, t.diag(), "proxy.split");
        SplitTarget target;
        target.upstream = read_upstream(r, ctx, true);
        target.weight = static_cast<uint32_t>(r.integer("weight", 1, 0, 1000000));
        r.finish();
        if (target.upstream)
            out.push_back(std::move(target));
    }
    uint64_t total = 0;
    for (const SplitTarget& s : out)
        total += s.weight;
    if (!out.empty() && total == 0)
        t.error("split", "the weights add up to 0: no target would get a request");
    return out;
}

// Picks one of several proxy handlers by weight: by a hash of the split key when the request
// carries it (the same client keeps its target while the weights stay), at random otherwise.
class SplitHandler final : public Handler {
public:
    enum class Key : uint8_t { random, client_ip, cookie, header };
    SplitHandler(std::vector<std::unique_ptr<ProxyHandler>> targets, std::vector<uint32_t> weights,
                 Key key, std::string key_name)
        : targets_(std::move(targets)), weights_(std::move(weights)), key_(key),
          key_name_(std::move(key_name)) {
        for (uint32_t w : weights_)
            total_ += w;
    }
    bool tunnels() const override { return true; }
    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override {
        targets_[pick(req)]->handle(req, body, out);
    }
    size_t pick(const Request& req) const {
        std::string_view value;
        switch (key_) {
        case Key::cookie:
            value = cookie_value(req, key_name_);
            break;
        case Key::header:
            value = req.headers.get(key_name_);
            break;
        case Key::client_ip:
        case Key::random:
            break;
        }
        if (value.empty() && key_ != Key::random)
            value = client_ip_of(req); // no key on this request: the client keeps its target
        uint64_t point;
        if (value.empty()) {
            thread_local std::minstd_rand rng{std::random_device{}()};
            point = rng() % total_;
        } else {
            uint64_t h = 1469598103934665603ULL; // FNV-1a
            for (unsigned char c : value)
                h = (h ^ c) * 1099511628211ULL;
            point = (h >> 11) % total_;
        }
        for (size_t i = 0; i < weights_.size(); ++i) {
            if (point < weights_[i])
                return i;
            point -= weights_[i];
        }
        return weights_.size() - 1;
    }

private:
    std::vector<std::unique_ptr<ProxyHandler>> targets_;
    std::vector<uint32_t> weights_;
    uint64_t total_ = 0;
    Key key_;
    std::string key_name_;
};

} // namespace

std::unique_ptr<Handler> build_proxy(TableReader& t, BuildContext& ctx) {
    const size_t errors_before = t.diag().count();
    std::vector<SplitTarget> split;
    std::shared_ptr<const UpstreamConfig> upstream;
    if (t.has("split")) {
        if (t.has("upstream") || t.has("pass"))
            t.error("split", "give either split or upstream/pass, not both");
        split = read_split(t, ctx);
    } else {
        upstream = read_upstream(t, ctx, true);
    }
    SplitHandler::Key split_key = SplitHandler::Key::random;
    std::string split_key_name;
    if (std::optional<std::string> k = t.string("split_key")) {
        if (!t.has("split"))
            t.error("split_key", "applies to split = [...]");
        if (*k == "client_ip") {
            split_key = SplitHandler::Key::client_ip;
        } else if (k->rfind("cookie:", 0) == 0 && k->size() > 7) {
            split_key = SplitHandler::Key::cookie;
            split_key_name = k->substr(7);
        } else if (k->rfind("header:", 0) == 0 && k->size() > 7 && is_token(k->substr(7))) {
            split_key = SplitHandler::Key::header;
            split_key_name = lower(k->substr(7));
        } else {
            t.error("split_key", "expected \"client_ip\", \"cookie:NAME\" or \"header:NAME\", "
                                 "got \"" +
                                     *k + "\"");
        }
    }
    std::shared_ptr<const Mirror> mirror;
    std::shared_ptr<const UpstreamConfig> mirror_upstream;
    uint32_t mirror_percent = 100;
    if (const toml::table* m = t.table("mirror")) {
        TableReader mr(*m, t.diag(), "proxy.mirror");
        mirror_upstream = read_upstream(mr, ctx, true);
        mirror_percent = static_cast<uint32_t>(mr.integer("percent", 100, 1, 100));
        mr.finish();
    }
    ProxyOptions opts;
    opts.preserve_host = t.boolean("preserve_host", false);
    opts.strip_prefix = t.string("strip_prefix", "");
    if (!opts.strip_prefix.empty() && opts.strip_prefix.front() != '/')
        t.error("strip_prefix", "expected a path prefix starting with \"/\", e.g. \"/api\"");
    opts.replace_prefix = t.string("replace_prefix", "");
    if (t.has("replace_prefix")) {
        if (opts.replace_prefix.empty() || opts.replace_prefix.front() != '/')
            t.error("replace_prefix", "expected a path prefix starting with \"/\", e.g. \"/v2\"");
        else if (opts.strip_prefix.empty())
            t.error("replace_prefix", "replace_prefix needs strip_prefix (the part it replaces)");
        else if (opts.replace_prefix.find_first_of("?# \r\n") != std::string::npos)
            t.error("replace_prefix", "a path prefix cannot contain '?', '#', spaces or CR/LF");
    }
    if (std::optional<Duration> d = t.duration("tunnel_timeout")) {
        if (d->count() <= 0)
            t.error("tunnel_timeout", "must be longer than 0");
        else
            opts.tunnel_timeout = *d;
    }
    opts.buffer_request_body = t.boolean("buffer_request_body", false);
    opts.redirect_rewrite = t.boolean("redirect_rewrite", true);
    read_trusted_proxies(t, opts.trusted_proxies);
    read_header_rules(t, "request_headers", opts.request_headers, ctx);
    read_header_rules(t, "response_headers", opts.response_headers, ctx);
    if (t.diag().count() != errors_before || (!upstream && split.empty()))
        return nullptr;
    if (mirror_upstream)
        mirror = std::make_shared<const Mirror>(
            std::make_unique<ProxyHandler>(mirror_upstream, opts, ctx.module_index),
            mirror_percent);
    if (split.empty()) {
        auto h =
            std::make_unique<ProxyHandler>(std::move(upstream), std::move(opts), ctx.module_index);
        h->set_mirror(mirror);
        return h;
    }
    std::vector<std::unique_ptr<ProxyHandler>> targets;
    std::vector<uint32_t> weights;
    for (SplitTarget& s : split) {
        targets.push_back(std::make_unique<ProxyHandler>(s.upstream, opts, ctx.module_index));
        targets.back()->set_mirror(mirror);
        weights.push_back(s.weight);
    }
    return std::make_unique<SplitHandler>(std::move(targets), std::move(weights), split_key,
                                          std::move(split_key_name));
}

} // namespace wraith::proxy

namespace wraith {

// Forwards requests (and WebSockets) to an upstream over HTTP/1.1 or HTTP/2, in clear or TLS;
// owns the [upstream.NAME] tables.
const ModuleSpec& proxy_module() {
    static const ModuleSpec spec{.key = "proxy",
                                 .is_handler = true,
                                 .build_handler = proxy::build_proxy,
                                 .table = "upstream",
                                 .load_table = proxy::load_upstream_tables,
                                 .zones = proxy::declare_proxy_zones,
                                 .worker_start = proxy::start_proxy_worker,
                                 .export_metrics = proxy::export_proxy_metrics,
                                 .export_status = proxy::export_proxy_status,
                                 .worker_lost = proxy::proxy_worker_lost};
    return spec;
}

} // namespace wraith
