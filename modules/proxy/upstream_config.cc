// [upstream.NAME] tables: the proxy module's own part of the config (ModuleSpec::load_table).
#include "modules/proxy/upstream_config.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <toml++/toml.h>

#include "common/config_values.h"
#include "common/http.h"
#include "common/module.h"
#include "modules/proxy/upstream_tls.h"

namespace wraith::proxy {

std::string parse_upstream_address(std::string_view text, UpstreamServer& out) {
    if (text.substr(0, 5) == "unix:") {
        std::string_view path = text.substr(5);
        sockaddr_un un{};
        if (path.empty() || path.front() != '/')
            return "expected an absolute socket path after unix:, e.g. \"unix:/run/app.sock\", "
                   "got " +
                   in_quotes(text);
        if (path.size() >= sizeof(un.sun_path))
            return "socket path too long (at most " + std::to_string(sizeof(un.sun_path) - 1) +
                   " bytes): " + in_quotes(text);
        if (path.find('\0') != std::string_view::npos)
            return "socket path contains a NUL byte";
        un.sun_family = AF_UNIX;
        std::memcpy(un.sun_path, path.data(), path.size());
        std::memcpy(&out.addr, &un, sizeof un);
        out.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        out.address = std::string(text);
        return {};
    }
    std::string_view host = text;
    if (!host.empty() && host.front() != '[') {
        size_t colon = host.rfind(':');
        if (colon != std::string_view::npos)
            host = host.substr(0, colon);
        bool name_like = std::any_of(host.begin(), host.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        });
        if (name_like) {
            // RFC 1123 host name: labels of letters, digits and hyphens, at most 253 bytes.
            if (colon == std::string_view::npos)
                return "expected \"HOST:PORT\", e.g. \"app.internal:9000\", got " + in_quotes(text);
            std::string_view port = text.substr(colon + 1);
            unsigned long p = 0;
            bool port_ok =
                !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (port_ok)
                p = std::stoul(std::string(port));
            if (!port_ok || p == 0 || p > 65535)
                return "bad port in " + in_quotes(text);
            bool name_ok = host.size() <= 253 && host.front() != '.' && host.back() != '.' &&
                           host.front() != '-' &&
                           std::all_of(host.begin(), host.end(),
                                       [](char c) {
                                           return (c >= 'a' && c <= 'z') ||
                                                  (c >= 'A' && c <= 'Z') ||
                                                  (c >= '0' && c <= '9') || c == '-' || c == '.';
                                       }) &&
                           host.find("..") == std::string_view::npos;
            if (!name_ok)
                return "bad host name in " + in_quotes(text);
            out.address = std::string(text);
            out.host = std::string(host);
            for (char& c : out.host)
                c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            out.port = static_cast<uint16_t>(p);
            return {};
        }
    }
    // A bare port would mean [::] here, which is no address to connect to.
    if (text.find(':') == std::string_view::npos)
        return "expected \"IP:PORT\" such as \"127.0.0.1:9000\" or \"[::1]:9000\", got " +
               in_quotes(text);
    ListenConfig l;
    if (std::string err = config_values::parse_listen_address(text, l); !err.empty())
        return err;
    out.address = std::string(text);
    out.addr = l.addr;
    out.addr_len = l.addr_len;
    return {};
}

const ProxyConfig* proxy_config(const Config& config) {
    return config.module_config<ProxyConfig>("proxy");
}

std::shared_ptr<const UpstreamConfig> find_upstream(const Config& config, std::string_view name) {
    const ProxyConfig* pc = proxy_config(config);
    if (!pc)
        return nullptr;
    auto it = pc->upstreams.find(std::string(name));
    return it == pc->upstreams.end() ? nullptr : it->second;
}

namespace {

class UpstreamLoader {
public:
    UpstreamLoader(TableContext& ctx, ProxyConfig& out)
        : diag_(ctx.diag), cert_dir_(ctx.config.server.cert_dir), out_(out) {}

