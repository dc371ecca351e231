// The loaded, validated configuration of one worker generation. Immutable once built: a worker
// holds a std::shared_ptr<const Config>; a reload builds a new one.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "common/config_reader.h"
#include "common/regex.h"

namespace wraith {

class Handler;
class Filter;
class RouteCondition;
class RouteRewrite;
class StreamHandler;
class MimeTypes;
struct ModuleSpec;

struct ServerConfig {
    int workers = 0;               // 0 = "auto": one per CPU
    std::string user = "www-data"; // used only when the master runs as root
    std::string group;             // empty: the user's primary group
    std::string pid_file;          // default /run/wraith.pid (root) or ~/.wraith/wraith.pid
    std::string control_socket;    // default /run/wraith.sock (root) or ~/.wraith/wraith.sock
    std::string error_log = "stderr";
    std::string log_level = "info"; // error, warn, info, debug
    Duration drain_timeout{30000};
    std::string cert_dir;           // default /etc/wraith/certs (root) or ~/.wraith/certs
    std::string mime_types;         // path; default: mime.types beside the config file
    size_t max_connections = 10000; // per worker
    // Worker sandbox (worker/sandbox.h): a seccomp allow-list, and optionally Landlock confining
    // the file system to what the config names, plus `landlock_allow` (read-only).
    bool seccomp = true;
    bool landlock = false;
    std::vector<std::string> landlock_allow;
};

// HTTP limits and timeouts shared by every protocol ([http] table).
struct HttpConfig {
    uint64_t client_max_body_size = 1 << 20;
    uint64_t max_request_target = 8192;   // 414 above
    uint64_t max_header_size = 32768;     // request line + fields; 431 above
    uint64_t max_headers = 100;           // field lines; 431 above
    Duration header_timeout{15000};       // to receive a whole request head
    Duration body_timeout{30000};         // between two reads of a request body
    Duration keepalive_timeout{75000};    // idle between requests
    Duration send_timeout{30000};         // between two writes that make progress
    uint64_t keepalive_requests = 1000;   // then Connection: close
    std::string server_header = "wraith"; // "" to omit the Server field
};

// HTTP/2 limits ([http2] table). Flow-control windows bound how much request body a client
// may send ahead of the handler; the flood limits answer CVE-2023-44487 (rapid reset) and
// its relatives with GOAWAY(ENHANCE_YOUR_CALM).
struct Http2Config {
    uint32_t max_concurrent_streams = 128;      // SETTINGS_MAX_CONCURRENT_STREAMS
    uint32_t initial_window_size = 1 << 20;     // per stream, SETTINGS_INITIAL_WINDOW_SIZE
    uint32_t connection_window_size = 16 << 20; // whole connection (WINDOW_UPDATE on stream 0)
    uint32_t max_frame_size = 16384;            // SETTINGS_MAX_FRAME_SIZE we accept
    uint64_t max_header_list_size = 0;          // 0: http.max_header_size; 431 above
    uint32_t rapid_reset_limit = 100;           // RST_STREAM per second a client may send...
    uint32_t rapid_reset_burst = 1000;          // ...with this many at once
    uint32_t control_frame_limit = 100;         // PING + SETTINGS per second (burst the same)
    uint32_t max_continuations = 8;             // CONTINUATION frames after one HEADERS
};

// QUIC transport and HTTP/3 ([http3] table). Windows bound what a client may send ahead of
// the handler; the client's own windows bound downloads.
struct Http3Config {
    uint32_t max_connections = 10000;      // QUIC connections per worker
    uint32_t max_concurrent_streams = 100; // initial_max_streams_bidi
    uint64_t stream_window = 1 << 20;      // initial_max_stream_data_bidi_remote
    uint64_t connection_window = 16 << 20; // initial_max_data
    Duration idle_timeout{30000};          // max_idle_timeout
    Duration handshake_timeout{10000};
    enum class Retry { automatic, always, never };
    Retry retry = Retry::automatic;       // address validation with a Retry packet
    uint32_t retry_above = 200;           // automatic: new handshakes/s per worker
    uint32_t max_udp_payload_size = 1472; // PMTU ceiling we send and accept
    uint32_t qpack_table_size = 4096;     // SETTINGS_QPACK_MAX_TABLE_CAPACITY
    uint32_t qpack_blocked_streams = 100; // SETTINGS_QPACK_BLOCKED_STREAMS
    Duration alt_svc_max_age{86400000};   // "ma" of the Alt-Svc we announce on TCP
    // QUIC versions accepted, most preferred first: v2 (RFC 9369), v1 (RFC 9000). A client
    // that starts in one and lists another in version_information is moved to the most
    // preferred one both speak (compatible version negotiation, RFC 9368).
    static constexpr uint32_t kVersion1 = 0x00000001;
    static constexpr uint32_t kVersion2 = 0x6b3343cf;
    std::vector<uint32_t> versions{kVersion2, kVersion1};
    uint64_t udp_buffer_size = 8 << 20; // SO_RCVBUF / SO_SNDBUF asked for each socket
    // TLS 1.3 cipher suites QUIC handshakes may pick (RFC 9001 §5.3), by IANA name;
    // empty means all three.
    std::vector<std::string> cipher_suites;
};

// A stream (L4) protocol a listener carries (common/module.h StreamHandler).
struct ListenStream {
    std::string protocol; // the module's key: "tcp"
    std::string alpn;     // the ALPN id that picks it on TLS; "" when it is the only protocol
    std::shared_ptr<const StreamHandler> handler;
};

struct Site;

struct ListenConfig {
    SourcePos pos;
    std::string address; // as written
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    bool ipv6_only = false;
    int backlog = 511;
    bool tls = false;
    bool proxy_protocol = false;        // connections start with a PROXY header (v1 or v2)
    std::vector<std::string> protocols; // "h3", "h2", "http/1.1", "h2c", and stream protocols
    std::vector<ListenStream> streams;  // the stream protocols among them, with their handlers
    // A listener a module added ([admin]): every request goes to this site, whatever its Host.
    const Site* site = nullptr;
    // The QUIC application protocols modules add ("doq"), among `protocols`: each is a QUIC
    // ALPN this listener's UDP side answers besides "h3" (ModuleSpec::quic_application).
    std::vector<std::string> quic_protocols;
    bool h3() const {
        return std::find(protocols.begin(), protocols.end(), "h3") != protocols.end();
    }
    // Whether the listener answers QUIC on its UDP port: HTTP/3 or a module's QUIC protocol.
    bool quic() const { return h3() || !quic_protocols.empty(); }
    // Whether the listener's QUIC side answers ALPN `alpn`: "h3" and applications registered
    // outside modules (tests) where it carries "h3", a module's protocol where it names it.
    bool quic_offers(std::string_view alpn, bool module_protocol) const {
        if (module_protocol)
            return std::find(quic_protocols.begin(), quic_protocols.end(), alpn) !=
                   quic_protocols.end();
        return h3();
    }
    // Whether the listener speaks HTTP over TCP ("h3" and module QUIC protocols are QUIC's).
    bool http() const {
        return protocols.size() > streams.size() + quic_protocols.size() + (h3() ? 1 : 0);
    }
    // The stream protocol for a connection that negotiated `alpn` ("" without ALPN), or null.
    const ListenStream* stream_for(std::string_view alpn) const {
        for (const ListenStream& s : streams)
            if (!alpn.empty() ? s.alpn == alpn : !http() && streams.size() == 1)
                return &s;
        return nullptr;
    }
};

class VarString;

struct AccessLogConfig {
    std::string path;                // "" = off, "stdout", "stderr", or a file
    std::string format = "combined"; // "combined", "json", or "custom" (a template with $vars)
    std::shared_ptr<const VarString> custom; // the template of a "custom" format
    // How a template's values are escaped: as combined (\xHH for '"', '\\', control and
    // non-ASCII bytes), as inside a JSON string, or not at all.
    enum class Escape : uint8_t { standard, json, none };
    Escape escape = Escape::standard;
};

// How a route's `path` matches a request's decoded path.
struct PathMatch {
    enum class Kind { prefix, exact, regex };
    Kind kind = Kind::prefix;
    std::string text; // prefix or exact path, or the regex source
    std::shared_ptr<const Regex> regex;
};

// Filters configured in one scope ([server], a [[site]] or a [[site.route]]), and the chain a
// scope runs: its own filters merged over its parent's by module key (a scope's key replaces
// the inherited filter; `key = false` removes it), ordered by the modules' `order`.
struct FilterScope {
    // What this scope says about each key it mentions: a filter, or nullptr for `key = false`.
    std::vector<std::pair<const ModuleSpec*, std::unique_ptr<Filter>>> own;
    // The effective chain (observing: filters live in this scope or its parents).
    std::vector<const Filter*> chain;
    // The chain's module of each entry, parallel to `chain` (for inheritance and messages).
    std::vector<const ModuleSpec*> chain_modules;
    // Keys turned off here or above (`key = false`): a default-on filter stays off below.
    std::vector<const ModuleSpec*> off;
};

struct Route {
    SourcePos pos;
    PathMatch match;
    std::vector<std::unique_ptr<RouteCondition>> conditions; // all must hold (after the path)
    std::unique_ptr<RouteRewrite> rewrite; // internal rewrite (module key "rewrite"), or null
    std::string handler_name; // registry key: "static", "redirect", "respond"
    std::unique_ptr<Handler> handler;
    FilterScope filters; // the server's and site's, merged with its own
};

struct HostMatch {
    enum class Kind { exact, wildcard, regex };
    Kind kind = Kind::exact;
    std::string text; // lower-case; wildcard keeps the suffix (".example.com")
    std::shared_ptr<const Regex> regex;
};

// One certificate chain and its private key (PEM). A site may have several of different key
// types (RSA and ECDSA); the handshake uses what the client supports.
struct TlsCertificate {
    SourcePos pos;    // of the table or the cert value, for messages
    std::string cert; // resolved against server.cert_dir
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
    std::string client_ca; // PEM bundle of CAs that may issue client certificates
    std::string crl;       // PEM CRL(s) checked against client certificates; "" = none
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
    std::unique_ptr<SiteTls> tls; // null: no certificate of its own
    std::vector<HostMatch> hosts;
    bool is_default = false; // catches requests no other site claims
    bool listener_only = false; // a module listener's own site (ListenConfig::site): no Host
                                // routing reaches it
    AccessLogConfig access_log;
    std::map<int, std::string> error_pages; // status -> URI served in its place
    FilterScope filters;                    // the server's, merged with its own
    std::vector<Route> routes;              // file order
};

// A module's share of a config generation: what it read from the top-level tables it owns
// (ModuleSpec::load_table), e.g. the proxy module's [upstream.NAME] pools.
class ModuleConfig {
public:
    virtual ~ModuleConfig() = default;
};

struct Config {
    std::string path; // absolute path of the file it came from
    std::string dir;  // its directory: relative paths resolve against it
    ServerConfig server;
    HttpConfig http;
    Http2Config http2;
    Http3Config http3;
    AccessLogConfig access_log; // global default for sites without their own
    std::vector<ListenConfig> listeners;
    FilterScope filters; // [server]-level filters: every site inherits them
    std::vector<std::unique_ptr<Site>> sites;
    std::shared_ptr<const MimeTypes> mime;
    // By module key; set by the module's table loader.
    std::map<std::string, std::unique_ptr<ModuleConfig>, std::less<>> modules;

    // What module `key` stored, or nullptr (it has no table in this file, or none at all).
    template <class T> const T* module_config(std::string_view key) const {
        auto it = modules.find(key);
        return it == modules.end() ? nullptr : static_cast<const T*>(it->second.get());
    }

    ~Config();
};

// Loads and validates `path`. On failure returns nullptr and fills diag with every problem.
// `overrides`: TOML whose keys replace the file's (command-line -g; common/config_overrides.h).
std::shared_ptr<const Config> load_config(const std::string& path, Diagnostics& diag,
                                          std::string_view overrides = {});
// Same, from text (tests); `name` stands in for the file name in messages.
std::shared_ptr<const Config> load_config_text(std::string_view text, const std::string& name,
                                               const std::string& dir, Diagnostics& diag);

// $HOME, else the passwd entry's home, else /tmp: where non-root defaults live (~/.wraith).
std::string home_dir();

} // namespace wraith
