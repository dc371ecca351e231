// Internals of `wraith convert`: the settings NGINX inherits from http to server to location
// (Scope), what is being built for wraith.toml (the *Out structs), and the Converter that
// directive handlers (directives.cc) write into.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "convert/convert.h"

namespace wraith::convert {

// NGINX's contexts, as a bit set of where a directive may appear.
enum Ctx : unsigned {
    kMain = 1,
    kEvents = 2,
    kHttp = 4,
    kServer = 8,
    kLocation = 16,
    kUpstream = 32,
    kIf = 64,
    kAnyHttp = kHttp | kServer | kLocation | kIf,
};

// An NGINX "array" directive (add_header, proxy_set_header, error_page): a level inherits its
// parent's entries only when it sets none itself.
template <class T> struct Inherited {
    T value{};
    int level = -1; // the level whose entries `value` holds
    T& at(int l) {
        if (level != l) {
            value = T{};
            level = l;
        }
        return value;
    }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Return {
    int status = 0;
    std::string text; // URL for redirects, body otherwise
    SourceRef at;
};

struct Rewrite {
    std::string regex, replacement, flag;
    SourceRef at;
};

// limit_req zone=NAME [burst=N] [nodelay | delay=N], as written where it stands.
struct LimitReq {
    std::string zone;
    uint64_t burst = 0;
    bool nodelay = false;
    std::optional<uint64_t> delay;
    std::string written; // the directive, for reports
    SourceRef at;
};

// limit_conn NAME N.
struct LimitConn {
    std::string zone;
    uint64_t connections = 0;
    SourceRef at;
};

struct AccessLogSetting {
    std::string path;   // "off", a file, "stderr"
    std::string format; // wraith's: "combined" or "json"
    SourceRef at;
    bool set = false;
};

struct Scope {
    int level = 0; // 0 http, 1 server, 2 location, 3.. nested locations
    // static files
    std::string root = "/usr/share/nginx/html"; // Debian nginx's compiled-in prefix + "html"
    SourceRef root_at;
    std::string alias; // not inherited
    SourceRef alias_at;
    std::vector<std::string> index{"index.html"};
    bool autoindex = false;
    std::vector<std::string> try_files; // not inherited
    SourceRef try_files_at;
    std::string charset;                     // "" = off (nginx's default)
    std::string default_type = "text/plain"; // nginx's compiled-in default
    std::string cache_control;               // from expires
    // compression
    bool gzip = false;
    int gzip_level = 1;
    std::string gzip_min_length = "20";
    std::vector<std::string> gzip_types{"text/html"};
    bool gzip_static = false;
    // headers and error pages
    Inherited<Headers> add_headers;
    SourceRef add_header_at;
    Inherited<std::map<int, std::string>> error_pages;
    // proxy
    std::string proxy_pass; // not inherited
    SourceRef proxy_pass_at;
    Inherited<Headers> proxy_set_headers;
    SourceRef proxy_set_header_at;
    std::vector<std::string> proxy_hide_headers;
    std::optional<uint64_t> proxy_connect_ms, proxy_read_ms, proxy_send_ms;
    std::optional<bool> proxy_request_buffering;
    std::optional<bool> proxy_redirect_default;
    std::vector<int> proxy_next_upstream_statuses;
    std::optional<int> proxy_next_upstream_tries;
    // return / rewrite: not inherited
    std::optional<Return> ret;
    bool stub_status = false; // stub_status: a `metrics = {}` route
    std::vector<Rewrite> rewrites;
    // access control: allow/deny rules in order (true = allow), an array directive
    Inherited<std::vector<std::pair<bool, std::string>>> access;
    SourceRef access_at;
    std::string auth_basic; // the realm; "" = unset, "off" = off
    std::string auth_basic_user_file;
    SourceRef auth_basic_at;
    std::string auth_request; // a URI, "off" or ""
    SourceRef auth_request_at;
    std::vector<std::string> auth_request_copy; // fields of auth_request_set $v $upstream_http_X
    // rate, connection and bandwidth limits (limits.cc); limit_req and limit_conn are array
    // directives, the others inherit plainly
    Inherited<std::vector<LimitReq>> limit_req;
    std::optional<int> limit_req_status;
    bool limit_req_dry_run = false;
    Inherited<std::vector<LimitConn>> limit_conn;
    std::optional<int> limit_conn_status;
    bool limit_conn_dry_run = false;
    SourceRef limit_conn_dry_run_at;
    std::string limit_rate, limit_rate_after; // sizes as written; "" or "0": off
    SourceRef limit_rate_at;
    // TLS (server level; ssl_protocols etc. may come from http)
    std::vector<std::pair<std::string, std::string>> certificates; // cert, key
    std::vector<std::string> ssl_certificate, ssl_certificate_key;
    SourceRef ssl_at;
    std::string tls_min_version; // "" default, "1.2", "1.3"
    std::string client_ca, crl, ocsp_staple;
    std::string verify_client; // "", "on", "optional"
    bool stapling = false;
    // logs
    AccessLogSetting access_log;
};

struct Line {
    std::string key;
    std::string value;   // TOML text
    std::string comment; // "" or a comment for the end of the line / above
};

struct ListenOut {
    std::string address;
    bool tls = false;
    std::vector<std::string> protocols;
    std::optional<bool> ipv6_only;
    std::optional<int> backlog;
    std::vector<std::string> comments;
};

struct RouteOut {
    std::string path;
    std::string handler;  // "static", "proxy", "redirect", "respond", or "rewrite" (no handler)
    std::string options;  // inline table text "{ ... }"
    std::string compress; // "" or TOML value
    std::vector<std::string> extra; // further "key = value" lines (allow, basic_auth ...)
    std::vector<std::string> comments;
};

struct SiteOut {
    std::vector<std::string> hosts;
    bool is_default = false;
    std::string tls;         // inline table or ""
    std::string error_pages; // inline table or ""
    std::string access_log;  // inline table or ""
    std::vector<RouteOut> routes;
    std::vector<std::string> comments;
    SourceRef at;
};

struct UpstreamOut {
    std::string name;
    std::vector<Line> lines;
    std::vector<std::string> comments;
};

// A [limit.NAME] table: an NGINX limit_req_zone or limit_conn_zone, or a bandwidth made for
// limit_rate. NGINX gives burst, nodelay and status where a zone is used, Wraith on the zone:
// the first use settles them (`use`), a later use that differs is an approximation.
struct LimitZoneOut {
    enum class Kind { requests, connections, bandwidth };
    std::string name; // Wraith's NAME (NGINX's, if it is a valid one)
    Kind kind = Kind::requests;
    std::vector<Line> lines;           // rate/key/size or bandwidth, then what the first use set
    std::vector<std::string> comments; // where it came from, how it differs from NGINX
    std::string use;                   // what the first use set, to compare later uses with
    SourceRef use_at;
};

// A server block as read: its scope, names and listeners, before host names claimed by two
// servers are settled and its locations become routes.
struct ServerInfo {
    const NginxDirective* block = nullptr;
    Scope scope;
    std::vector<std::string> hosts;       // Wraith host patterns
    std::vector<std::string> listen_keys; // addresses of its listeners
    bool has_tls_listener = false;
    bool has_plain_listener = false;
    bool is_default = false;
    std::vector<std::string> approximations; // noted while its own directives were read
};

class Converter;
using Handler = void (*)(Converter&, Scope&, const NginxDirective&);

struct DirectiveSpec {
    const char* name;
    unsigned contexts;
    Handler handler;     // null: see `not_yet` or `ignored`
    const char* not_yet; // no Wraith equivalent yet: the reason, reported with FILE:LINE
    const char* ignored; // nothing to do in Wraith: why (a comment, not an approximation)
};

// UTF-8 checks: TOML text must be UTF-8; NGINX's files need not be.
bool valid_utf8(std::string_view s);
std::string utf8_or_replaced(std::string_view s); // invalid bytes become U+FFFD

// The table of every directive the converter knows (directives.cc).
const DirectiveSpec* find_directive(const std::string& name);

class Converter {
public:
    ConvertResult run(const NginxConf& conf, const std::string& main_file);

    // For handlers.
    void approx(const SourceRef& at, const std::string& text);
    void not_converted(const NginxDirective& d, const std::string& why);
    void not_converted_at(const SourceRef& at, const std::string& what, const std::string& why);
    void ignored(const NginxDirective& d, const std::string& why);
    // "30s", "1m", "500ms", "1h30m", "10" (seconds) -> milliseconds.
    std::optional<uint64_t> parse_time(const std::string& text) const;
    static std::string duration(uint64_t ms);
    static std::string quote(const std::string& s);
    static std::string quote_list(const std::vector<std::string>& v);
    // "{ a = 1, b = 2 }" from "key = value" items; a key given twice keeps its first value
    // (proxy_set_header Host twice, weight=1 weight=2), which TOML requires.
    static std::string inline_table(const std::vector<std::string>& items);
    bool check_args(const NginxDirective& d, size_t lo, size_t hi);
    // Approximations noted so far; those noted while a block was read are also written as
    // comments on what it became (route, site).
    const std::vector<std::string>& approximations() const { return result_.approximations; }

    std::map<std::string, Line> server;             // [server] key -> line
    std::map<std::string, Line> http;               // [http]
    std::map<std::string, std::string> log_formats; // name -> format text
    // real_ip: set_real_ip_from blocks, real_ip_header, real_ip_recursive (http level).
    std::vector<std::string> real_ip_from;
    std::string real_ip_header = "X-Real-IP"; // NGINX's default
    bool real_ip_recursive = false;
    SourceRef real_ip_at;
    std::string mime_types;                         // the file a types {} block came from
    SourceRef mime_types_at;
    std::vector<UpstreamOut> upstreams;
    std::map<std::string, size_t> upstream_index;
    // [limit.NAME] tables by NGINX zone name (limits.cc); zones whose limit_*_zone was reported
    // as not converted, so that their uses are reported once, with the reason; what has been
    // reported or noted once already (FILE:LINE and what).
    std::vector<LimitZoneOut> limit_zones;
    std::map<std::string, size_t> limit_zone_index;
    std::set<std::string> limit_zones_failed;
    std::set<std::string> limit_said;
    std::vector<std::string> server_limits; // connection zones: [server] limit
    unsigned context = kMain;

    // An [upstream.NAME] made for a route's proxy_pass (a URL, or settings of the route);
    // returns its name.
    std::string implicit_upstream(const std::string& server, bool tls, const SourceRef& at);
    UpstreamOut& upstream(const std::string& name) { return upstreams[upstream_index.at(name)]; }
    void set_upstream(UpstreamOut& u, const std::string& key, const std::string& value,
                      const SourceRef& at);
    // Paths relative to NGINX's configuration directory or prefix, made absolute.
    std::string conf_path(const std::string& p) const;
    std::string prefix_path(const std::string& p) const;
    const std::string& main_file() const { return main_file_; }
    void apply(Scope& scope, const NginxDirective& d, unsigned ctx);

private:
    std::vector<std::string> header_comments_;
    std::vector<ListenOut> listens_;
    std::vector<SiteOut> sites_;
    std::vector<std::string> ignored_;
    ConvertResult result_;
    std::string main_file_;
    std::string conf_dir_;
    AccessLogSetting http_access_log_;
    int implicit_upstreams_ = 0;
    int unnamed_sites_ = 0; // servers without a name get distinct never-matching patterns

    void walk_main(const std::vector<NginxDirective>& top);
    void walk_http(const NginxDirective& http);
    void walk_upstream(const NginxDirective& up);
    ServerInfo read_server(const NginxDirective& server, const Scope& http_scope);
    void read_listen(ServerInfo& info, const NginxDirective& d, bool http2, bool http3);
    void read_server_name(ServerInfo& info, const NginxDirective& d);
    void emit_site(ServerInfo& info);
    std::string render() const;
};

} // namespace wraith::convert