    void load_upstreams(const toml::table& all) {
        for (const auto& [key, value] : all) {
            std::string name(key.str());
            const toml::table* t = value.as_table();
            if (!t) {
                diag_.error(&value, "upstream." + name + ": expected a table [upstream." + name +
                                        "], got " + describe_value(value));
                continue;
            }
            if (auto up = load_upstream(name, *t))
                out_.upstreams.emplace(name, std::move(up));
        }
    }

    std::shared_ptr<UpstreamConfig> load_upstream(const std::string& name, const toml::table& t) {
        auto up = std::make_shared<UpstreamConfig>();
        up->name = name;
        up->pos = diag_.pos(&t);
        const size_t errors_before = diag_.count();
        TableReader r(t, diag_, "upstream." + name);
        r.set_heading("[upstream." + name + "]");
        const std::string where = "upstream." + name + ".servers: ";
        if (const toml::array* list = r.array("servers")) {
            for (const toml::node& item : *list) {
                UpstreamServer s;
                const toml::node* address = &item;
                if (const toml::table* st = item.as_table()) {
                    TableReader sr(*st, diag_, "upstream." + name + ".servers");
                    address = sr.node("address");
                    s.weight = static_cast<int>(sr.integer("weight", 1, 1, 1000));
                    s.max_conns = static_cast<uint32_t>(sr.integer("max_conns", 0, 0, 1000000));
                    s.backup = sr.boolean("backup", false);
                    s.down = sr.boolean("down", false);
                    sr.finish();
                    if (!address) {
                        diag_.error(&item, where + "address: required, e.g. { address = "
                                                   "\"127.0.0.1:9000\", weight = 2 }");
                        continue;
                    }
                }
                const auto* text = address->as_string();
                if (!text) {
                    diag_.error(address, where +
                                             "expected \"IP:PORT\" or { address = "
                                             "\"IP:PORT\", weight = N }, got " +
                                             describe_value(*address));
                    continue;
                }
                if (std::string err = parse_upstream_address(text->get(), s); !err.empty()) {
                    diag_.error(address, where + err);
                    continue;
                }
                up->servers.push_back(std::move(s));
            }
            if (list->empty())
                r.error("servers", "needs at least one server, e.g. [\"127.0.0.1:9000\"]");
        } else if (!r.has("servers")) {
            diag_.error(r.table_pos(), "upstream." + name +
                                           ".servers: required, e.g. servers "
                                           "= [\"127.0.0.1:9000\"]");
        }
        up->balance =
            r.choice("balance", "round_robin", {"round_robin", "least_conn", "random_two", "hash"});
        if (std::optional<std::string> key = r.string("hash_key")) {
            bool ok = *key == "client_ip" || *key == "uri" ||
                      (key->rfind("header:", 0) == 0 && key->size() > 7) ||
                      (key->rfind("cookie:", 0) == 0 && key->size() > 7);
            if (!ok)
                r.error("hash_key", "expected \"client_ip\", \"uri\", \"header:NAME\" or "
                                    "\"cookie:NAME\", got " +
                                        in_quotes(*key));
            else
                up->hash_key = *key;
            if (up->balance != "hash")
                r.error("hash_key", "applies to balance = \"hash\"");
        }
        up->hash_method = r.choice("hash_method", "ring", {"ring", "maglev"});
        if (r.has("hash_method") && up->balance != "hash")
            r.error("hash_method", "applies to balance = \"hash\"");
        if (!up->servers.empty() &&
            std::all_of(up->servers.begin(), up->servers.end(),
                        [](const UpstreamServer& s) { return s.down || s.backup; }))
            r.error("servers", "needs at least one server that is neither down nor backup");
        up->max_fails = static_cast<uint32_t>(r.integer("max_fails", up->max_fails, 0, 1000));
        read_positive(r, "fail_timeout", up->fail_timeout);
        up->retries = static_cast<uint32_t>(r.integer("retries", up->retries, 0, 10));
        up->retry_budget =
            static_cast<uint32_t>(r.integer("retry_budget", up->retry_budget, 0, 100));
        up->retry_non_idempotent = r.boolean("retry_non_idempotent", false);
        if (std::optional<std::string> resolver = r.string("resolver"))
            up->resolver = *resolver; // checked by c-ares when a worker first resolves
        up->keepalive = static_cast<uint32_t>(r.integer("keepalive", up->keepalive, 0, 100000));
        up->keepalive_requests = static_cast<uint32_t>(
            r.integer("keepalive_requests", up->keepalive_requests, 1, 100000000));
        if (const toml::array* list = r.array("fail_statuses")) {
            for (const toml::node& n : *list) {
                const auto* v = n.as_integer();
                if (!v || v->get() < 400 || v->get() > 599)
                    diag_.error(&n, "upstream." + name +
                                        ".fail_statuses: expected statuses "
                                        "from 400 to 599 such as [502, 503, 504], got " +
                                        describe_value(n));
                else
                    up->fail_statuses.push_back(static_cast<int>(v->get()));
            }
        }
        read_positive(r, "keepalive_timeout", up->keepalive_timeout);
        read_positive(r, "connect_timeout", up->connect_timeout);
        read_positive(r, "read_timeout", up->read_timeout);
        read_positive(r, "send_timeout", up->send_timeout);
        if (r.has("first_byte_timeout"))
            read_positive(r, "first_byte_timeout", up->first_byte_timeout);
        if (r.has("total_timeout"))
            read_positive(r, "total_timeout", up->total_timeout);
        if (const toml::table* hc = r.table("health_check"))
            load_health_check(name, *hc, up->health_check);
        if (const toml::table* st = r.table("sticky"))
            load_sticky(name, *st, up->sticky);
        if (!up->sticky.cookie.empty() && up->balance == "hash")
            r.error("sticky", "cannot be combined with balance = \"hash\" (both decide the "
                              "server; hash_key = \"cookie:NAME\" is the stateless form)");
        if (const toml::node* tls = r.node("tls"))
            up->tls = read_upstream_tls(*tls, "upstream." + name + ".tls");
        const std::string protocol = r.choice("protocol", "http/1.1", {"http/1.1", "h2", "h3"});
        up->http2 = protocol == "h2";
        up->http3 = protocol == "h3";
        if (up->http2 && up->health_check.enabled && up->health_check.http)
            r.error("protocol", "HTTP health checks speak HTTP/1.1; an HTTP/2 upstream needs "
                                "health_check.type = \"tcp\"");
        if (std::optional<std::string> fb = r.string("fallback")) {
            if (*fb != "h2")
                r.error("fallback", "expected \"h2\" (HTTP/2 over TLS on TCP when UDP is "
                                    "blocked), got " +
                                        in_quotes(*fb));
            else if (!up->http3)
                r.error("fallback", "applies to protocol = \"h3\"");
            else
                up->fallback_h2 = true;
        }
        if (up->http3)
            check_http3(r, *up);
        r.finish();
        if (diag_.count() != errors_before)
            return nullptr;
        // What runs the upstream (its TLS context) is built now, so its problems (a CA file
        // that holds no certificate, a key that is not the certificate's) are reported with
        // the rest.
        prepare_upstream_tls(*up, diag_);
        if (diag_.count() != errors_before)
            return nullptr;
        return up;
    }

