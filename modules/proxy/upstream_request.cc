#include "modules/proxy/upstream_request.h"

#include <sys/socket.h>

#include <algorithm>

#include "common/log.h"
#include "common/module.h"
#include "common/strings.h"
#include "modules/proxy/forwarding.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/websocket.h"

namespace wraith::proxy {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

} // namespace

bool hop_by_hop(std::string_view name) {
    return name == "connection" || name == "keep-alive" || name == "te" || name == "trailer" ||
           name == "transfer-encoding" || name == "upgrade" || starts_with(name, "proxy-");
}

bool named_by_connection(const Headers& headers, std::string_view name) {
    for (const Header& h : headers) {
        if (h.name != "connection")
            continue;
        std::string_view v = h.value;
        while (!v.empty()) {
            size_t comma = v.find(',');
            std::string_view item = v.substr(0, comma);
            while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
                item.remove_prefix(1);
            while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
                item.remove_suffix(1);
            if (iequals(item, name))
                return true;
            if (comma == std::string_view::npos)
                break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

bool trailer_allowed(std::string_view n) {
    return !hop_by_hop(n) && n != "content-length" && n != "host" && n != "content-type" &&
           n != "content-encoding" && n != "content-range" && n != "set-cookie" &&
           n != "authorization" && n != "cache-control" && n != "expect" && !n.empty() &&
           n.front() != ':';
}

std::string_view assign_request_id(const ProxyHandler& handler, Request& req) {
    const bool trusted = req.conn && cidr_match(handler.options().trusted_proxies, req.conn->peer);
    std::string_view incoming = req.headers.get("x-request-id");
    if (trusted && valid_request_id(incoming) && req.headers.count("x-request-id") == 1 &&
        req.request_id.empty())
        req.request_id = incoming; // the trusted proxy's id names the exchange in our logs too
    else
        req.headers.set("x-request-id", request_id_of(req));
    return req.headers.get("x-request-id");
}

void build_upstream_request(const ProxyHandler& handler, Request& req, size_t server, bool tunnel,
                            UpstreamRequest& out) {
    const ProxyOptions& opts = handler.options();
    const UpstreamServer& srv = handler.upstream().servers[server];
    const bool trusted = req.conn && cidr_match(opts.trusted_proxies, req.conn->peer);

    // RFC 8441 §5: the extended CONNECT of an h2/h3 WebSocket is a GET Upgrade on HTTP/1.1.
    out.method = req.extended_connect() ? std::string_view("GET") : req.method;
    std::string& t = out.target;
    std::string_view path = req.path.empty() ? req.target : req.path;
    const std::string& strip = opts.strip_prefix;
    bool stripped = false;
    if (!strip.empty() && starts_with(path, strip)) {
        path.remove_prefix(strip.size());
        stripped = true;
    }
    if (stripped && !opts.replace_prefix.empty()) {
        const std::string& rep = opts.replace_prefix;
        t.append(rep);
        if (rep.back() == '/' && !path.empty() && path.front() == '/')
            path.remove_prefix(1);
        else if (rep.back() != '/' && !path.empty() && path.front() != '/')
            t.push_back('/');
    } else if (stripped && (path.empty() || path.front() != '/')) {
        t.push_back('/');
    }
    t.append(path);
    if (!req.query.empty()) {
        t.push_back('?');
        t.append(req.query);
    }

    // A Unix socket has no host to name: "localhost", as NGINX sends.
    out.host = opts.preserve_host && !req.authority.empty() ? std::string(req.authority)
               : srv.addr.ss_family == AF_UNIX              ? std::string("localhost")
                                                            : srv.address;

    std::vector<Header>& hs = out.fields;
    hs.reserve(req.headers.size() + 8);
    hs.push_back({"host", out.host}); // a header rule may replace it (below)
    // TE is hop-by-hop, but a client that takes trailers (gRPC's "te: trailers") gets them
    // from us, so the upstream may send them.
    if (list_contains(req.headers.get("te"), "trailers"))
        hs.push_back({"te", "trailers"});
    std::string_view in_proto, in_host;
    for (const Header& h : req.headers) {
        // Expect: 100-continue was the client protocol's business (answered before the body
        // was read); the upstream gets the body without waiting.
        if (hop_by_hop(h.name) || h.name == "host" || h.name == "content-length" ||
            h.name == "expect" || named_by_connection(req.headers, h.name))
            continue;
        // RFC 8441 §5: an extended CONNECT has no key; the proxy makes the upstream's.
        if (tunnel && req.extended_connect() && h.name == "sec-websocket-key")
            continue;
        // Forwarding fields from an untrusted client are dropped and replaced by ours.
        if (h.name == "x-forwarded-for") {
            if (trusted)
                out.forwarded_for.append(out.forwarded_for.empty() ? "" : ", ").append(h.value);
            continue;
        }
        if (h.name == "forwarded") {
            if (trusted)
                out.forwarded.append(out.forwarded.empty() ? "" : ", ").append(h.value);
            continue;
        }
        if (h.name == "x-forwarded-proto") {
            if (trusted && in_proto.empty())
                in_proto = h.value;
            continue;
        }
        if (h.name == "x-forwarded-host") {
            if (trusted && in_host.empty())
                in_host = h.value;
            continue;
        }
        if (h.name == "via") {
            out.via.append(out.via.empty() ? "" : ", ").append(h.value);
            continue;
        }
        hs.push_back(h);
    }
    std::string_view proto = req.scheme.empty() ? std::string_view("http") : req.scheme;
    std::string_view peer_ip = req.conn ? req.conn->peer_ip : std::string_view{};
    // real_ip found the client behind trusted proxies ([server] real_ip): the chain starts
    // with it, so the upstream sees the same client address as every other feature (what was
    // left of it in the header is the client's own word, dropped like any untrusted field).
    if (!trusted && !req.client_ip.empty() && req.client_ip != peer_ip) {
        out.forwarded_for.assign(req.client_ip);
        out.forwarded.assign("for=").append(forwarded_node(req.client_ip));
    }
    if (!peer_ip.empty())
        out.forwarded_for.append(out.forwarded_for.empty() ? "" : ", ").append(peer_ip);
    if (!out.forwarded_for.empty())
        hs.push_back({"x-forwarded-for", out.forwarded_for});
    hs.push_back({"x-forwarded-proto", in_proto.empty() ? proto : in_proto});
    if (!in_host.empty())
        hs.push_back({"x-forwarded-host", in_host});
    else if (!req.authority.empty())
        hs.push_back({"x-forwarded-host", req.authority});
    // RFC 7239: for=...;proto=...;host=..., one element per hop.
    out.forwarded.append(out.forwarded.empty() ? "" : ", ")
        .append("for=")
        .append(peer_ip.empty() ? std::string("unknown") : forwarded_node(peer_ip))
        .append(";proto=")
        .append(proto);
    if (!req.authority.empty())
        out.forwarded.append(";host=").append(forwarded_value(req.authority));
    hs.push_back({"forwarded", out.forwarded});
    out.via.append(out.via.empty() ? "" : ", ").append("1.1 wraith");
    hs.push_back({"via", out.via});

    const HeaderRules& rules = opts.request_headers;
    if (!rules.empty()) {
        for (const std::string& name : rules.remove)
            std::erase_if(hs, [&](const Header& h) { return h.name == name; });
        for (const auto& rule : rules.set) {
            std::string_view name = rule.first; // structured bindings cannot be captured (clang 14)
            std::erase_if(hs, [&](const Header& h) { return h.name == name; });
            if (auto v = rule_value(rule.second, req))
                hs.push_back({name, *v});
        }
        for (const auto& [name, value] : rules.add)
            if (auto v = rule_value(value, req))
                hs.push_back({name, *v});
    }
    // Host travels apart (the request line's companion, or HTTP/2's :authority).
    auto host =
        std::find_if(hs.begin(), hs.end(), [](const Header& h) { return h.name == "host"; });
    if (host != hs.end()) {
        out.host = std::string(host->value);
        hs.erase(host);
    }
    std::erase_if(hs, [](const Header& h) { return h.name == "host"; });
}

std::string rewrite_location(const ProxyHandler& handler, const Request& req, size_t server,
                             std::string_view location) {
    const ProxyOptions& opts = handler.options();
    if (!opts.redirect_rewrite || opts.preserve_host || req.authority.empty())
        return {};
    const UpstreamServer& srv = handler.upstream().servers[server];
    const std::string_view host =
        srv.addr.ss_family == AF_UNIX ? std::string_view("localhost") : srv.address;
    std::string_view rest;
    bool named = false;
    for (std::string_view scheme : {"http://", "https://"}) {
        if (location.size() >= scheme.size() + host.size() &&
            iequals(location.substr(0, scheme.size()), scheme) &&
            iequals(location.substr(scheme.size(), host.size()), host)) {
            rest = location.substr(scheme.size() + host.size());
            named =
                rest.empty() || rest.front() == '/' || rest.front() == '?' || rest.front() == '#';
            if (named)
                break;
        }
    }
    if (!named)
        return {};
    // The path back through the route's prefix rewriting (what strip_prefix and
    // replace_prefix did to the request, undone).
    std::string path(rest.empty() || rest.front() != '/' ? "/" + std::string(rest) : rest);
    if (!opts.strip_prefix.empty()) {
        const std::string& rep = opts.replace_prefix;
        std::string strip = opts.strip_prefix;
        if (!rep.empty() && starts_with(path, rep)) {
            std::string tail = path.substr(rep.size());
            if (!strip.empty() && strip.back() == '/' && !tail.empty() && tail.front() == '/')
                tail.erase(0, 1);
            else if (!strip.empty() && strip.back() != '/' && !tail.empty() &&
                     tail.front() != '/' && tail.front() != '?' && tail.front() != '#')
                strip.push_back('/');
            path = strip + tail;
        } else if (rep.empty()) {
            if (strip.back() == '/')
                strip.pop_back();
            path = strip + path;
        }
    }
    std::string_view scheme = req.scheme.empty() ? std::string_view("http") : req.scheme;
    return std::string(scheme) + "://" + std::string(req.authority) + path;
}

void build_client_head(const ProxyHandler& handler, Request& req, size_t server,
                       std::string_view sticky_id, std::string_view request_id,
                       const Headers& upstream, ResponseHead& out) {
    for (const Header& h : upstream) {
        if (hop_by_hop(h.name) || h.name == "content-length" || h.name == "date" ||
            h.name == "server" || named_by_connection(upstream, h.name))
            continue;
        if (h.name == "location" || h.name == "content-location") {
            std::string moved = rewrite_location(handler, req, server, h.value);
            if (!moved.empty()) {
                out.headers.add(h.name, req.arena->copy(moved));
                continue;
            }
        }
        out.headers.add(h.name, h.value);
    }
    const HeaderRules& rules = handler.options().response_headers;
    for (const std::string& name : rules.remove)
        out.headers.remove(name);
    for (const auto& [name, value] : rules.set) {
        out.headers.remove(name);
        if (auto v = rule_value(value, req))
            out.headers.add(name, *v);
    }
    for (const auto& [name, value] : rules.add)
        if (auto v = rule_value(value, req))
            out.headers.add(name, *v);
    if (!request_id.empty())
        out.headers.set("x-request-id", request_id);
    const StickyConfig& sticky = handler.upstream().sticky;
    if (!sticky.cookie.empty()) {
        // The client goes back to this server next time (unless its cookie says so already).
        std::string_view id = sticky_id;
        if (cookie_value(req, sticky.cookie) != id) {
            std::string c = sticky.cookie + "=" + std::string(id) + "; Path=" + sticky.path;
            if (sticky.max_age.count() > 0)
                c += "; Max-Age=" + std::to_string(sticky.max_age.count() / 1000);
            if (sticky.secure || (req.conn && req.conn->tls))
                c += "; Secure";
            if (sticky.http_only)
                c += "; HttpOnly";
            if (!sticky.same_site.empty())
                c += "; SameSite=" + sticky.same_site;
            out.headers.add("set-cookie", req.arena->copy(c));
        }
    }
}

void fail_response(Request& req, ResponseWriter& out, int status, const std::string& reason) {
    if (!out.headers_sent())
        return send_error(req, out, status, reason);
    WLOG_ERROR("%s (after %llu body bytes to the client)", reason.c_str(),
               static_cast<unsigned long long>(out.body_bytes_sent()));
    out.reset();
}

} // namespace wraith::proxy
