// The proxy module's configuration: [upstream.NAME] tables (servers, balancing, passive and
// active health, sticky sessions, TLS, timeouts), which the module owns and loads itself
// (ModuleSpec::load_table), and the implicit one-server upstream of `proxy = { pass = ... }`.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/socket.h>

#include "common/config.h"

namespace toml {
inline namespace v3 {
class node;
} // namespace v3
} // namespace toml

namespace wraith {
struct TableContext;
}

namespace wraith::proxy {

// One server of an [upstream.NAME] table: an IP literal and port, a host name and port, or a
// Unix socket.
struct UpstreamServer {
    std::string address;     // as written: "127.0.0.1:9000", "[::1]:9001", "app:80",
                             // "unix:/run/app.sock"
    sockaddr_storage addr{}; // an IP literal's or a Unix socket's address; unset for a
                             // host name
    socklen_t addr_len = 0;
    std::string host; // a host name, resolved by each worker (DNS TTLs)
    uint16_t port = 0;
    int weight = 1;         // share of requests (round_robin, hashing, random_two)
    uint32_t max_conns = 0; // connections per worker at once; 0 = no limit
    bool backup = false;    // used only when no primary server is usable
    bool down = false;      // never used (kept for hash placement)
};

// Active health checks of an upstream's servers ([upstream.NAME.health_check]): one worker
// probes every server each `interval`; `fall` failures in a row take a server out of
// service for every worker, `rise` successes in a row bring it back.
struct HealthCheckConfig {
    bool enabled = false;
    bool http = true;       // type = "http" (a GET whose answer is judged) or "tcp"
    std::string path = "/"; // http: the request target
    std::string host;       // http: Host header; "" = the server's host (or address)
    std::vector<std::pair<int, int>> statuses{{200, 399}}; // http: accepted ranges
    std::string body; // http: the answer must contain this ("" = any)
    Duration interval{5000};
    Duration timeout{2000}; // connect + answer
    uint32_t rise = 2;
    uint32_t fall = 3;
};

// Sticky sessions ([upstream.NAME] sticky = { cookie = "NAME", ... }): a client that carries
// the cookie goes back to the server it names while that server is usable; otherwise the
// balancer picks and the response sets the cookie.
struct StickyConfig {
    std::string cookie; // "" = off
    std::string path = "/";
    Duration max_age{0}; // 0: a session cookie
    bool secure = false; // also set automatically for requests that came over TLS
    bool http_only = true;
    std::string same_site = "Lax"; // Strict, Lax, None, or "" to leave it out
};

class UpstreamTlsContext; // modules/proxy/upstream_tls.h: the SSL_CTX built from UpstreamTls
class QuicTlsContext;     // modules/proxy/h3_tls.h: the GnuTLS credentials of an h3 upstream

// HTTPS to an upstream ([upstream.NAME] tls = true | { ... }, or pass = "https://...").
// Paths are resolved against server.cert_dir, like a site's.
struct UpstreamTls {
    SourcePos pos;      // of the tls value, for messages
    bool verify = true; // check the server's certificate chain and name
    std::string ca;     // PEM bundle of trusted CAs; "" = the system store
    SourcePos ca_pos;
    // The name sent as SNI and checked against the certificate; "" = each server's host name
    // (an IP literal server is checked against its IP SANs and gets no SNI).
    std::string server_name;
    std::string cert; // client certificate chain (mTLS to the upstream); "" = none
    std::string key;  // its private key
    SourcePos cert_pos;
    int min_version = 0x0303;  // TLS1_2_VERSION or TLS1_3_VERSION
    bool session_reuse = true; // resume the last session per server and worker
    // Built at load time by the proxy module (before workers fork); shared by every worker.
    std::shared_ptr<const UpstreamTlsContext> context;
    // protocol = "h3": the same trust and client certificate for QUIC (GnuTLS), built with it.
    std::shared_ptr<const QuicTlsContext> quic_context;
};

// A named pool of servers ([upstream.NAME]) or the implicit one-server pool of a route's
// proxy = { pass = "http://..." }. Connection pools are per worker and keyed by this object.
struct UpstreamConfig {
    SourcePos pos;
    std::string name;
    std::vector<UpstreamServer> servers;
    std::string balance = "round_robin"; // round_robin, least_conn, random_two, hash
    std::string hash_key = "client_ip";  // hash: client_ip, uri, header:NAME, cookie:NAME
    std::string hash_method = "ring";    // hash: ring (ketama) or maglev
    // Passive health: max_fails failures (connect errors, timeouts, fail_statuses answers)
    // within fail_timeout take a server out for fail_timeout, doubling on each repeat (up to
    // 8x) while it keeps failing. Counted across all workers. max_fails = 0: never.
    uint32_t max_fails = 1;
    Duration fail_timeout{10000};
    // Retries to another server: only before any response byte, only for idempotent methods
    // (or all with retry_non_idempotent), at most `retries` per request, and within a budget
    // of retry_budget percent of this worker's requests to the upstream.
    uint32_t retries = 1;
    uint32_t retry_budget = 20;
    bool retry_non_idempotent = false;
    std::string resolver;               // "ip:port,..." for host names; "" = resolv.conf
    uint32_t keepalive = 32;            // idle connections kept per worker
    uint32_t keepalive_requests = 1000; // requests per upstream connection, then it closes
    // Answers that count as the server's failure (passive health) and are retried elsewhere
    // when the request can be (NGINX's proxy_next_upstream http_502 ...); empty: none.
    std::vector<int> fail_statuses;
    Duration keepalive_timeout{60000}; // an idle connection is closed after this
    Duration connect_timeout{5000};
    Duration read_timeout{60000};   // to the first response byte and between reads
    Duration send_timeout{60000};   // between two writes that make progress
    Duration first_byte_timeout{0}; // to the first response byte; 0 = read_timeout
    Duration total_timeout{0};      // the whole exchange (not tunnels); 0 = no limit
    HealthCheckConfig health_check;
    StickyConfig sticky;
    std::shared_ptr<UpstreamTls> tls; // null: plain HTTP
    bool http2 = false;               // protocol = "h2": h2 over TLS (ALPN), else h2c
    bool http3 = false;               // protocol = "h3" (pass = "h3://"): HTTP/3 over QUIC
    // fallback = "h2" (h3 only): when a QUIC handshake does not complete within
    // connect_timeout (UDP blocked), the request goes over HTTP/2 on TLS to the same host and
    // port on TCP, and so do the server's next requests for a while.
    bool fallback_h2 = false;
};

// "127.0.0.1:9000", "[::1]:9001", "unix:/run/app.sock" -> out.addr, or "app.internal:9000" ->
// out.host/port; "" on success, else the message for the user.
std::string parse_upstream_address(std::string_view text, UpstreamServer& out);

// What the proxy module keeps of a config generation.
struct ProxyConfig final : ModuleConfig {
    std::map<std::string, std::shared_ptr<UpstreamConfig>> upstreams; // [upstream.NAME]
};

// The [upstream.NAME] tables of `config`, or nullptr when it has none.
const ProxyConfig* proxy_config(const Config& config);
// The named upstream of `config`, or nullptr.
std::shared_ptr<const UpstreamConfig> find_upstream(const Config& config, std::string_view name);

// ModuleSpec::load_table for "upstream": every [upstream.NAME] table.
void load_upstream_tables(const toml::node& value, TableContext& ctx);

} // namespace wraith::proxy