    // protocol = "h3": QUIC runs over UDP and is always TLS 1.3.
    void check_http3(TableReader& r, const UpstreamConfig& up) {
        if (!up.tls)
            r.error("protocol", "HTTP/3 runs over QUIC, which is always TLS: add tls = true (or "
                                "tls = { ca = \"...\" })");
        for (const UpstreamServer& s : up.servers)
            if (s.addr_len && s.addr.ss_family == AF_UNIX)
                r.error("protocol", "HTTP/3 needs UDP, but server " + in_quotes(s.address) +
                                        " is a Unix socket");
        if (up.health_check.enabled && (up.health_check.http || !up.fallback_h2))
            r.error("protocol", "health checks probe over TCP: an HTTP/3 upstream takes "
                                "health_check.type = \"tcp\" with fallback = \"h2\" only");
    }

    // [upstream.NAME.health_check]
    void load_health_check(const std::string& name, const toml::table& t, HealthCheckConfig& hc) {
        TableReader r(t, diag_, "upstream." + name + ".health_check");
        r.set_heading("[upstream." + name + ".health_check]");
        hc.enabled = r.boolean("enabled", true);
        hc.http = r.choice("type", "http", {"http", "tcp"}) == "http";
        if (std::optional<std::string> path = r.string("path")) {
            if (path->empty() || path->front() != '/' ||
                path->find_first_of(" \r\n\t#") != std::string::npos)
                r.error("path", "expected a request target starting with \"/\" without spaces "
                                "or '#', e.g. \"/healthz\", got " +
                                    in_quotes(*path));
            else
                hc.path = *path;
        }
        if (std::optional<std::string> host = r.string("host")) {
            if (host->empty() || !is_field_value(*host) || host->find(' ') != std::string::npos)
                r.error("host", "expected a host name such as \"app.example.com\", got " +
                                    in_quotes(*host));
            else
                hc.host = *host;
        }
        if (const toml::node* n = r.node("status")) {
            std::vector<std::pair<int, int>> ranges;
            std::string err = parse_status_ranges(*n, ranges);
            if (!err.empty())
                diag_.error(n, "upstream." + name + ".health_check.status: " + err);
            else
                hc.statuses = std::move(ranges);
        }
        if (std::optional<std::string> body = r.string("body")) {
            if (body->size() > 4096)
                r.error("body", "at most 4096 bytes (the first 64 KiB of an answer are searched)");
            else
                hc.body = *body;
        }
        read_positive(r, "interval", hc.interval);
        read_positive(r, "timeout", hc.timeout);
        hc.rise = static_cast<uint32_t>(r.integer("rise", hc.rise, 1, 100));
        hc.fall = static_cast<uint32_t>(r.integer("fall", hc.fall, 1, 100));
        if (!hc.http) {
            for (std::string_view key : {"path", "host", "status", "body"})
                if (r.has(key))
                    r.error(key, "applies to type = \"http\" checks only");
        }
        r.finish();
    }

