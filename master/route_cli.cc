#include "master/route_cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

#include "common/config.h"
#include "common/module.h"
#include "common/path.h"
#include "modules/geo/geo.h"
#include "modules/router/router.h"

namespace wraith {

const char kRouteHelp[] =
    "usage: wraith route [-c FILE] 'METHOD URL' [-H 'Name: value'] ... [--client-ip ADDR]\n"
    "                    [--protocol h1|h2|h3]\n\n"
    "Explains which site and route of FILE a request would take, and why each earlier\n"
    "candidate was skipped (a condition that failed, a rewrite), without a running server.\n"
    "METHOD defaults to GET ('https://example.com/x' alone is a GET). --client-ip is the\n"
    "address the connection comes from (default 127.0.0.1); [server] real_ip, allow/deny,\n"
    "client_ip and geo conditions judge it as a server would. Exit status: 0 a route serves\n"
    "the request, 1 no route (404) or a failed rewrite (500) or a config error, 2 usage.\n";

namespace {

int usage(const std::string& msg) {
    fprintf(stderr, "wraith route: %s\n%s", msg.c_str(), kRouteHelp);
    return 2;
}

// A writer for request-head filters: what real_ip may answer goes nowhere.
class NullWriter final : public ResponseWriter {
public:
    int status = 0;
    void send_informational(int, const Headers&) override {}
    void send_headers(ResponseHead& head, bool) override { status = head.status; }
    Result send_body(std::string_view, bool) override { return Result::ok; }
    Result send_file(int, off_t, size_t, bool) override { return Result::ok; }
    void on_writable(Callback) override {}
    void on_abort(Callback) override {}
    void reset() override {}
    bool headers_sent() const override { return status != 0; }
    uint64_t body_bytes_sent() const override { return 0; }
};

bool set_peer(const std::string& text, ConnectionInfo& info) {
    std::string ip = text;
    if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']')
        ip = ip.substr(1, ip.size() - 2);
    auto* a4 = &info.peer.v4;
    auto* a6 = &info.peer.v6;
    if (inet_pton(AF_INET, ip.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, ip.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return s;
}

} // namespace

int route_main(const std::vector<std::string>& args, const std::string& default_config) {
    std::string config_path = default_config, request_text, client_ip = "127.0.0.1";
    std::string protocol = "h1";
    std::vector<std::pair<std::string, std::string>> headers;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= args.size())
                return false;
            out = args[++i];
            return true;
        };
        std::string v;
        if (a == "-h" || a == "--help") {
            fputs(kRouteHelp, stdout);
            return 0;
        } else if (a == "-c" || a == "--config") {
            if (!value(config_path))
                return usage(a + " needs a file name");
        } else if (a == "-H" || a == "--header") {
            if (!value(v))
                return usage(a + " needs 'Name: value'");
            size_t colon = v.find(':');
            if (colon == std::string::npos || colon == 0 || !is_token(v.substr(0, colon)))
                return usage("header \"" + v + "\" is not 'Name: value'");
            std::string val = v.substr(colon + 1);
            while (!val.empty() && (val.front() == ' ' || val.front() == '\t'))
                val.erase(0, 1);
            if (!is_field_value(val))
                return usage("header \"" + v + "\" holds CR, LF or NUL");
            headers.emplace_back(lower(v.substr(0, colon)), val);
        } else if (a == "--client-ip") {
            if (!value(client_ip))
                return usage(a + " needs an address");
        } else if (a == "--protocol") {
            if (!value(protocol) || (protocol != "h1" && protocol != "h2" && protocol != "h3"))
                return usage("--protocol takes h1, h2 or h3");
        } else if (!a.empty() && a[0] == '-') {
            return usage("unknown option " + a);
        } else if (request_text.empty()) {
            request_text = a;
        } else {
            return usage("unexpected argument " + a);
        }
    }
    if (request_text.empty())
        return usage("which request? e.g. 'GET https://example.com/path'");
    std::string method = "GET", url = request_text;
    if (size_t sp = request_text.find(' '); sp != std::string::npos) {
        method = request_text.substr(0, sp);
        url = request_text.substr(sp + 1);
        while (!url.empty() && url.front() == ' ')
            url.erase(0, 1);
    }
    if (!is_token(method))
        return usage("\"" + method + "\" is not a method");
    std::string scheme;
    if (url.rfind("http://", 0) == 0)
        scheme = "http";
    else if (url.rfind("https://", 0) == 0)
        scheme = "https";
    else
        return usage("expected a URL like https://example.com/path, got \"" + url + "\"");
    std::string rest = url.substr(scheme.size() + 3);
    size_t slash = rest.find_first_of("/?");
    std::string authority = rest.substr(0, slash);
    std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
    if (target.front() == '?')
        target = "/" + target;
    if (authority.empty())
        return usage("the URL has no host");
    std::string host = lower(authority);
    if (host.front() == '[')
        host = host.substr(0, host.find(']') + 1);
    else if (size_t colon = host.find(':'); colon != std::string::npos)
        host = host.substr(0, colon);

    Diagnostics diag;
    auto config = load_config(config_path, diag);
    diag.print(!config, config_path);
    if (!config)
        return 1;

    ConnectionInfo conn;
    if (!set_peer(client_ip, conn))
        return usage("--client-ip \"" + client_ip + "\" is not an IP address");
    char ipbuf[INET6_ADDRSTRLEN];
    inet_ntop(conn.peer.family(),
              conn.peer.family() == AF_INET ? static_cast<const void*>(&conn.peer.v4.sin_addr)
                                            : static_cast<const void*>(&conn.peer.v6.sin6_addr),
              ipbuf, sizeof ipbuf);
    std::string peer_ip = ipbuf;
    conn.peer_ip = peer_ip;
    conn.peer_text = peer_ip;
    static const TlsInfo kTls{};
    conn.tls = scheme == "https" ? &kTls : nullptr;

    ModuleWorkers modules(ModuleRegistry::instance().all().size());
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.key == "geo")
            if (auto w = geo::make_worker(*config))
                modules.set(ModuleRegistry::instance().index_of(m), std::move(w));

    Arena arena;
    Request req;
    req.method = method;
    req.method_id = method_from(method);
    req.scheme = scheme;
    req.authority = authority;
    req.host = host;
    req.target = target;
    size_t q = target.find('?');
    req.path = std::string_view(target).substr(0, q);
    req.query =
        q == std::string::npos ? std::string_view{} : std::string_view(target).substr(q + 1);
    req.version = protocol == "h2" ? 20 : protocol == "h3" ? 30 : 11;
    for (const auto& [n, v] : headers)
        req.headers.add(n, v);
    req.conn = &conn;
    req.arena = &arena;
    req.modules = &modules;
    req.client_ip = conn.peer_ip;

    printf("request: %s %s://%s%s (%s, from %s)\n", method.c_str(), scheme.c_str(),
           authority.c_str(), target.c_str(), protocol.c_str(), peer_ip.c_str());
    NullWriter out;
    for (size_t i = 0; i < config->filters.chain.size(); ++i) {
        const Filter* f = config->filters.chain[i];
        if (!(f->phases() & phase_bit(Phase::request_head)))
            continue;
        if (f->request_head(req, out) != AccessVerdict::next) {
            printf("[server] %.*s answers %d before routing\n",
                   static_cast<int>(config->filters.chain_modules[i]->key.size()),
                   config->filters.chain_modules[i]->key.data(), out.status);
            return 1;
        }
    }
    if (req.client_ip != conn.peer_ip)
        printf("client address: %.*s (real_ip, behind %s)\n",
               static_cast<int>(req.client_ip.size()), req.client_ip.data(), peer_ip.c_str());
    else
        printf("client address: %s\n", peer_ip.c_str());

    Router router(*config);
    std::string trace;
    const Site* site = router.explain_site(req.host, trace);
    fputs(trace.c_str(), stdout);
    if (!site) {
        printf("result: 404 (no site)\n");
        return 1;
    }
    if (!normalize_path(req.path, arena, req.decoded_path)) {
        printf("result: 400 (bad path encoding or traversal)\n");
        return 1;
    }
    trace.clear();
    std::string error;
    bool ok = Router::resolve(*site, req, error, &trace);
    fputs(trace.c_str(), stdout);
    if (!ok) {
        printf("result: 500 (%s)\n", error.c_str());
        return 1;
    }
    if (!req.route) {
        printf("result: 404 (no route)\n");
        return 1;
    }
    const Route& r = *req.route;
    std::string filters;
    for (size_t i = 0; i < r.filters.chain.size(); ++i)
        filters += (filters.empty() ? "" : ", ") + std::string(r.filters.chain_modules[i]->key);
    printf("result: %s, handler %s%s%s\n", Router::describe(*site, r).c_str(),
           r.handler_name.empty() ? "(none)" : r.handler_name.c_str(),
           filters.empty() ? "" : ", filters: ", filters.c_str());
    if (req.rewrites)
        printf("uri after rewrites: %.*s%s%.*s\n", static_cast<int>(req.decoded_path.size()),
               req.decoded_path.data(), req.query.empty() ? "" : "?",
               static_cast<int>(req.query.size()), req.query.data());
    return 0;
}

} // namespace wraith
