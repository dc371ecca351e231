// What every upstream protocol sends and gets back, independent of how it is framed: the
// request as the upstream sees it (method, rewritten target, Host, the forwarded fields of
// the route's rules) and the response head the client gets (the upstream's fields without
// hop-by-hop and framing ones, the route's response rules, X-Request-ID, the sticky cookie).
// HTTP/1.1 upstreams (exchange.cc) serialise the former as a request head; HTTP/2 upstreams
// (h2_upstream.cc) map it to pseudo-header fields.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace wraith::proxy {

class ProxyHandler;

struct UpstreamRequest {
    std::string_view method;
    std::string target;         // rewritten path, then '?' and the query
    std::string host;           // Host (HTTP/1.1) or :authority (HTTP/2)
    std::vector<Header> fields; // lower-case names; no Host, framing or hop-by-hop field
    // Storage for values made here (the views in `fields` point into them or the request).
    std::string forwarded_for, forwarded, via;
};

// RFC 9110 §7.6.1: connection-specific fields, never forwarded as they are.
bool hop_by_hop(std::string_view name);
// True when `name` is listed in any Connection field of `headers` (also hop-by-hop).
bool named_by_connection(const Headers& headers, std::string_view name);
// Fields that must not be trailers (RFC 9110 §6.5.1): framing, routing, content metadata.
bool trailer_allowed(std::string_view name);

// X-Request-ID: a trusted client's well-formed one is kept, else one is made; stored on the
// request (arena), so the upstream, the response and the access log all see it.
std::string_view assign_request_id(const ProxyHandler& handler, Request& req);

// The request for server `server` of the handler's upstream. `tunnel`: a WebSocket handshake
// (the client's Sec-WebSocket-Key of an extended CONNECT is left out: the proxy makes one).
void build_upstream_request(const ProxyHandler& handler, Request& req, size_t server, bool tunnel,
                            UpstreamRequest& out);

// NGINX's `proxy_redirect default`: a Location naming the upstream as the proxy addressed it
// (http(s)://SERVER/...) becomes the client's scheme and authority, its path mapped back
// through strip_prefix/replace_prefix. "" when it names anything else (left as it is).
std::string rewrite_location(const ProxyHandler& handler, const Request& req, size_t server,
                             std::string_view location);

// The client's response head from the upstream's fields (`upstream`, lower-case names).
// `sticky_id`: the sticky cookie value of `server` (UpstreamPool::sticky_id), when the upstream
// has sticky sessions.
void build_client_head(const ProxyHandler& handler, Request& req, size_t server,
                       std::string_view sticky_id, std::string_view request_id,
                       const Headers& upstream, ResponseHead& out);

// An exchange that failed: the client gets `status` with `reason` logged while its response
// has not started; after that, all that is left is to cut the response short (logged).
void fail_response(Request& req, ResponseWriter& out, int status, const std::string& reason);

} // namespace wraith::proxy
