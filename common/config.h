// The loaded, validated configuration of one worker generation. Immutable once built: a worker
// holds a std::shared_ptr<const Config>; a reload builds a new one.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "common/config_reader.h"

namespace wraith {

class Handler;
class Filter;
class MimeTypes;

struct ServerConfig {
    int workers = 0;                 // 0 = "auto": one per CPU
    std::string user = "www-data";   // used only when the master runs as root
    std::string group;               // empty: the user's primary group
    std::string pid_file;            // default /run/wraith.pid (root) or ~/.wraith/wraith.pid
    std::string control_socket;      // default /run/wraith.sock (root) or ~/.wraith/wraith.sock
    std::string error_log = "stderr";
    std::string log_level = "info";  // error, warn, info, debug
    Duration drain_timeout{30000};
    std::string cert_dir;            // default /etc/wraith/certs (root) or ~/.wraith/certs
    std::string mime_types;          // path; default: mime.types beside the config file
    size_t max_connections = 10000;  // per worker
};

// HTTP limits and timeouts shared by every protocol ([http] table).
struct HttpConfig {
    uint64_t client_max_body_size = 1 << 20;
    uint64_t max_request_target = 8192;  // 414 above
    uint64_t max_header_size = 32768;    // request line + fields; 431 above
    uint64_t max_headers = 100;          // field lines; 431 above
    Duration header_timeout{15000};      // to receive a whole request head
    Duration body_timeout{30000};        // between two reads of a request body
    Duration keepalive_timeout{75000};   // idle between requests
    Duration send_timeout{30000};        // between two writes that make progress
    uint64_t keepalive_requests = 1000;  // then Connection: close
    std::string server_header = "wraith"; // "" to omit the Server field
};

// HTTP/2 limits ([http2] table). Flow-control windows bound how much request body a client
// may send ahead of the handler; the flood limits answer CVE-2023-44487 (rapid reset) and
// its relatives with GOAWAY(ENHANCE_YOUR_CALM).
struct Http2Config {
    uint32_t max_concurrent_streams = 128;     // SETTINGS_MAX_CONCURRENT_STREAMS
    uint32_t initial_window_size = 1 << 20;    // per stream, SETTINGS_INITIAL_WINDOW_SIZE
    uint32_t connection_window_size = 16 << 20; // whole connection (WINDOW_UPDATE on stream 0)
    uint32_t max_frame_size = 16384;           // SETTINGS_MAX_FRAME_SIZE we accept
    uint64_t max_header_list_size = 0;         // 0: http.max_header_size; 431 above
    uint32_t rapid_reset_limit = 100;          // RST_STREAM per second a client may send...
    uint32_t rapid_reset_burst = 1000;         // ...with this many at once
    uint32_t control_frame_limit = 100;        // PING + SETTINGS per second (burst the same)
    uint32_t max_continuations = 8;            // CONTINUATION frames after one HEADERS
};

// QUIC transport and HTTP/3 ([http3] table). Windows bound what a client may send ahead of
// the handler; the client's own windows bound downloads.
struct Http3Config {
    uint32_t max_connections = 10000;          // QUIC connections per worker
    uint32_t max_concurrent_streams = 100;     // initial_max_streams_bidi
    uint64_t stream_window = 1 << 20;          // initial_max_stream_data_bidi_remote
    uint64_t connection_window = 16 << 20;     // initial_max_data
    Duration idle_timeout{30000};              // max_idle_timeout
    Duration handshake_timeout{10000};
    enum class Retry { automatic, always, never };
    Retry retry = Retry::automatic;            // address validation with a Retry packet
    uint32_t retry_above = 200;                // automatic: new handshakes/s per worker
    uint32_t max_udp_payload_size = 1472;      // PMTU ceiling we send and accept
    uint32_t qpack_table_size = 4096;          // SETTINGS_QPACK_MAX_TABLE_CAPACITY
    uint32_t qpack_blocked_streams = 100;      // SETTINGS_QPACK_BLOCKED_STREAMS
    Duration alt_svc_max_age{86400000};        // "ma" of the Alt-Svc we announce on TCP
    // QUIC versions accepted, most preferred first: v2 (RFC 9369), v1 (RFC 9000). A client
    // that starts in one and lists another in version_information is moved to the most
    // preferred one both speak (compatible version negotiation, RFC 9368).
    static constexpr uint32_t kVersion1 = 0x00000001;
    static constexpr uint32_t kVersion2 = 0x6b3343cf;
    std::vector<uint32_t> versions{kVersion2, kVersion1};
    uint64_t udp_buffer_size = 8 << 20;        // SO_RCVBUF / SO_SNDBUF asked for each socket
    // TLS 1.3 cipher suites QUIC handshakes may pick (RFC 9001 §5.3), by IANA name;
    // empty means all three.
    std::vector<std::string> cipher_suites;
};

struct ListenConfig {
    SourcePos pos;
    std::string address;             // as written
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    bool ipv6_only = false;
    int backlog = 511;
    bool tls = false;
    std::vector<std::string> protocols; // "h3", "h2", "http/1.1", "h2c"
    bool quic() const { return std::find(protocols.begin(), protocols.end(), "h3") != protocols.end(); }
};

struct AccessLogConfig {
    std::string path;                // "" = off, "stdout", "stderr", or a file
    std::string format = "combined"; // "combined" or "json"
};

// How a route's `path` matches a request's decoded path.
struct PathMatch {
    enum class Kind { prefix, exact, regex };
    Kind kind = Kind::prefix;
    std::string text;                // prefix or exact path, or the regex source
    std::shared_ptr<const std::regex> regex;
};

struct Route {
    SourcePos pos;
    PathMatch match;
    std::string handler_name;                 // registry key: "static", "redirect", "respond"
    std::unique_ptr<Handler> handler;
    std::vector<std::unique_ptr<Filter>> filters; // every phase, in pipeline order
};

struct HostMatch {
    enum class Kind { exact, wildcard, regex };
    Kind kind = Kind::exact;
    std::string text;                // lower-case; wildcard keeps the suffix (".example.com")
    std::shared_ptr<const std::regex> regex;
};

// One certificate chain and its private key (PEM). A site may have several of different key
// types (RSA and ECDSA); the handshake uses what the client supports.
struct TlsCertificate {
    SourcePos pos;     // of the table or the cert value, for messages
    std::string cert;  // resolved against server.cert_dir
    std::string key;
};

// A site's TLS settings ([[site]] tls = { ... }).
struct SiteTls {
    SourcePos pos;
    std::vector<TlsCertificate> certificates;
    int min_version = 0x0303; // TLS1_2_VERSION or TLS1_3_VERSION
    // Client certificates (mTLS).
    enum class ClientAuth { off, optional, require };
    ClientAuth client_auth = ClientAuth::off;
    std::string client_ca;    // PEM bundle of CAs that may issue client certificates
    std::string crl;          // PEM CRL(s) checked against client certificates; "" = none
    SourcePos client_ca_pos;
    // OCSP stapling from a file (DER OCSP response for the first certificate), refreshed on
    // reload; "" = no stapling.
    std::string ocsp_staple;
    SourcePos ocsp_staple_pos;
    // Without a file: fetch responses from the certificate's OCSP responder (AIA) in the
    // background and staple them.
    bool ocsp_fetch = true;
    // QUIC 0-RTT: safe methods may be served from early data, the rest get 425 Too Early.
    bool early_data = false;
};

struct Site {
    SourcePos pos;
    std::unique_ptr<SiteTls> tls;     // null: no certificate of its own
    std::vector<HostMatch> hosts;
    bool is_default = false;          // catches requests no other site claims
    AccessLogConfig access_log;
    std::map<int, std::string> error_pages; // status -> URI served in its place
    std::vector<Route> routes;        // file order
};

// One server of an [upstream.NAME] table: an IP literal and port (host names come later).
struct UpstreamServer {
    std::string address;             // as written: "127.0.0.1:9000", "[::1]:9001", "app:80",
                                     // "unix:/run/app.sock"
    sockaddr_storage addr{};         // an IP literal's or a Unix socket's address; unset for a
                                     // host name
    socklen_t addr_len = 0;
    std::string host;                // a host name, resolved by each worker (DNS TTLs)
    uint16_t port = 0;
    int weight = 1;                  // share of requests (round_robin, hashing, random_two)
    uint32_t max_conns = 0;          // connections per worker at once; 0 = no limit
    bool backup = false;             // used only when no primary server is usable
    bool down = false;               // never used (kept for hash placement)
};

// Active health checks of an upstream's servers ([upstream.NAME.health_check]): one worker
// probes every server each `interval`; `fall` failures in a row take a server out of
// service for every worker, `rise` successes in a row bring it back.
struct HealthCheckConfig {
    bool enabled = false;
    bool http = true;             // type = "http" (a GET whose answer is judged) or "tcp"
    std::string path = "/";       // http: the request target
    std::string host;             // http: Host header; "" = the server's host (or address)
    std::vector<std::pair<int, int>> statuses{{200, 399}}; // http: accepted ranges
    std::string body;             // http: the answer must contain this ("" = any)
    Duration interval{5000};
    Duration timeout{2000};       // connect + answer
    uint32_t rise = 2;
    uint32_t fall = 3;
};

// Sticky sessions ([upstream.NAME] sticky = { cookie = "NAME", ... }): a client that carries
// the cookie goes back to the server it names while that server is usable; otherwise the
// balancer picks and the response sets the cookie.
struct StickyConfig {
    std::string cookie;           // "" = off
    std::string path = "/";
    Duration max_age{0};          // 0: a session cookie
    bool secure = false;          // also set automatically for requests that came over TLS
    bool http_only = true;
    std::string same_site = "Lax"; // Strict, Lax, None, or "" to leave it out
};

namespace proxy {
class UpstreamTlsContext; // modules/proxy/upstream_tls.h: the SSL_CTX built from UpstreamTls
}

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
    std::shared_ptr<const proxy::UpstreamTlsContext> context;
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
    std::string resolver;                // "ip:port,..." for host names; "" = resolv.conf
    uint32_t keepalive = 32;             // idle connections kept per worker
    uint32_t keepalive_requests = 1000;  // requests per upstream connection, then it closes
    // Answers that count as the server's failure (passive health) and are retried elsewhere
    // when the request can be (NGINX's proxy_next_upstream http_502 ...); empty: none.
    std::vector<int> fail_statuses;
    Duration keepalive_timeout{60000};   // an idle connection is closed after this
    Duration connect_timeout{5000};
    Duration read_timeout{60000};        // to the first response byte and between reads
    Duration send_timeout{60000};        // between two writes that make progress
    Duration first_byte_timeout{0};      // to the first response byte; 0 = read_timeout
    Duration total_timeout{0};           // the whole exchange (not tunnels); 0 = no limit
    HealthCheckConfig health_check;
    StickyConfig sticky;
    std::shared_ptr<UpstreamTls> tls;    // null: plain HTTP
    bool http2 = false;                  // protocol = "h2": h2 over TLS (ALPN), else h2c
};

