// Variables with a value once the exchange ended, for access-log formats (NGINX's names):
// how it ended ($status, $body_bytes_sent, $request_time ...), the TLS and QUIC details of its
// connection, and what its upstream did ($upstream_*). Before the log phase (a header rule),
// the ones that need the end are empty.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/http.h"
#include "common/module.h"
#include "common/variables.h"

namespace wraith {

namespace {

std::string_view print(Arena& a, const char* fmt, auto... args) {
    char buf[64];
    int n = std::snprintf(buf, sizeof(buf), fmt, args...);
    if (n <= 0)
        return {};
    return a.copy(std::string_view(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1))));
}

// Microseconds as seconds with milliseconds ("0.012"), as NGINX prints times; "-" for none.
std::string_view seconds(Arena& a, int64_t us) {
    if (us < 0)
        return "-";
    return print(a, "%" PRId64 ".%03" PRId64, us / 1000000, us % 1000000 / 1000);
}

std::string_view time_text(const Request& r, Arena& a, const char* fmt) {
    struct tm tm;
    time_t t = r.start.tv_sec;
    localtime_r(&t, &tm);
    char buf[64];
    size_t n = std::strftime(buf, sizeof(buf), fmt, &tm);
    return a.copy(std::string_view(buf, n));
}

const UpstreamReport* upstream(const Request& r) {
    return r.upstream && r.upstream->tries ? r.upstream : nullptr;
}

} // namespace

void add_log_variables(Variables& v) {
    using S = std::string_view;
    v.add("status", [](const Request& r, S, Arena& a) -> S {
        return r.summary ? print(a, "%d", r.summary->status) : S{};
    });
    v.add("body_bytes_sent", [](const Request& r, S, Arena& a) -> S {
        return r.summary ? print(a, "%" PRIu64, r.summary->body_bytes) : S{};
    });
    v.add("request_length", [](const Request& r, S, Arena& a) -> S {
        return r.summary ? print(a, "%" PRIu64, r.summary->request_bytes) : S{};
    });
    v.add("request_time", [](const Request& r, S, Arena& a) -> S {
        return r.summary ? seconds(a, static_cast<int64_t>(r.summary->duration_us)) : S{};
    });
    v.add("request_time_us", [](const Request& r, S, Arena& a) -> S {
        return r.summary ? print(a, "%" PRIu64, r.summary->duration_us) : S{};
    });
    v.add("request", [](const Request& r, S, Arena& a) -> S {
        // "GET /path?q HTTP/1.1", as the request line of any version.
        const S version = r.version == 10   ? "HTTP/1.0"
                          : r.version == 20 ? "HTTP/2.0"
                          : r.version == 30 ? "HTTP/3.0"
                                            : "HTTP/1.1";
        const size_t n = r.method.size() + r.target.size() + version.size() + 2;
        char* out = static_cast<char*>(a.alloc(n, 1));
        char* at = out;
        for (S part : {r.method, S(" "), r.target, S(" "), version}) {
            if (!part.empty()) // an empty view may have no data() at all
                std::memcpy(at, part.data(), part.size());
            at += part.size();
        }
        return {out, n};
    });
    v.add("remote_addr", [](const Request& r, S, Arena&) { return client_ip_of(r); });
    v.add("time_local",
          [](const Request& r, S, Arena& a) { return time_text(r, a, "%d/%b/%Y:%H:%M:%S %z"); });
    v.add("time_iso8601",
          [](const Request& r, S, Arena& a) { return time_text(r, a, "%Y-%m-%dT%H:%M:%S%z"); });
    v.add("msec", [](const Request& r, S, Arena& a) {
        return print(a, "%lld.%03ld", static_cast<long long>(r.start.tv_sec),
                     r.start.tv_nsec / 1000000);
    });
    v.add("connection", [](const Request& r, S, Arena& a) -> S {
        return r.conn ? print(a, "%" PRIu64, r.conn->id) : S{};
    });
    v.add("ssl_protocol",
          [](const Request& r, S, Arena&) -> S { return r.conn ? r.conn->tls_version() : S{}; });
    v.add("ssl_cipher",
          [](const Request& r, S, Arena&) -> S { return r.conn ? r.conn->tls_cipher() : S{}; });
    v.add("ssl_session_reused", [](const Request& r, S, Arena&) -> S {
        return r.conn && r.conn->tls ? (r.conn->tls_resumed() ? "r" : ".") : S{};
    });
    v.add("ssl_server_name",
          [](const Request& r, S, Arena&) -> S { return r.conn ? r.conn->sni() : S{}; });
    v.add("ssl_alpn_protocol",
          [](const Request& r, S, Arena&) -> S { return r.conn ? r.conn->alpn() : S{}; });
    v.add("quic_version", [](const Request& r, S, Arena& a) -> S {
        if (!r.conn || !r.conn->quic_version)
            return {};
        return r.conn->quic_version == 1            ? S("1")
               : r.conn->quic_version == 0x6b3343cf ? S("2")
                                                    : print(a, "0x%08x", r.conn->quic_version);
    });
    v.add("upstream_addr", [](const Request& r, S, Arena&) -> S {
        const UpstreamReport* u = upstream(r);
        return u ? u->address : S{};
    });
    v.add("upstream_name", [](const Request& r, S, Arena&) -> S {
        const UpstreamReport* u = upstream(r);
        return u ? u->upstream : S{};
    });
    v.add("upstream_status", [](const Request& r, S, Arena& a) -> S {
        const UpstreamReport* u = upstream(r);
        return !u ? S{} : u->status ? print(a, "%d", u->status) : S("-");
    });
    v.add("upstream_tries", [](const Request& r, S, Arena& a) -> S {
        const UpstreamReport* u = upstream(r);
        return u ? print(a, "%u", u->tries) : S{};
    });
    v.add("upstream_connect_time", [](const Request& r, S, Arena& a) -> S {
        const UpstreamReport* u = upstream(r);
        return u ? seconds(a, u->connect_us) : S{};
    });
    v.add("upstream_header_time", [](const Request& r, S, Arena& a) -> S {
        const UpstreamReport* u = upstream(r);
        return u ? seconds(a, u->header_us) : S{};
    });
    v.add("upstream_response_time", [](const Request& r, S, Arena& a) -> S {
        const UpstreamReport* u = upstream(r);
        return u ? seconds(a, u->response_us) : S{};
    });
    v.add("upstream_failure", [](const Request& r, S, Arena&) -> S {
        const UpstreamReport* u = upstream(r);
        return u && u->failure ? S(u->failure) : S{};
    });
}

} // namespace wraith
