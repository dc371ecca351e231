// The config loader: TOML text -> validated Config, reporting every problem as
// FILE:LINE:COL in one pass (see config.h and DESIGN.md §5).
#include "common/config.h"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/un.h>
#include <unistd.h>

#include <toml++/toml.h>

#include "common/accounts.h"
#include "common/config_values.h"
#include "common/mime.h"
#include "modules/module.h"

namespace wraith {

// Defined here, where Handler and Filter are complete types.
Config::~Config() = default;

std::string resolve_path(const std::string& base_dir, const std::string& p) {
    if (p.empty() || p.front() == '/' || base_dir.empty())
        return p;
    return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

namespace {

namespace fs = std::filesystem;

// Stands in for an absent section or option table, so defaults go through the same code.
const toml::table& empty_table() {
    static const toml::table table;
    return table;
}

std::string pos_text(const SourcePos& p) {
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

} // namespace

// Also used by config_values.cc.
std::string in_quotes(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::string parse_upstream_address(std::string_view text, UpstreamServer& out) {
    if (text.substr(0, 5) == "unix:") {
        std::string_view path = text.substr(5);
        sockaddr_un un{};
        if (path.empty() || path.front() != '/')
            return "expected an absolute socket path after unix:, e.g. \"unix:/run/app.sock\", "
                   "got " + in_quotes(text);
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
                return "expected \"HOST:PORT\", e.g. \"app.internal:9000\", got " +
                       in_quotes(text);
            std::string_view port = text.substr(colon + 1);
            unsigned long p = 0;
            bool port_ok = !port.empty() && port.size() <= 5 &&
                           std::all_of(port.begin(), port.end(), [](char c) {
                               return c >= '0' && c <= '9';
                           });
            if (port_ok)
                p = std::stoul(std::string(port));
            if (!port_ok || p == 0 || p > 65535)
                return "bad port in " + in_quotes(text);
            bool name_ok = host.size() <= 253 && host.front() != '.' && host.back() != '.' &&
                           host.front() != '-' &&
                           std::all_of(host.begin(), host.end(), [](char c) {
                               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
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

std::string home_dir() {
    if (const char* home = std::getenv("HOME"); home && *home)
        return home;
    if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir && *pw->pw_dir)
        return pw->pw_dir;
    return "/tmp";
}

namespace {

using namespace config_values;

// ---- the loader ----------------------------------------------------------------------------

class Loader {
public:
    Loader(Config& cfg, Diagnostics& diag) : cfg_(cfg), diag_(diag) {}

    void load(const toml::table& doc) {
        TableReader root(doc, diag_, "");
        const toml::table* server = root.table("server");
        const toml::table* http = root.table("http");
        const toml::table* http2 = root.table("http2");
        const toml::table* http3 = root.table("http3");
        const toml::table* access_log = root.table("access_log");
        const toml::node* listen = root.node("listen");
        const toml::node* site = root.node("site");
        const toml::table* upstream = root.table("upstream");
        root.finish();

        // Order matters: modules see server, http and mime types when sites are built.
        load_server(server ? *server : empty_table());
        load_http(http ? *http : empty_table());
        load_http2(http2 ? *http2 : empty_table());
        load_http3(http3 ? *http3 : empty_table());
        if (access_log) {
            TableReader r(*access_log, diag_, "access_log");
            read_access_log(r, cfg_.access_log);
        }
        load_listeners(listen);
        load_upstreams(upstream); // before sites: proxy routes resolve upstream names
        load_sites(site);
        check_tls_listeners();
    }

    // A TLS listener needs a certificate to present: some site must have one.
    void check_tls_listeners() {
        bool any = std::any_of(cfg_.sites.begin(), cfg_.sites.end(),
                               [](const auto& s) { return s->tls && !s->tls->certificates.empty(); });
        if (any)
            return;
        for (const ListenConfig& l : cfg_.listeners)
            if (l.tls)
                diag_.error(l.pos, "listen.tls: no [[site]] has a certificate; add tls = { cert "
                                   "= ..., key = ... } to a site");
    }

private:
    Config& cfg_;
    Diagnostics& diag_;
    const Site* default_site_ = nullptr;
    std::map<std::string, SourcePos> claimed_hosts_; // kind + text -> where first listed

    // Elements of an array of tables ([[name]]); anything else is reported.
    std::vector<const toml::table*> tables_of(const toml::node* n, const std::string& name) {
        std::vector<const toml::table*> out;
        if (!n)
            return out;
        std::string expected = name + ": expected [[" + name + "]] tables, got ";
        const toml::array* arr = n->as_array();
        if (!arr) {
            diag_.error(n, expected + describe_value(*n));
            return out;
        }
        for (const toml::node& element : *arr) {
            if (const toml::table* t = element.as_table())
                out.push_back(t);
            else
                diag_.error(&element, expected + describe_value(element));
        }
        return out;
    }

    // A path option: relative paths resolve against the config file's directory.
    void path_option(TableReader& r, std::string_view key, std::string& out) {
        if (std::optional<std::string> v = r.string(key)) {
            if (v->empty())
                r.error(key, "must not be empty");
            else
                out = resolve_path(cfg_.dir, *v);
        }
    }

    void positive(TableReader& r, std::string_view key, Duration& out) {
        if (std::optional<Duration> d = r.duration(key)) {
            if (d->count() <= 0)
                r.error(key, "must be longer than 0");
            else
                out = *d;
        }
    }

    void load_upstreams(const toml::table* all) {
        if (!all)
            return;
        for (const auto& [key, value] : *all) {
            std::string name(key.str());
            const toml::table* t = value.as_table();
            if (!t) {
                diag_.error(&value, "upstream." + name + ": expected a table [upstream." + name +
                                        "], got " + describe_value(value));
                continue;
            }
            if (auto up = load_upstream(name, *t))
                cfg_.upstreams.emplace(name, std::move(up));
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
                    diag_.error(address, where + "expected \"IP:PORT\" or { address = "
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
            diag_.error(r.table_pos(), "upstream." + name + ".servers: required, e.g. servers "
                                                            "= [\"127.0.0.1:9000\"]");
        }
        up->balance = r.choice("balance", "round_robin",
                               {"round_robin", "least_conn", "random_two", "hash"});
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
        positive(r, "fail_timeout", up->fail_timeout);
        up->retries = static_cast<uint32_t>(r.integer("retries", up->retries, 0, 10));
        up->retry_budget = static_cast<uint32_t>(r.integer("retry_budget", up->retry_budget, 0, 100));
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
                    diag_.error(&n, "upstream." + name + ".fail_statuses: expected statuses "
                                    "from 400 to 599 such as [502, 503, 504], got " +
                                    describe_value(n));
                else
                    up->fail_statuses.push_back(static_cast<int>(v->get()));
            }
        }
        positive(r, "keepalive_timeout", up->keepalive_timeout);
        positive(r, "connect_timeout", up->connect_timeout);
        positive(r, "read_timeout", up->read_timeout);
        positive(r, "send_timeout", up->send_timeout);
        if (r.has("first_byte_timeout"))
            positive(r, "first_byte_timeout", up->first_byte_timeout);
        if (r.has("total_timeout"))
            positive(r, "total_timeout", up->total_timeout);
        if (const toml::table* hc = r.table("health_check"))
            load_health_check(name, *hc, up->health_check);
        if (const toml::table* st = r.table("sticky"))
            load_sticky(name, *st, up->sticky);
        if (!up->sticky.cookie.empty() && up->balance == "hash")
            r.error("sticky", "cannot be combined with balance = \"hash\" (both decide the "
                              "server; hash_key = \"cookie:NAME\" is the stateless form)");
        if (const toml::node* tls = r.node("tls"))
            up->tls = read_upstream_tls(*tls, "upstream." + name + ".tls");
        up->http2 = r.choice("protocol", "http/1.1", {"http/1.1", "h2"}) == "h2";
        if (up->http2 && up->health_check.enabled && up->health_check.http)
            r.error("protocol", "HTTP health checks speak HTTP/1.1; an HTTP/2 upstream needs "
                                "health_check.type = \"tcp\"");
        r.finish();
        if (diag_.count() != errors_before)
            return nullptr;
        // The module serving upstreams builds what runs them (a TLS context) now, so its
        // problems (a CA file that holds no certificate, a key that is not the
        // certificate's) are reported with the rest.
        for (const ModuleSpec& spec : ModuleRegistry::instance().all())
            if (spec.prepare_upstream)
                spec.prepare_upstream(*up, diag_);
        if (diag_.count() != errors_before)
            return nullptr;
        return up;
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
                                "or '#', e.g. \"/healthz\", got " + in_quotes(*path));
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
        positive(r, "interval", hc.interval);
        positive(r, "timeout", hc.timeout);
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
                       "of them, got " + describe_value(item);
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
                                  "!#$%&'*+-.^_`|~), got " + in_quotes(*cookie));
            else
                st.cookie = *cookie;
        } else if (!r.has("cookie")) {
            diag_.error(&t, "upstream." + name + ".sticky.cookie: required, e.g. sticky = { "
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
                tls->ca = readable_file(r, "ca", *ca);
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
                tls->cert = readable_file(r, "cert", *cert);
        }
        if (key) {
            if (key->empty())
                r.error("key", "must not be empty");
            else
                tls->key = readable_file(r, "key", *key);
        }
        std::string v = r.choice("min_version", "1.2", {"1.2", "1.3"});
        tls->min_version = v == "1.3" ? 0x0304 : 0x0303;
        tls->session_reuse = r.boolean("session_reuse", true);
        r.finish();
        return tls;
    }

    void load_server(const toml::table& t) {
        ServerConfig& s = cfg_.server;
        const bool root = geteuid() == 0;
        const std::string state = root ? "/run" : home_dir() + "/.wraith";
        s.pid_file = state + "/wraith.pid";
        s.control_socket = state + "/wraith.sock";
        s.cert_dir = root ? "/etc/wraith/certs" : home_dir() + "/.wraith/certs";

        TableReader r(t, diag_, "server");
        if (const toml::node* n = r.node("workers")) {
            const auto* text = n->as_string();
            const auto* number = n->as_integer();
            if (text && text->get() == "auto")
                s.workers = 0;
            else if (number && number->get() >= 1 && number->get() <= 256)
                s.workers = static_cast<int>(number->get());
            else
                diag_.error(n, "server.workers: expected \"auto\" or an integer between 1 and "
                               "256, got " +
                                   describe_value(*n));
        }
        std::optional<std::string> user = r.string("user");
        std::optional<std::string> group = r.string("group");
        if (user && user->empty())
            r.error("user", "must not be empty");
        else if (user)
            s.user = *user;
        if (group)
            s.group = *group;
        // Only a root master switches users, so only then must they exist.
        // The default user too: a root master without it could not start workers.
        if (root && !s.user.empty() && !user_exists(s.user))
            r.error("user", "user " + in_quotes(s.user) + " does not exist" +
                                (user ? "" : " (the default; set server.user to one that does)"));
        if (root && group && !group->empty() && !group_exists(*group))
            r.error("group", "group " + in_quotes(*group) + " does not exist");
        path_option(r, "pid_file", s.pid_file);
        path_option(r, "control_socket", s.control_socket);
        if (std::optional<std::string> log = r.string("error_log")) {
            if (log->empty())
                r.error("error_log", "must not be empty (use \"stderr\", \"stdout\" or a path)");
            else if (*log == "stderr" || *log == "stdout")
                s.error_log = *log;
            else
                s.error_log = resolve_path(cfg_.dir, *log);
        }
        s.log_level = r.choice("log_level", s.log_level, {"error", "warn", "info", "debug"});
        positive(r, "drain_timeout", s.drain_timeout);
        path_option(r, "cert_dir", s.cert_dir);
        path_option(r, "mime_types", s.mime_types);
        s.max_connections = static_cast<size_t>(
            r.integer("max_connections", static_cast<int64_t>(s.max_connections), 1, 1000000));
        load_mime_types(r);
        r.finish();
    }

    // An explicit server.mime_types must exist; the default one beside the config is optional.
    void load_mime_types(TableReader& r) {
        ServerConfig& s = cfg_.server;
        std::error_code ec;
        if (r.has("mime_types")) {
            if (s.mime_types.empty())
                return; // already reported
            if (!fs::exists(s.mime_types, ec)) {
                r.error("mime_types", "file " + in_quotes(s.mime_types) + " does not exist");
            } else {
                cfg_.mime = MimeTypes::load(s.mime_types, diag_);
            }
        } else {
            std::string beside = resolve_path(cfg_.dir, "mime.types");
            if (!cfg_.dir.empty() && fs::is_regular_file(beside, ec)) {
                s.mime_types = beside;
                cfg_.mime = MimeTypes::load(beside, diag_);
            }
        }
        if (!cfg_.mime)
            cfg_.mime = MimeTypes::builtin(); // so modules built later still have a table
    }

    void load_http(const toml::table& t) {
        HttpConfig& h = cfg_.http;
        TableReader r(t, diag_, "http");
        h.client_max_body_size = r.size("client_max_body_size", h.client_max_body_size);
        h.max_request_target = r.size("max_request_target", h.max_request_target);
        h.max_header_size = r.size("max_header_size", h.max_header_size);
        h.max_headers = static_cast<uint64_t>(
            r.integer("max_headers", static_cast<int64_t>(h.max_headers), 1, 10000));
        positive(r, "header_timeout", h.header_timeout);
        positive(r, "body_timeout", h.body_timeout);
        positive(r, "keepalive_timeout", h.keepalive_timeout);
        positive(r, "send_timeout", h.send_timeout);
        h.keepalive_requests = static_cast<uint64_t>(r.integer(
            "keepalive_requests", static_cast<int64_t>(h.keepalive_requests), 1, 1000000000));
        h.server_header = r.string("server_header", h.server_header);

        if (h.max_header_size < 1024 || h.max_header_size > (1u << 20))
            r.error("max_header_size",
                    "must be between 1k and 1m, got " + std::to_string(h.max_header_size));
        else if (h.max_request_target < 256 || h.max_request_target > h.max_header_size)
            r.error("max_request_target", "must be between 256 and max_header_size (" +
                                              std::to_string(h.max_header_size) + "), got " +
                                              std::to_string(h.max_request_target));
        // It goes out verbatim as a field value: no CR/LF injection.
        if (std::any_of(h.server_header.begin(), h.server_header.end(),
                        [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
            r.error("server_header", "must not contain control characters");
        r.finish();
    }

    void load_http2(const toml::table& t) {
        Http2Config& h = cfg_.http2;
        TableReader r(t, diag_, "http2");
        h.max_concurrent_streams = static_cast<uint32_t>(
            r.integer("max_concurrent_streams", h.max_concurrent_streams, 1, 10000));
        // RFC 9113 §6.5.2: windows up to 2^31-1, frames 2^14..2^24-1.
        auto window = [&](std::string_view key, uint32_t& out, uint64_t min) {
            uint64_t v = r.size(key, out);
            if (v < min || v > 0x7fffffff)
                r.error(key, "must be between " + std::to_string(min / 1024) +
                                 "k and 2147483647 bytes, got " + std::to_string(v));
            else
                out = static_cast<uint32_t>(v);
        };
        window("initial_window_size", h.initial_window_size, 16384);
        window("connection_window_size", h.connection_window_size, 65536);
        uint64_t frame = r.size("max_frame_size", h.max_frame_size);
        if (frame < 16384 || frame > 16777215)
            r.error("max_frame_size",
                    "must be between 16k and 16777215 bytes, got " + std::to_string(frame));
        else
            h.max_frame_size = static_cast<uint32_t>(frame);
        // By default the same budget as an HTTP/1 head (checked with [http]).
        h.max_header_list_size = r.size("max_header_list_size", cfg_.http.max_header_size);
        if (r.has("max_header_list_size") &&
            (h.max_header_list_size < 1024 || h.max_header_list_size > (1u << 20)))
            r.error("max_header_list_size", "must be between 1k and 1m, got " +
                                                std::to_string(h.max_header_list_size));
        h.rapid_reset_limit = static_cast<uint32_t>(
            r.integer("rapid_reset_limit", h.rapid_reset_limit, 1, 100000));
        h.rapid_reset_burst = static_cast<uint32_t>(
            r.integer("rapid_reset_burst", h.rapid_reset_burst, 1, 100000));
        h.control_frame_limit = static_cast<uint32_t>(
            r.integer("control_frame_limit", h.control_frame_limit, 1, 100000));
        h.max_continuations = static_cast<uint32_t>(
            r.integer("max_continuations", h.max_continuations, 0, 1000));
        r.finish();
    }

    void load_http3(const toml::table& t) {
        Http3Config& h = cfg_.http3;
        TableReader r(t, diag_, "http3");
        h.max_connections = static_cast<uint32_t>(
            r.integer("max_connections", h.max_connections, 1, 1000000));
        h.max_concurrent_streams = static_cast<uint32_t>(
            r.integer("max_concurrent_streams", h.max_concurrent_streams, 1, 10000));
        auto window = [&](std::string_view key, uint64_t& out, uint64_t min) {
            uint64_t v = r.size(key, out);
            if (v < min || v > (1ull << 30))
                r.error(key, "must be between " + std::to_string(min / 1024) +
                                 "k and 1g, got " + std::to_string(v));
            else
                out = v;
        };
        window("stream_window", h.stream_window, 16384);
        window("connection_window", h.connection_window, 65536);
        positive(r, "idle_timeout", h.idle_timeout);
        positive(r, "handshake_timeout", h.handshake_timeout);
        std::string retry = r.choice("retry", "auto", {"auto", "always", "never"});
        h.retry = retry == "always"  ? Http3Config::Retry::always
                  : retry == "never" ? Http3Config::Retry::never
                                     : Http3Config::Retry::automatic;
        h.retry_above =
            static_cast<uint32_t>(r.integer("retry_above", h.retry_above, 1, 10000000));
        // RFC 9000 §18.2: at least 1200; more than Ethernet needs a jumbo-frame path.
        h.max_udp_payload_size = static_cast<uint32_t>(
            r.integer("max_udp_payload_size", h.max_udp_payload_size, 1200, 65527));
        h.qpack_table_size = static_cast<uint32_t>(
            r.size("qpack_table_size", h.qpack_table_size));
        if (h.qpack_table_size > (1u << 20))
            r.error("qpack_table_size", "must be at most 1m, got " +
                                            std::to_string(h.qpack_table_size));
        h.qpack_blocked_streams = static_cast<uint32_t>(
            r.integer("qpack_blocked_streams", h.qpack_blocked_streams, 0, 65535));
        if (std::optional<Duration> d = r.duration("alt_svc_max_age")) {
            if (d->count() < 1000)
                r.error("alt_svc_max_age", "must be at least 1s");
            else
                h.alt_svc_max_age = *d;
        }
        if (const toml::array* list = r.array("versions")) {
            std::vector<uint32_t> versions;
            for (const toml::node& n : *list) {
                const auto* v = n.as_string();
                uint32_t version = !v                ? 0
                                   : v->get() == "v1" ? Http3Config::kVersion1
                                   : v->get() == "v2" ? Http3Config::kVersion2
                                                      : 0;
                if (!version)
                    diag_.error(&n, "http3.versions: expected \"v1\" or \"v2\", got " +
                                        describe_value(n));
                else if (std::find(versions.begin(), versions.end(), version) != versions.end())
                    diag_.error(&n, "http3.versions: " + v->get() + " is listed twice");
                else
                    versions.push_back(version);
            }
            if (list->empty())
                r.error("versions", "must name at least one version, such as [\"v1\"]");
            else if (!versions.empty())
                h.versions = std::move(versions);
        }
        if (const toml::array* list = r.array("cipher_suites")) {
            static const char* const known[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                                "TLS_CHACHA20_POLY1305_SHA256"};
            for (const toml::node& n : *list) {
                const auto* v = n.as_string();
                if (!v || std::find_if(std::begin(known), std::end(known), [&](const char* k) {
                              return v->get() == k;
                          }) == std::end(known))
                    diag_.error(&n, "http3.cipher_suites: expected TLS_AES_128_GCM_SHA256, "
                                    "TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256, "
                                    "got " + describe_value(n));
                else
                    h.cipher_suites.push_back(v->get());
            }
            if (list->empty())
                r.error("cipher_suites", "must name at least one cipher suite");
        }
        h.udp_buffer_size = r.size("udp_buffer_size", h.udp_buffer_size);
        if (h.udp_buffer_size < 65536 || h.udp_buffer_size > (1ull << 30))
            r.error("udp_buffer_size", "must be between 64k and 1g, got " +
                                           std::to_string(h.udp_buffer_size));
        r.finish();
    }

    void read_access_log(TableReader& r, AccessLogConfig& out) {
        if (std::optional<std::string> path = r.string("path")) {
            if (path->empty() || *path == "off")
                out.path = "off";
            else if (*path == "stdout" || *path == "stderr")
                out.path = *path;
            else
                out.path = resolve_path(cfg_.dir, *path);
        }
        out.format = r.choice("format", out.format, {"combined", "json"});
        r.finish();
    }

    void load_listeners(const toml::node* n) {
        for (const toml::table* t : tables_of(n, "listen"))
            load_listen(*t);
        if (cfg_.listeners.empty() && (!n || (n->as_array() && n->as_array()->empty())))
            diag_.error(SourcePos{diag_.file(), 1, 1},
                        "no [[listen]] table: add one, e.g. [[listen]] address = \"[::]:8080\"");
    }

    void load_listen(const toml::table& t) {
        TableReader r(t, diag_, "listen");
        r.set_heading("[[listen]]");
        ListenConfig l;
        bool address_ok = false;
        const toml::node* a = r.node("address");
        if (!a) {
            diag_.error(r.table_pos(), "listen.address: required, e.g. address = \"[::]:8080\"");
        } else {
            l.pos = diag_.pos(a);
            std::string err;
            if (const auto* s = a->as_string()) {
                l.address = s->get();
                err = parse_listen_address(l.address, l);
            } else if (const auto* i = a->as_integer()) {
                l.address = std::to_string(i->get());
                err = check_port(i->get());
                if (err.empty())
                    set_ipv6(l, in6addr_any, static_cast<uint16_t>(i->get()));
            } else {
                err = "expected an address like \"[::]:80\" or a port number, got " +
                      describe_value(*a);
            }
            if (err.empty())
                address_ok = true;
            else
                diag_.error(a, "listen.address: " + err);
        }
        l.ipv6_only = r.boolean("ipv6_only", false);
        if (l.ipv6_only && address_ok && l.addr.ss_family == AF_INET)
            r.error("ipv6_only",
                    "applies only to IPv6 addresses, and " + in_quotes(l.address) + " is IPv4");
        l.backlog = static_cast<int>(r.integer("backlog", l.backlog, 1, 65535));
        l.tls = r.boolean("tls", false);
        read_protocols(r, l);
        r.finish();
        if (!address_ok)
            return;
        for (const ListenConfig& other : cfg_.listeners) {
            if (same_endpoint(l, other)) {
                diag_.error(l.pos, "listen.address: " + in_quotes(l.address) +
                                       " is already listened on at " + pos_text(other.pos));
                return;
            }
            if (port_of(l) == port_of(other) &&
                ((is_dual_stack(other) && l.addr.ss_family == AF_INET) ||
                 (is_dual_stack(l) && other.addr.ss_family == AF_INET))) {
                diag_.error(l.pos, "listen.address: " + in_quotes(l.address) + " overlaps " +
                                       in_quotes(other.address) + " at " + pos_text(other.pos) +
                                       " ([::] also accepts IPv4 unless ipv6_only = true)");
                return;
            }
        }
        cfg_.listeners.push_back(std::move(l));
    }

    void read_protocols(TableReader& r, ListenConfig& l) {
        const toml::node* n = r.node("protocols");
        if (!n) {
            // TLS negotiates with ALPN, preferring HTTP/2; cleartext speaks HTTP/1.1.
            // HTTP/3 first: a TLS listener also answers QUIC on the same UDP port.
            l.protocols = l.tls ? std::vector<std::string>{"h3", "h2", "http/1.1"}
                                : std::vector<std::string>{"http/1.1"};
            return;
        }
        const toml::array* arr = n->as_array();
        if (!arr) {
            diag_.error(n, "listen.protocols: expected an array like [\"http/1.1\"], got " +
                               describe_value(*n));
            return;
        }
        if (arr->empty())
            r.error("protocols", "needs at least one protocol, e.g. [\"http/1.1\"]");
        for (const toml::node& element : *arr) {
            const auto* s = element.as_string();
            if (!s) {
                diag_.error(&element, "listen.protocols: expected a protocol name like "
                                      "\"http/1.1\", got " +
                                          describe_value(element));
                continue;
            }
            const std::string& p = s->get();
            if (p != "http/1.1" && p != "h2" && p != "h2c" && p != "h3")
                diag_.error(&element, "listen.protocols: unknown protocol " + in_quotes(p) +
                                          " (expected \"h3\", \"h2\", \"http/1.1\" or "
                                          "\"h2c\")");
            else if (p == "h3" && !l.tls)
                diag_.error(&element, "listen.protocols: \"h3\" is HTTP/3 over QUIC, which is "
                                      "always encrypted: it needs tls = true");
            else if (p == "h2" && !l.tls)
                diag_.error(&element, "listen.protocols: \"h2\" needs tls = true; cleartext "
                                      "HTTP/2 is \"h2c\"");
            else if (p == "h2c" && l.tls)
                diag_.error(&element, "listen.protocols: \"h2c\" is cleartext HTTP/2; on a "
                                      "TLS listener it is \"h2\"");
            else if (std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end())
                diag_.error(&element, "listen.protocols: " + in_quotes(p) + " is listed twice");
            else
                l.protocols.push_back(p);
        }
        // Browsers find HTTP/3 through Alt-Svc on TCP, so QUIC comes with a TCP protocol.
        if (l.quic() && l.protocols.size() == 1)
            r.error("protocols", "\"h3\" needs \"h2\" or \"http/1.1\" beside it on the same "
                                 "port: browsers learn about HTTP/3 from Alt-Svc over TCP");
    }

    void load_sites(const toml::node* n) {
        for (const toml::table* t : tables_of(n, "site"))
            load_site(*t);
        if (cfg_.sites.empty() && (!n || (n->as_array() && n->as_array()->empty())))
            diag_.error(SourcePos{diag_.file(), 1, 1},
                        "no [[site]] table: add one, e.g. [[site]] hosts = [\"*\"] with a "
                        "[[site.route]]");
        // With no explicit default, the first site in the file catches unclaimed hosts (as
        // nginx's first server block does).
        if (!default_site_ && !cfg_.sites.empty())
            cfg_.sites.front()->is_default = true;
    }

    void load_site(const toml::table& t) {
        auto site = std::make_unique<Site>();
        site->pos = diag_.pos(&t);
        TableReader r(t, diag_, "site");
        r.set_heading("[[site]]");

        if (const toml::node* hosts = r.node("hosts"))
            read_hosts(*hosts, *site);
        else
            diag_.error(site->pos, "site.hosts: required, e.g. hosts = [\"example.com\"] "
                                   "(\"*\" matches any host)");

        if (r.boolean("default", false)) {
            if (default_site_) {
                r.error("default", "only one site may be the default, and the site at " +
                                       pos_text(default_site_->pos) + " already is");
            } else {
                site->is_default = true;
                default_site_ = site.get();
            }
        }

        site->access_log = cfg_.access_log; // absent or partial: inherit the global one
        if (const toml::table* log = r.table("access_log")) {
            TableReader lr(*log, diag_, "site.access_log");
            read_access_log(lr, site->access_log);
        }

        if (const toml::table* tls = r.table("tls")) {
            TableReader tr(*tls, diag_, "site.tls");
            site->tls = read_site_tls(tr);
        }

        if (const toml::table* pages = r.table("error_pages"))
            read_error_pages(*pages, *site);

        const toml::node* route_node = r.node("route");
        std::vector<const toml::table*> routes = tables_of(route_node, "site.route");
        if (routes.empty() &&
            (!route_node || (route_node->as_array() && route_node->as_array()->empty())))
            diag_.error(site->pos, "[[site]] needs at least one [[site.route]]");
        r.finish();

        cfg_.sites.push_back(std::move(site));
        Site& built = *cfg_.sites.back();
        for (const toml::table* route : routes)
            load_route(*route, built);
    }

    // A file the server will read at start: it must be there and readable now, so a broken
    // site is refused by `wraith check` rather than served. (Its contents are checked when
    // the TLS contexts are built.)
    std::string readable_file(TableReader& r, std::string_view key, const std::string& value) {
        std::string path = resolve_path(cfg_.server.cert_dir, value);
        if (::access(path.c_str(), R_OK) != 0)
            r.error(key, "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
        return path;
    }

    std::unique_ptr<SiteTls> read_site_tls(TableReader& r) {
        auto tls = std::make_unique<SiteTls>();
        tls->pos = r.table_pos();
        auto read_pair = [&](TableReader& pr) {
            TlsCertificate c;
            c.pos = pr.pos("cert");
            std::optional<std::string> cert = pr.string("cert");
            std::optional<std::string> key = pr.string("key");
            if (!cert || cert->empty())
                pr.error("cert", "required: the certificate chain (PEM), e.g. cert = "
                                 "\"example.com.pem\" (relative to server.cert_dir)");
            if (!key || key->empty())
                pr.error("key", "required: the private key (PEM) of cert, e.g. key = "
                                "\"example.com.key\"");
            if (cert && !cert->empty())
                c.cert = readable_file(pr, "cert", *cert);
            if (key && !key->empty())
                c.key = readable_file(pr, "key", *key);
            if (!c.cert.empty() && !c.key.empty())
                tls->certificates.push_back(std::move(c));
        };
        if (r.has("certificates")) {
            if (r.has("cert") || r.has("key"))
                r.error("certificates", "give either cert + key or certificates, not both");
            if (const toml::array* list = r.array("certificates")) {
                if (list->empty())
                    r.error("certificates", "needs at least one { cert = ..., key = ... }");
                for (const toml::node& item : *list) {
                    if (const toml::table* t = item.as_table()) {
                        TableReader pr(*t, diag_, "site.tls.certificates");
                        read_pair(pr);
                    } else {
                        diag_.error(&item, "site.tls.certificates: expected a table "
                                           "{ cert = ..., key = ... }, got " +
                                               describe_value(item));
                    }
                }
            }
        } else {
            read_pair(r);
        }
        std::string v = r.choice("min_version", "1.2", {"1.2", "1.3"});
        tls->min_version = v == "1.3" ? 0x0304 : 0x0303;
        std::string auth = r.choice("client_auth", "off", {"off", "optional", "require"});
        tls->client_auth = auth == "require"    ? SiteTls::ClientAuth::require
                           : auth == "optional" ? SiteTls::ClientAuth::optional
                                                : SiteTls::ClientAuth::off;
        if (std::optional<std::string> ca = r.string("client_ca")) {
            tls->client_ca_pos = r.pos("client_ca");
            tls->client_ca = readable_file(r, "client_ca", *ca);
        }
        if (std::optional<std::string> crl = r.string("crl"))
            tls->crl = readable_file(r, "crl", *crl);
        if (tls->client_auth != SiteTls::ClientAuth::off && tls->client_ca.empty())
            r.error("client_auth", "needs client_ca: the CA certificates (PEM) that issue "
                                   "client certificates");
        if (!tls->crl.empty() && tls->client_ca.empty())
            r.error("crl", "applies to client certificates: set client_ca and client_auth");
        if (std::optional<std::string> staple = r.string("ocsp_staple")) {
            tls->ocsp_staple_pos = r.pos("ocsp_staple");
            tls->ocsp_staple = readable_file(r, "ocsp_staple", *staple);
        }
        tls->ocsp_fetch = r.boolean("ocsp_fetch", true);
        tls->early_data = r.boolean("early_data", false);
        r.finish();
        return tls;
    }

    void read_hosts(const toml::node& hosts, Site& site) {
        std::vector<const toml::node*> items;
        if (hosts.is_string()) {
            items.push_back(&hosts);
        } else if (const toml::array* arr = hosts.as_array()) {
            for (const toml::node& element : *arr)
                items.push_back(&element);
            if (arr->empty())
                diag_.error(&hosts, "site.hosts: needs at least one host (\"*\" matches any)");
        } else {
            diag_.error(&hosts,
                        "site.hosts: expected an array of strings, got " + describe_value(hosts));
        }
        for (const toml::node* item : items) {
            const auto* s = item->as_string();
            if (!s) {
                diag_.error(item, "site.hosts: expected an array of strings, got " +
                                      describe_value(*item));
                continue;
            }
            HostMatch m;
            if (std::string err = parse_host(s->get(), m); !err.empty()) {
                diag_.error(item, "site.hosts: " + err);
                continue;
            }
            std::string key = std::to_string(static_cast<int>(m.kind)) + m.text;
            auto [it, inserted] = claimed_hosts_.emplace(key, diag_.pos(item));
            if (!inserted) {
                diag_.error(item, "site.hosts: " + in_quotes(s->get()) + " is already listed at " +
                                      pos_text(it->second));
                continue;
            }
            site.hosts.push_back(std::move(m));
        }
    }

    void read_error_pages(const toml::table& pages, Site& site) {
        for (const auto& [key, value] : pages) {
            std::string_view code = key.str();
            bool ok = code.size() == 3 && all_digits(code) && code >= "400" && code <= "599";
            if (!ok) {
                SourcePos p{diag_.file(), static_cast<int>(key.source().begin.line),
                            static_cast<int>(key.source().begin.column)};
                if (p.line == 0)
                    p = diag_.pos(&value);
                diag_.error(p, "site.error_pages: " + in_quotes(code) +
                                   " is not an error status (expected \"400\" to \"599\")");
                continue;
            }
            const auto* uri = value.as_string();
            if (!uri || uri->get().empty() || uri->get().front() != '/') {
                diag_.error(&value, "site.error_pages." + std::string(code) +
                                        ": expected a URI starting with \"/\", got " +
                                        describe_value(value));
                continue;
            }
            site.error_pages[std::stoi(std::string(code))] = uri->get();
        }
    }

    // "static, redirect, respond" — the registered handler keys, or with filters too.
    static std::string module_keys(bool handlers_only) {
        std::vector<std::string_view> handlers, filters;
        for (const ModuleSpec& spec : ModuleRegistry::instance().all())
            (spec.is_handler ? handlers : filters).push_back(spec.key);
        std::sort(handlers.begin(), handlers.end());
        std::sort(filters.begin(), filters.end());
        if (!handlers_only)
            handlers.insert(handlers.end(), filters.begin(), filters.end());
        if (handlers.empty())
            return "none are registered";
        std::string out;
        for (size_t i = 0; i < handlers.size(); ++i)
            out += (i ? ", " : "") + std::string(handlers[i]);
        return out;
    }

    void load_route(const toml::table& t, Site& site) {
        Route route;
        route.pos = diag_.pos(&t);
        route.match.text = "/";
        if (const toml::node* path = t.get("path")) {
            const auto* s = path->as_string();
            std::string err =
                s ? parse_route_path(s->get(), route.match)
                  : "expected \"/prefix\", \"=/exact\" or \"~regex\", got " + describe_value(*path);
            if (!err.empty())
                diag_.error(path, "site.route.path: " + err);
        }

        // Module keys in file order, so "second handler" means the later one.
        struct Entry {
            std::string_view key;
            const toml::node* value;
            SourcePos pos; // of the key
        };
        std::vector<Entry> entries;
        for (const auto& [key, value] : t) {
            if (key.str() == "path")
                continue;
            SourcePos p{diag_.file(), static_cast<int>(key.source().begin.line),
                        static_cast<int>(key.source().begin.column)};
            if (p.line == 0)
                p = diag_.pos(&value);
            entries.push_back({key.str(), &value, p});
        }
        std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
            return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
        });

        const ModuleRegistry& registry = ModuleRegistry::instance();
        const Entry* handler_entry = nullptr;
        std::vector<std::pair<const ModuleSpec*, std::unique_ptr<Filter>>> filters;
        std::vector<std::string_view> mentioned;
        for (const Entry& e : entries) {
            const ModuleSpec* spec = registry.find(e.key);
            if (!spec) {
                diag_.error(e.pos, "unknown key " + in_quotes(e.key) +
                                       " in [[site.route]] (expected path or a module: " +
                                       module_keys(false) + ")");
                continue;
            }
            mentioned.push_back(spec->key);
            std::string name = "site.route." + std::string(spec->key);
            if (spec->is_handler) {
                if (handler_entry) {
                    diag_.error(e.pos, "route has a second handler " + in_quotes(e.key) +
                                           "; it already has " + in_quotes(handler_entry->key) +
                                           " at " + pos_text(handler_entry->pos));
                    continue;
                }
                handler_entry = &e;
                route.handler_name = std::string(spec->key);
                const toml::table* options = e.value->as_table();
                if (!options) {
                    diag_.error(e.value,
                                name + ": expected a table, got " + describe_value(*e.value));
                    continue;
                }
                route.handler = build<Handler>(*spec, *options, diag_.pos(e.value), site);
                continue;
            }
            const toml::table* options = e.value->as_table();
            if (const auto* on = e.value->as_boolean()) {
                if (!on->get())
                    continue; // `compress = false`: off for this route
                options = &empty_table();
            }
            if (!options) {
                diag_.error(e.value, name + ": expected a table or true/false, got " +
                                         describe_value(*e.value));
                continue;
            }
            if (auto f = build<Filter>(*spec, *options, diag_.pos(e.value), site))
                filters.emplace_back(spec, std::move(f));
        }
        if (!handler_entry)
            diag_.error(route.pos, "route needs one handler (" + module_keys(true) + ")");

        for (const ModuleSpec& spec : registry.all()) {
            if (spec.is_handler || !spec.default_on ||
                std::find(mentioned.begin(), mentioned.end(), spec.key) != mentioned.end())
                continue;
            if (auto f = build<Filter>(spec, empty_table(), route.pos, site, true))
                filters.emplace_back(&spec, std::move(f));
        }
        std::stable_sort(filters.begin(), filters.end(), [](const auto& a, const auto& b) {
            Phase pa = a.second->phase(), pb = b.second->phase();
            return pa != pb ? pa < pb : a.first->order < b.first->order;
        });
        for (auto& f : filters)
            route.filters.push_back(std::move(f.second));
        site.routes.push_back(std::move(route));
    }

    // Runs a module's build function over `options`. A nullptr result must come with a
    // reported problem; one that does not still fails the load, with a generic message —
    // except for the `implicit` build of a default_on filter, where it means "not needed here".
    template <class T>
    std::unique_ptr<T> build(const ModuleSpec& spec, const toml::table& options,
                             const SourcePos& at, const Site& site, bool implicit = false) {
        std::string name = "site.route." + std::string(spec.key);
        size_t errors_before = diag_.count();
        TableReader reader(options, diag_, std::string(spec.key));
        reader.set_heading(std::string(spec.key));
        BuildContext ctx{cfg_, site, diag_};
        std::unique_ptr<T> built;
        try {
            if constexpr (std::is_same_v<T, Handler>) {
                if (spec.build_handler)
                    built = spec.build_handler(reader, ctx);
            } else {
                if (spec.build_filter)
                    built = spec.build_filter(reader, ctx);
            }
        } catch (const std::exception& e) {
            diag_.error(at, name + ": " + e.what());
        }
        reader.finish();
        if (!built && !implicit && diag_.count() == errors_before)
            diag_.error(at, name + ": the module could not be built");
        return built;
    }
};

std::shared_ptr<const Config> load(std::string_view text, const std::string& name,
                                   const std::string& path, const std::string& dir,
                                   Diagnostics& diag) {
    diag.set_file(name);
    size_t errors_before = diag.count();
    toml::table doc;
    try {
        doc = toml::parse(text, name);
    } catch (const toml::parse_error& e) {
        // toml++ stops at the first syntax error, so this is the only one reported.
        diag.error(SourcePos{name, static_cast<int>(e.source().begin.line),
                             static_cast<int>(e.source().begin.column)},
                   std::string(e.description()));
        return nullptr;
    }
    auto cfg = std::make_shared<Config>();
    cfg->path = path;
    cfg->dir = dir;
    Loader(*cfg, diag).load(doc);
    diag.sort_by_position();
    if (diag.count() != errors_before)
        return nullptr;
    return cfg;
}

std::string absolute_dir(const std::string& dir) {
    std::error_code ec;
    fs::path p = fs::absolute(dir.empty() ? fs::path(".") : fs::path(dir), ec);
    if (ec)
        return dir;
    std::string out = p.lexically_normal().string();
    if (out.size() > 1 && out.back() == '/')
        out.pop_back();
    return out;
}

} // namespace

std::shared_ptr<const Config> load_config(const std::string& path, Diagnostics& diag) {
    diag.set_file(path);
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        diag.error(SourcePos{path, 0, 0}, "is a directory, not a config file");
        return nullptr;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.error(SourcePos{path, 0, 0},
                   "cannot read config file: " + std::string(std::strerror(errno)));
        return nullptr;
    }
    std::ostringstream text;
    text << in.rdbuf();
    fs::path absolute = fs::path(absolute_dir(".")) / path;
    if (!path.empty() && path.front() == '/')
        absolute = path;
    absolute = absolute.lexically_normal();
    return load(text.str(), path, absolute.string(), absolute.parent_path().string(), diag);
}

std::shared_ptr<const Config> load_config_text(std::string_view text, const std::string& name,
                                               const std::string& dir, Diagnostics& diag) {
    std::string abs_dir = absolute_dir(dir);
    return load(text, name, resolve_path(abs_dir, name), abs_dir, diag);
}

} // namespace wraith
