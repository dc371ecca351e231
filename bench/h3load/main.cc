// h3load: an HTTP/3 load generator in the spirit of h2load -t1 (one thread, one libev loop),
// whose report h2load's parser reads. See tools/README.md.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench/h3load/bench.h"
#include "bench/h3load/h2_client.h"
#include "bench/h3load/quic_client.h"
#include "tools/h3/args.h"

namespace {

constexpr const char* kUsage =
    "usage: h3load [options] URL...\n"
    "       h3load --idle CONNS [--hold SECONDS] [options] URL\n"
    "  -c, --clients N           connections (default 1)\n"
    "  -m, --max-concurrent-streams N  requests in flight per connection (default 1)\n"
    "  -n, --requests N          total requests (default 1)\n"
    "  -D, --duration SECONDS    run for SECONDS instead of -n\n"
    "      --warm-up SECONDS     uncounted warm-up before the -D window\n"
    "  -k, --insecure            do not verify the server certificate\n"
    "      --cacert FILE         trust the CA certificates in FILE (PEM)\n"
    "      --resolve H:P:ADDR    connect to ADDR for host H, port P\n"
    "      --local-address ADDR  send from the numeric address ADDR (e.g. 127.0.0.5)\n"
    "  -H, --header 'N: v'       extra request header (repeatable)\n"
    "      --sni NAME            server name to send (and verify)\n"
    "      --alpn PROTO          ALPN to offer (default h3, or h2 with --h2)\n"
    "      --log-file FILE       per request: start (us since epoch), status, duration (us)\n"
    "      --connect-concurrency N  handshakes in flight at once (default 100)\n"
    "      --interval SECONDS    paced: each client sends a request every SECONDS (HTTP/3)\n"
    "      --new-connection      with --interval: each request on a new connection, its time\n"
    "                            counted from the connection's start\n"
    "      --idle CONNS          open CONNS connections, one GET each, then hold them idle\n"
    "      --hold SECONDS        how long --idle holds them (default: until SIGTERM/SIGINT)\n"
    "      --h2                  HTTP/2 over TLS (nghttp2 + OpenSSL) instead of HTTP/3\n"
    "  -v, --verbose             more on stderr\n";

bool usage_error(const std::string& message) {
    std::fprintf(stderr, "h3load: %s\n", message.c_str());
    return false;
}

bool parse_options(int argc, char** argv, h3load::Config& c) {
    h3::ArgReader args(argc, argv);
    std::string arg, value, error;
    bool requests_given = false;
    auto need = [&](const std::string& name) {
        return args.value(value) || usage_error(name + " needs a value");
    };
    auto count = [&](const std::string& name, uint64_t& out, uint64_t min) {
        if (!need(name)) {
            return false;
        }
        if (!h3::parse_size(value, out, true) || out < min) {
            return usage_error("bad value for " + name + ": " + value);
        }
        return true;
    };
    auto seconds = [&](const std::string& name, double& out) {
        if (!need(name)) {
            return false;
        }
        if (!h3::parse_seconds(value, out)) {
            return usage_error("bad seconds for " + name + ": " + value);
        }
        return true;
    };
    std::vector<std::string> url_texts;
    for (;;) {
        auto kind = args.next(arg);
        if (kind == h3::ArgReader::Kind::End) {
            break;
        }
        if (kind == h3::ArgReader::Kind::Positional) {
            url_texts.push_back(arg);
            continue;
        }
        uint64_t n = 0;
        if (arg == "-c" || arg == "--clients") {
            if (!count(arg, n, 1)) {
                return false;
            }
            c.connections = n;
        } else if (arg == "-m" || arg == "--max-concurrent-streams") {
            if (!count(arg, n, 1)) {
                return false;
            }
            c.streams = n;
        } else if (arg == "-n" || arg == "--requests") {
            if (!count(arg, n, 1)) {
                return false;
            }
            c.requests = n;
            requests_given = true;
        } else if (arg == "-D" || arg == "--duration") {
            if (!seconds(arg, c.duration)) {
                return false;
            }
            if (c.duration <= 0) {
                return usage_error("-D must be positive");
            }
        } else if (arg == "--warm-up" || arg == "--warm-up-time") {
            if (!seconds(arg, c.warm_up)) {
                return false;
            }
        } else if (arg == "-k" || arg == "--insecure") {
            c.insecure = true;
        } else if (arg == "--cacert") {
            if (!need(arg)) {
                return false;
            }
            c.cacert = value;
        } else if (arg == "--resolve") {
            h3::ResolveOverride r;
            if (!need(arg)) {
                return false;
            }
            if (!h3::parse_resolve(value, r, error)) {
                return usage_error(error);
            }
            c.resolves.push_back(r);
        } else if (arg == "--local-address") {
            if (!need(arg)) {
                return false;
            }
            if (!h3::parse_numeric_address(value, 0, c.local)) {
                return usage_error("--local-address must be a numeric address: " + value);
            }
        } else if (arg == "-H" || arg == "--header") {
            std::string name, v;
            if (!need(arg)) {
                return false;
            }
            if (!h3::parse_header_line(value, name, v, error)) {
                return usage_error(error);
            }
            if (name[0] == ':') {
                return usage_error("-H cannot set pseudo-header " + name);
            }
            c.headers.emplace_back(name, v);
        } else if (arg == "--sni") {
            if (!need(arg)) {
                return false;
            }
            c.sni = value;
            c.sni_given = true;
        } else if (arg == "--alpn") {
            if (!need(arg)) {
                return false;
            }
            c.alpn = value;
        } else if (arg == "--log-file") {
            if (!need(arg)) {
                return false;
            }
            c.log_file = value;
        } else if (arg == "--interval") {
            if (!seconds(arg, c.interval) || c.interval <= 0) {
                return usage_error("--interval needs seconds above 0");
            }
        } else if (arg == "--new-connection") {
            c.new_connection = true;
        } else if (arg == "--connect-concurrency") {
            if (!count(arg, n, 1)) {
                return false;
            }
            c.connect_concurrency = n;
        } else if (arg == "--idle") {
            if (!count(arg, n, 1)) {
                return false;
            }
            c.idle = n;
        } else if (arg == "--hold") {
            if (!seconds(arg, c.hold)) {
                return false;
            }
        } else if (arg == "--h2") {
            c.h2 = true;
        } else if (arg == "-v" || arg == "--verbose") {
            c.verbose = true;
        } else if (arg == "-h" || arg == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "h3load: unknown option %s\n%s", arg.c_str(), kUsage);
            return false;
        }
    }
    if (url_texts.empty()) {
        std::fputs(kUsage, stderr);
        return false;
    }
    for (const auto& text : url_texts) {
        h3::Url url;
        if (!h3::parse_url(text, url, error)) {
            return usage_error(error);
        }
        if (!c.urls.empty() && (url.host != c.urls[0].host || url.port != c.urls[0].port)) {
            return usage_error("all URLs must have the same host and port: " + text);
        }
        c.urls.push_back(std::move(url));
    }
    if (c.duration > 0 && requests_given) {
        return usage_error("-n and -D exclude each other");
    }
    if (c.duration > 0) {
        c.requests = 0;
    }
    if (c.warm_up > 0 && c.duration <= 0) {
        return usage_error("--warm-up needs -D");
    }
    if (c.idle > 0) {
        c.connections = c.idle;
        c.streams = 1;
        c.requests = 0;
        c.duration = 0;
    }
    if (c.interval > 0 && (c.h2 || c.idle > 0)) {
        return usage_error("--interval paces HTTP/3 load only (not --h2 or --idle)");
    }
    if (c.new_connection && c.interval <= 0) {
        return usage_error("--new-connection needs --interval");
    }
    if (c.alpn.empty()) {
        c.alpn = c.h2 ? "h2" : "h3";
    }
    return true;
}