    // 200, "200-299", [200, "300-399"] -> inclusive ranges of 100..599.
    static std::string parse_status_ranges(const toml::node& n,
                                           std::vector<std::pair<int, int>>& out) {
        auto one = [&](const toml::node& item) -> std::string {
            if (const auto* i = item.as_integer()) {
                if (i->get() < 100 || i->get() > 599)
                    return "status codes are 100 to 599, got " + std::to_string(i->get());
                out.emplace_back(static_cast<int>(i->get()), static_cast<int>(i->get()));
                return {};
            }
            const auto* str = item.as_string();
            int lo = 0, hi = 0;
            char tail = 0;
            if (!str || std::sscanf(str->get().c_str(), "%d-%d%c", &lo, &hi, &tail) != 2 ||
                lo < 100 || hi > 599 || lo > hi)
                return "expected a status such as 200, a range such as \"200-399\", or a list "
                       "of them, got " +
                       describe_value(item);
            out.emplace_back(lo, hi);
            return {};
        };
        if (const auto* arr = n.as_array()) {
            if (arr->empty())
                return "needs at least one status or range";
            for (const toml::node& item : *arr)
                if (std::string err = one(item); !err.empty())
                    return err;
            return {};
        }
        return one(n);
    }

    // [upstream.NAME] sticky = { cookie = "srv", ... }
    void load_sticky(const std::string& name, const toml::table& t, StickyConfig& st) {
        TableReader r(t, diag_, "upstream." + name + ".sticky");
        if (std::optional<std::string> cookie = r.string("cookie")) {
            if (cookie->empty() || !is_token(*cookie))
                r.error("cookie", "expected a cookie name (letters, digits and "
                                  "!#$%&'*+-.^_`|~), got " +
                                      in_quotes(*cookie));
            else
                st.cookie = *cookie;
        } else if (!r.has("cookie")) {
            diag_.error(&t, "upstream." + name +
                                ".sticky.cookie: required, e.g. sticky = { "
                                "cookie = \"srv_id\" }");
        }
        if (std::optional<std::string> path = r.string("path")) {
            if (path->empty() || path->front() != '/' ||
                path->find_first_of(" ;\r\n\t") != std::string::npos)
                r.error("path", "expected a path starting with \"/\" without spaces or ';'");
            else
                st.path = *path;
        }
        if (std::optional<Duration> age = r.duration("max_age")) {
            if (age->count() < 1000)
                r.error("max_age", "at least 1s (leave it out for a session cookie)");
            else
                st.max_age = *age;
        }
        st.secure = r.boolean("secure", false);
        st.http_only = r.boolean("http_only", true);
        std::string same = r.choice("same_site", "Lax", {"Strict", "Lax", "None", ""});
        st.same_site = same;
        if (same == "None" && !st.secure)
            r.error("same_site", "SameSite=None needs secure = true (browsers drop it otherwise)");
        r.finish();
    }

