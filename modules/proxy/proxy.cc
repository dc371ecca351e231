#include "modules/proxy/proxy.h"

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "modules/proxy/exchange.h"
#include "modules/proxy/h2_upstream.h"
#include "modules/proxy/proxy_worker.h"
#include "modules/proxy/upstream_tls.h"

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
    if (upstream_->http2)
        req.arena->make<H2Exchange>(*this, *worker, req, body, out)->start();
    else
        req.arena->make<ProxyExchange>(*this, *worker, req, body, out)->start();
}

std::string parse_pass_url(std::string_view url, UpstreamConfig& out) {
    // HTTP/1.1 (http, https), or HTTP/2: cleartext with prior knowledge (h2c, grpc, as
    // NGINX's grpc_pass) or over TLS (grpcs).
    struct Scheme {
        std::string_view prefix;
        bool tls, http2;
    };
    static constexpr Scheme kSchemes[] = {{"http://", false, false},
                                          {"https://", true, false},
                                          {"h2c://", false, true},
                                          {"grpc://", false, true},
                                          {"grpcs://", true, true}};
    const Scheme* scheme = nullptr;
    for (const Scheme& s : kSchemes)
        if (url.substr(0, s.prefix.size()) == s.prefix)
            scheme = &s;
    if (!scheme)
        return "expected a URL like \"http://127.0.0.1:9000\", \"https://app.internal\" or "
               "\"grpc://127.0.0.1:50051\", got \"" +
               std::string(url) + "\"";
    const bool tls = scheme->tls;
    out.http2 = scheme->http2;
    std::string_view rest = url.substr(scheme->prefix.size());
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
void read_header_rules(TableReader& t, std::string_view key, HeaderRules& out) {
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
            dest.emplace_back(std::move(name), str->get());
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

std::unique_ptr<Handler> build_proxy(TableReader& t, BuildContext& ctx) {
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
    } else if (t.diag().count() == errors_before) {
        t.error("upstream", "a proxy route needs upstream = \"NAME\" or pass = "
                            "\"http://127.0.0.1:9000\"");
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
    read_header_rules(t, "request_headers", opts.request_headers);
    read_header_rules(t, "response_headers", opts.response_headers);
    if (t.diag().count() != errors_before || !upstream)
        return nullptr;
    return std::make_unique<ProxyHandler>(std::move(upstream), std::move(opts), ctx.module_index);
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
                                 .worker_start = proxy::start_proxy_worker};
    return spec;
}

} // namespace wraith
