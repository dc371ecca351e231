// The `proxy` route handler: forwards a request to an upstream over HTTP/1.1 and streams the
// answer back, with backpressure both ways (see DESIGN.md §2). Config:
//   proxy = { upstream = "NAME" }                 a [upstream.NAME] table
//   proxy = { pass = "http://127.0.0.1:9000" }    an implicit one-server upstream
// plus preserve_host (default false: Host names the upstream) and strip_prefix.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "modules/module.h"

namespace wraith::proxy {

class ProxyHandler : public Handler {
public:
    ProxyHandler(std::shared_ptr<const UpstreamConfig> upstream, bool preserve_host,
                 std::string strip_prefix);
    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override;

    const UpstreamConfig& upstream() const { return *upstream_; }
    bool preserve_host() const { return preserve_host_; }
    const std::string& strip_prefix() const { return strip_prefix_; }

private:
    std::shared_ptr<const UpstreamConfig> upstream_; // shared with Config::upstreams, or ours
    bool preserve_host_;
    std::string strip_prefix_; // removed from the front of the path before forwarding
};

// "http://127.0.0.1:9000" -> a one-server upstream; "" on success, else the message.
std::string parse_pass_url(std::string_view url, UpstreamConfig& out);

} // namespace wraith::proxy