// Every connection needs a descriptor: take the hard limit.
void raise_descriptor_limit(size_t connections) {
    rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < connections + 32) {
        std::fprintf(stderr, "h3load: warning: %zu connections but only %llu descriptors\n",
                     connections, static_cast<unsigned long long>(limit.rlim_cur));
    }
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    h3load::Config config;
    if (!parse_options(argc, argv, config)) {
        return 1;
    }
    raise_descriptor_limit(config.connections);
    struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
    h3load::Bench bench(loop, config);
    std::vector<std::unique_ptr<h3load::Client>> clients;
    std::string error;
    if (config.h2) {
        auto shared = std::make_unique<h3load::H2Shared>();
        if (!shared->init(config, error)) {
            std::fprintf(stderr, "h3load: %s\n", error.c_str());
            return 1;
        }
        for (size_t i = 0; i < config.connections; ++i) {
            clients.push_back(std::make_unique<h3load::H2Client>(bench, *shared));
        }
        int status = bench.run(std::move(clients));
        return status;
    }
    auto shared = std::make_unique<h3load::QuicShared>();
    if (!shared->init(config, error)) {
        std::fprintf(stderr, "h3load: %s\n", error.c_str());
        return 1;
    }
    for (size_t i = 0; i < config.connections; ++i) {
        clients.push_back(std::make_unique<h3load::QuicClient>(bench, *shared));
    }
    return bench.run(std::move(clients));
}
