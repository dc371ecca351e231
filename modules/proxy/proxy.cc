#include "modules/proxy/proxy.h"

#include "common/config_reader.h"
#include "modules/proxy/exchange.h"

namespace wraith::proxy {

ProxyHandler::ProxyHandler(std::shared_ptr<const UpstreamConfig> upstream, bool preserve_host,
                           std::string strip_prefix)
    : upstream_(std::move(upstream)), preserve_host_(preserve_host),
      strip_prefix_(std::move(strip_prefix)) {}

void ProxyHandler::handle(Request& req, BodyReader& body, ResponseWriter& out) const {
    if (!req.loop || upstream_->servers.empty()) {
        if (req.has_body)
            body.discard();
        return send_error(req, out, 500, "proxy: no event loop for this request");
    }
    req.arena->make<ProxyExchange>(*this, req, body, out)->start();
}

std::string parse_pass_url(std::string_view url, UpstreamConfig& out) {
    constexpr std::string_view http = "http://";
    if (url.substr(0, 8) == "https://")
        return "https:// upstreams are not supported by this version yet";
    if (url.substr(0, http.size()) != http)
        return "expected a URL like \"http://127.0.0.1:9000\", got \"" + std::string(url) + "\"";
    std::string_view rest = url.substr(http.size());
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
        address += ":80";
    UpstreamServer server;
    if (std::string err = parse_upstream_address(address, server); !err.empty())
        return err;
    out.servers.push_back(std::move(server));
    return {};
}

std::unique_ptr<Handler> build_proxy(TableReader& t, BuildContext& ctx) {
    const size_t errors_before = t.diag().count();
    std::shared_ptr<const UpstreamConfig> upstream;
    std::optional<std::string> name = t.string("upstream");
    std::optional<std::string> pass = t.string("pass");
    if (name && pass) {
        t.error("pass", "give either upstream or pass, not both");
    } else if (name) {
        auto it = ctx.config.upstreams.find(*name);
        if (it == ctx.config.upstreams.end())
            t.error("upstream", "unknown upstream \"" + *name + "\" (define it with [upstream." +
                                    *name + "] servers = [...])");
        else
            upstream = it->second;
    } else if (pass) {
        auto implicit = std::make_shared<UpstreamConfig>();
        implicit->name = *pass;
        implicit->pos = t.pos("pass");
        if (std::string err = parse_pass_url(*pass, *implicit); !err.empty())
            t.error("pass", err);
        else
            upstream = std::move(implicit);
    } else if (t.diag().count() == errors_before) {
        t.error("upstream", "a proxy route needs upstream = \"NAME\" or pass = "
                            "\"http://127.0.0.1:9000\"");
    }
    bool preserve_host = t.boolean("preserve_host", false);
    std::string strip_prefix = t.string("strip_prefix", "");
    if (!strip_prefix.empty() && strip_prefix.front() != '/')
        t.error("strip_prefix", "expected a path prefix starting with \"/\", e.g. \"/api\"");
    if (t.diag().count() != errors_before || !upstream)
        return nullptr;
    return std::make_unique<ProxyHandler>(std::move(upstream), preserve_host,
                                          std::move(strip_prefix));
}

WRAITH_REGISTER_MODULE(proxy, .key = "proxy", .is_handler = true,
                       .summary = "forward requests to an upstream over HTTP/1.1",
                       .build_handler = build_proxy);

} // namespace wraith::proxy