    // `tls = true`, or `tls = { verify, ca, server_name, cert, key, min_version,
    // session_reuse }`; false or absent: plain HTTP (null).
    std::shared_ptr<UpstreamTls> read_upstream_tls(const toml::node& value,
                                                   const std::string& where) {
        auto tls = std::make_shared<UpstreamTls>();
        tls->pos = diag_.pos(&value);
        if (const auto* on = value.as_boolean())
            return on->get() ? tls : nullptr;
        const toml::table* t = value.as_table();
        if (!t) {
            diag_.error(&value, where +
                                    ": expected true or a table { ca = \"ca.pem\", ... }, "
                                    "got " +
                                    describe_value(value));
            return nullptr;
        }
        TableReader r(*t, diag_, where);
        tls->verify = r.boolean("verify", true);
        if (std::optional<std::string> ca = r.string("ca")) {
            tls->ca_pos = r.pos("ca");
            if (ca->empty())
                r.error("ca", "must not be empty (leave it out for the system CA bundle)");
            else
                tls->ca = readable_file(r, "ca", *ca, cert_dir_);
        }
        if (std::optional<std::string> name = r.string("server_name")) {
            std::string n = *name;
            if (n.size() > 2 && n.front() == '[' && n.back() == ']')
                n = n.substr(1, n.size() - 2); // an IPv6 literal as written in an address
            for (char& c : n)
                c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            unsigned char addr[sizeof(in6_addr)];
            bool ip = inet_pton(AF_INET, n.c_str(), addr) == 1 ||
                      inet_pton(AF_INET6, n.c_str(), addr) == 1;
            UpstreamServer probe; // a host name is checked as one in an address would be
            if (n.empty() ||
                (!ip && (!parse_upstream_address(n + ":1", probe).empty() || probe.host.empty())))
                r.error("server_name", "expected a host name such as \"app.internal\" or an "
                                       "IP address, got " +
                                           in_quotes(*name));
            else
                tls->server_name = n;
        }
        std::optional<std::string> cert = r.string("cert");
        std::optional<std::string> key = r.string("key");
        tls->cert_pos = r.pos(cert ? "cert" : "key");
        if (cert && !key)
            r.error("cert", "needs key: the private key (PEM) of the client certificate");
        else if (key && !cert)
            r.error("key", "needs cert: the client certificate chain (PEM) it belongs to");
        if (cert) {
            if (cert->empty())
                r.error("cert", "must not be empty");
            else
                tls->cert = readable_file(r, "cert", *cert, cert_dir_);
        }
        if (key) {
            if (key->empty())
                r.error("key", "must not be empty");
            else
                tls->key = readable_file(r, "key", *key, cert_dir_);
        }
        std::string v = r.choice("min_version", "1.2", {"1.2", "1.3"});
        tls->min_version = v == "1.3" ? 0x0304 : 0x0303;
        tls->session_reuse = r.boolean("session_reuse", true);
        r.finish();
        return tls;
    }

private:
    Diagnostics& diag_;
    const std::string& cert_dir_; // TLS files of upstreams resolve against server.cert_dir
    ProxyConfig& out_;
};

} // namespace

void load_upstream_tables(const toml::node& value, TableContext& ctx) {
    const toml::table* all = value.as_table();
    if (!all) {
        ctx.diag.error(&value,
                       "upstream: expected tables [upstream.NAME], got " + describe_value(value));
        return;
    }
    auto pc = std::make_unique<ProxyConfig>();
    UpstreamLoader(ctx, *pc).load_upstreams(*all);
    ctx.config.modules["proxy"] = std::move(pc);
}

} // namespace wraith::proxy