// "127.0.0.1:9000", "[::1]:9001", "unix:/run/app.sock" -> out.addr, or "app.internal:9000" ->
// out.host/port; "" on success, else the message for the user.
std::string parse_upstream_address(std::string_view text, UpstreamServer& out);

struct Config {
    std::string path;                 // absolute path of the file it came from
    std::string dir;                  // its directory: relative paths resolve against it
    ServerConfig server;
    HttpConfig http;
    Http2Config http2;
    Http3Config http3;
    AccessLogConfig access_log;       // global default for sites without their own
    std::vector<ListenConfig> listeners;
    std::vector<std::unique_ptr<Site>> sites;
    std::map<std::string, std::shared_ptr<UpstreamConfig>> upstreams; // [upstream.NAME]
    std::shared_ptr<const MimeTypes> mime;

    ~Config();
};

// Loads and validates `path`. On failure returns nullptr and fills diag with every problem.
std::shared_ptr<const Config> load_config(const std::string& path, Diagnostics& diag);
// Same, from text (tests); `name` stands in for the file name in messages.
std::shared_ptr<const Config> load_config_text(std::string_view text, const std::string& name,
                                               const std::string& dir, Diagnostics& diag);

// $HOME, else the passwd entry's home, else /tmp: where non-root defaults live (~/.wraith).
std::string home_dir();

// Resolves `p` against `base_dir` unless it is absolute.
std::string resolve_path(const std::string& base_dir, const std::string& p);

} // namespace wraith
