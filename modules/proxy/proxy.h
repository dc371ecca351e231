// The `proxy` route handler: forwards a request to an upstream over HTTP/1.1 (exchange.h) or
// HTTP/2 (h2_upstream.h), plain or TLS, and streams the answer back, with backpressure both
// ways (see DESIGN.md §2). Config:
//   proxy = { upstream = "NAME" }                 a [upstream.NAME] table
//   proxy = { pass = "http://127.0.0.1:9000" }    an implicit one-server upstream
//   proxy = { pass = "https://app.internal" }     the same over TLS (verified, system CAs)
//   proxy = { pass = "grpc://127.0.0.1:50051" }   HTTP/2 with prior knowledge (grpcs: TLS)
// plus preserve_host (default false: Host names the upstream), strip_prefix and replace_prefix,
// trusted_proxies (CIDR list: whose X-Forwarded-*, Forwarded and X-Request-ID are kept), and
// request_headers / response_headers = { set = {..}, add = {..}, remove = [..] }, and
// tunnel_timeout (a WebSocket tunnel idle that long in both directions is closed; default the
// upstream's read_timeout), and buffer_request_body (read the client's body whole, in memory
// and a temporary file, before connecting; sent with Content-Length, replayable on retries).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/module.h"
#include "modules/proxy/forwarding.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

struct ProxyOptions {
    bool preserve_host = false;
    std::string strip_prefix;   // removed from the front of the path before forwarding
    std::string replace_prefix; // put in its place (only with strip_prefix)
    std::vector<Cidr> trusted_proxies;
    HeaderRules request_headers;
    HeaderRules response_headers;
    Duration tunnel_timeout{0};       // 0: the upstream's read_timeout
    bool buffer_request_body = false; // read the body whole first, send it with Content-Length
    bool redirect_rewrite = true;     // Location naming the upstream -> the client's view
};

class Mirror;

class ProxyHandler : public Handler {
public:
    // `module_index`: the proxy module's (BuildContext), to find this worker's ProxyWorker.
    ProxyHandler(std::shared_ptr<const UpstreamConfig> upstream, ProxyOptions options,
                 size_t module_index);
    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override;
    // WebSockets: HTTP/1.1 Upgrade, and extended CONNECT on HTTP/2 and HTTP/3.
    bool tunnels() const override { return true; }

    const UpstreamConfig& upstream() const { return *upstream_; }
    bool preserve_host() const { return opts_.preserve_host; }
    const std::string& strip_prefix() const { return opts_.strip_prefix; }
    const ProxyOptions& options() const { return opts_; }
    // How long a WebSocket tunnel may stay silent both ways before it is closed.
    // A shadow upstream that gets a copy of each request (shared by a split's targets).
    void set_mirror(std::shared_ptr<const Mirror> m) { mirror_ = std::move(m); }
    Duration tunnel_timeout() const {
        return opts_.tunnel_timeout.count() > 0 ? opts_.tunnel_timeout : upstream_->read_timeout;
    }

private:
    std::shared_ptr<const UpstreamConfig> upstream_; // shared with ProxyConfig, or ours
    ProxyOptions opts_;
    size_t module_index_;
    std::shared_ptr<const Mirror> mirror_; // null: no mirroring
};

// `proxy = { ... }` (also split = [...], mirror = {...}): the route's handler. forward_auth
// builds its sub-request handler with it too.
std::unique_ptr<Handler> build_proxy(TableReader& t, BuildContext& ctx);

// "http://127.0.0.1:9000" or "https://..." (tls with the defaults, port 443) -> a one-server
// upstream; "" on success, else the message.
std::string parse_pass_url(std::string_view url, UpstreamConfig& out);

} // namespace wraith::proxy
