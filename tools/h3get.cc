// h3get: fetch URLs over HTTP/3, all on one QUIC connection, concurrently.
// See tools/README.md for usage; exit status 0 ok, 1 usage, 2 connection, 3 stream.
// One file on purpose (over 800 lines): a standalone test client whose QUIC, TLS and HTTP/3
// glue no other target shares; the server's own QUIC code is not reused so that the tests
// do not check the server against itself.
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "tools/h3/args.h"
#include "tools/h3/connection.h"
#include "tools/h3/errors.h"
#include "tools/h3/net.h"
#include "tools/h3/raw.h"
#include "tools/h3/tls.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 1;
constexpr int kExitConnection = 2;
constexpr int kExitStream = 3;

constexpr const char* kUsage =
    "usage: h3get [options] URL...\n"
    "  -k, --insecure            do not verify the server certificate\n"
    "      --cacert FILE         trust the CA certificates in FILE (PEM)\n"
    "      --resolve H:P:ADDR    connect to ADDR for host H, port P\n"
    "  -I, --head                HEAD request (prints the headers)\n"
    "  -X, --request METHOD      request method\n"
    "  -d, --data DATA|@FILE     request body (POST unless -X)\n"
    "      --data-binary DATA|@FILE  request body, file sent as is\n"
    "  -H, --header 'N: v'       extra request header (repeatable)\n"
    "  -i, --include             print the response status and headers\n"
    "  -o, --output FILE         write the body to FILE\n"
    "      --summary             one line per request: STATUS BYTES SHA256 URL\n"
    "  -n N                      fetch every URL N times, concurrently\n"
    "      --alpn PROTO          ALPN to offer (default h3)\n"
    "      --sni NAME            server name to send (and verify)\n"
    "      --session-file FILE   resume from FILE and save the new session to it\n"
    "      --early-data          send the requests as 0-RTT when resuming\n"
    "      --migrate-after N     move to a new local port after N body bytes\n"
    "      --local-port-change-after N  change port after N bytes without telling QUIC\n"
    "      --raw-request HEX     send HEX on the request stream instead of HEADERS (with -n,\n"
    "                            on N streams); every --raw-* HEX may be @FILE (hex in FILE)\n"
    "      --raw-fin             FIN after --raw-request's bytes\n"
    "      --raw-control HEX     append HEX on our control stream after SETTINGS\n"
    "      --raw-control-fin     FIN on our control stream (after --raw-control)\n"
    "      --raw-control-stream HEX  our control stream is 0x00 then HEX (no SETTINGS)\n"
    "      --raw-uni TYPE:HEX    open a unidirectional stream of TYPE carrying HEX\n"
    "      --raw-qpack-encoder HEX  append HEX on our QPACK encoder stream\n"
    "      --raw-crypto HEX      send HEX in 1-RTT CRYPTO frames once the handshake is confirmed\n"
    "      --connect-protocol P  extended CONNECT with :protocol P (RFC 9220): stdin is\n"
    "                            streamed as the request body, the response body to stdout\n"
    "  -m, --max-time SECONDS    give up after SECONDS (default 30)\n"
    "  -v, --verbose             report progress on stderr\n"
    "  -s, --silent              no progress or warnings on stderr (errors still)\n";

// Everything the command line asked for.
struct Options {
    std::vector<h3::Url> urls;
    bool insecure = false;
    std::string cacert;
    std::vector<h3::ResolveOverride> resolves;
    std::string method;         // `method` is empty unless -X/-I/-d chose one.
    bool method_from_x = false; // `method_from_x`: -X wins over -I and -d.
    bool has_body = false;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    bool include = false;
    std::string output;
    bool summary = false;
    unsigned repeat = 1;
    std::string alpn = "h3";
    std::string sni;
    bool sni_given = false;
    std::string session_file;
    bool early_data = false;
    int64_t migrate_after = -1;
    int64_t rebind_after = -1;
    std::string connect_protocol; // `connect_protocol` non-empty: a tunnel (extended CONNECT).
    double max_time = 30;
    bool verbose = false;
    bool silent = false;
    h3::RawOptions raw; // `raw`: --raw-* (protocol tests; see tools/README.md).
};

// One request and what became of it.
struct Request {
    size_t index = 0; // `index` is its place in the output order.
    const h3::Url* url = nullptr;
    int64_t stream_id = -1; // `stream_id` is -1 until submitted.
    int status = 0;         // `status` is the final (non-1xx) status.
    uint64_t body_bytes = 0;
    bool complete = false;           // `complete`: the whole response arrived.
    bool finished = false;           // `finished`: reported (complete or failed).
    std::string error;               // `error` is the failure reason, one token.
    std::string held;                // `held` is output waiting for earlier requests.
    uint64_t held_credit = 0;        // `held_credit` is body in `held` not yet credited.
    gnutls_hash_hd_t hash = nullptr; // `hash` is the body's SHA-256 (--summary).
};

bool read_file(const std::string& path, std::string& out) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return false;
    }
    out.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    return !file.bad();
}

bool usage_error(const std::string& message) {
    std::fprintf(stderr, "h3get: %s\n", message.c_str());
    return false;
}

bool parse_options(int argc, char** argv, Options& o) {
    h3::ArgReader args(argc, argv);
    std::string arg, value, error;
    auto need = [&](const std::string& name) {
        if (!args.value(value)) {
            return usage_error(name + " needs a value");
        }
        return true;
    };
    auto size_value = [&](const std::string& name, int64_t& out) {
        uint64_t n;
        if (!need(name)) {
            return false;
        }
        if (!h3::parse_size(value, n, true)) {
            return usage_error("bad number for " + name + ": " + value);
        }
        out = static_cast<int64_t>(n);
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
        if (arg == "-k" || arg == "--insecure") {
            o.insecure = true;
        } else if (arg == "--cacert") {
            if (!need(arg)) {
                return false;
            }
            o.cacert = value;
        } else if (arg == "--resolve") {
            h3::ResolveOverride r;
            if (!need(arg)) {
                return false;
            }
            if (!h3::parse_resolve(value, r, error)) {
                return usage_error(error);
            }
            o.resolves.push_back(r);
        } else if (arg == "-I" || arg == "--head") {
            if (!o.method_from_x) {
                o.method = "HEAD";
            }
            o.include = true;
        } else if (arg == "-X" || arg == "--request") {
            if (!need(arg)) {
                return false;
            }
            o.method = value;
            o.method_from_x = true;
        } else if (arg == "-d" || arg == "--data" || arg == "--data-binary") {
            if (!need(arg)) {
                return false;
            }
            std::string data;
            if (!value.empty() && value[0] == '@') {
                if (!read_file(value.substr(1), data)) {
                    return usage_error("cannot read " + value.substr(1));
                }
                if (arg != "--data-binary") {
                    // Like curl's -d @FILE: line breaks are not sent.
                    std::erase_if(data, [](char c) { return c == '\r' || c == '\n'; });
                }
            } else {
                data = value;
            }
            if (o.has_body && arg != "--data-binary") {
                o.body += '&'; // curl joins repeated -d with '&'
            }
            o.body += data;
            o.has_body = true;
            if (!o.method_from_x) {
                o.method = "POST";
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
            o.headers.emplace_back(name, v);
        } else if (arg == "-i" || arg == "--include") {
            o.include = true;
        } else if (arg == "-o" || arg == "--output") {
            if (!need(arg)) {
                return false;
            }
            o.output = value;
        } else if (arg == "--summary") {
            o.summary = true;
        } else if (arg == "-n") {
            int64_t n;
            if (!size_value(arg, n)) {
                return false;
            }
            if (n < 1 || n > 1000000) {
                return usage_error("-n must be between 1 and 1000000");
            }
            o.repeat = static_cast<unsigned>(n);
        } else if (arg == "--alpn") {
            if (!need(arg)) {
                return false;
            }
            o.alpn = value;
        } else if (arg == "--sni") {
            if (!need(arg)) {
                return false;
            }
            o.sni = value;
            o.sni_given = true;
        } else if (arg == "--session-file") {
            if (!need(arg)) {
                return false;
            }
            o.session_file = value;
        } else if (arg == "--early-data") {
            o.early_data = true;
        } else if (arg == "--migrate-after") {
            if (!size_value(arg, o.migrate_after)) {
                return false;
            }
        } else if (arg == "--local-port-change-after") {
            if (!size_value(arg, o.rebind_after)) {
                return false;
            }
        } else if (arg == "--connect-protocol") {
            if (!need(arg)) {
                return false;
            }
            if (value.empty()) {
                return usage_error("--connect-protocol needs a protocol name, e.g. websocket");
            }
            o.connect_protocol = value;
        } else if (arg == "-m" || arg == "--max-time") {
            if (!need(arg)) {
                return false;
            }
            if (!h3::parse_seconds(value, o.max_time) || o.max_time <= 0) {
                return usage_error("bad --max-time: " + value);
            }
        } else if (arg == "-v" || arg == "--verbose") {
            o.verbose = true;
        } else if (arg == "-s" || arg == "--silent") {
            o.silent = true;
        } else if (int rv = h3::read_raw_option(arg, args, o.raw, error); rv != 0) {
            if (rv < 0) {
                return usage_error(error);
            }
        } else if (arg == "-h" || arg == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(kExitOk);
        } else {
            std::fprintf(stderr, "h3get: unknown option %s\n%s", arg.c_str(), kUsage);
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
        if (!o.urls.empty() && (url.host != o.urls[0].host || url.port != o.urls[0].port)) {
            return usage_error("all URLs must have the same host and port: " + text);
        }
        o.urls.push_back(std::move(url));
    }
    if (!o.output.empty() && o.urls.size() > 1) {
        return usage_error("-o takes one URL");
    }
    if (o.migrate_after >= 0 && o.rebind_after >= 0) {
        return usage_error("--migrate-after and --local-port-change-after exclude each other");
    }
    if (!h3::check_raw_options(o.raw, error)) {
        return usage_error(error);
    }
    if (o.raw.any && o.early_data) {
        return usage_error("--early-data does not go with --raw-*");
    }
    if (o.raw.request_given &&
        (o.urls.size() != 1 || o.has_body || !o.method.empty() || !o.headers.empty() ||
         !o.connect_protocol.empty())) {
        return usage_error("--raw-request takes one URL and none of -d, -X, -I, -H, "
                           "--connect-protocol");
    }
    if (!o.connect_protocol.empty()) {
        if (o.urls.size() != 1 || o.repeat != 1 || o.has_body || !o.method.empty() || o.summary) {
            return usage_error("--connect-protocol takes one URL and none of -d, -X, -I, -n, "
                               "--summary");
        }
        o.method = "CONNECT";
    }
    if (o.method.empty()) {
        o.method = "GET";
    }
    if (o.summary) {
        o.include = false;
    }
    return true;
}

std::string hex(const uint8_t* data, size_t len) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text;
    text.reserve(len * 2);
    for (size_t i = 0; i < len; ++i) {
        text += kDigits[data[i] >> 4];
        text += kDigits[data[i] & 15];
    }
    return text;
}

nghttp3_nv make_nv(const std::string& name, const std::string& value) {
    return nghttp3_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP3_NV_FLAG_NONE};
}

// Drives the one connection: submits the requests, routes responses to the output, and
// decides the exit status.
class Fetcher final : public h3::ConnectionHandler {
public:
    Fetcher(struct ev_loop* loop, const Options& options) : loop_(loop), o_(options) {}

    ~Fetcher() override {
        for (auto& r : requests_) {
            if (r.hash) {
                gnutls_hash_deinit(r.hash, nullptr);
            }
        }
        if (out_ && out_ != stdout) {
            std::fclose(out_);
        }
    }

    int run();

    void on_handshake_completed(h3::Connection& c) override;
    void on_stream_credit(h3::Connection& c) override;
    void on_header(h3::Connection&, void* stream, int32_t token, std::string_view name,
                   std::string_view value) override;
    void on_headers_end(h3::Connection&, void* stream) override;
    void on_body(h3::Connection& c, int64_t stream_id, void* stream, const uint8_t* data,
                 size_t len) override;
    void on_response_end(h3::Connection&, void* stream) override;
    void on_stream_closed(h3::Connection&, void* stream, uint64_t app_error) override;
    std::span<const uint8_t> request_body(h3::Connection&, void*) override {
        return {reinterpret_cast<const uint8_t*>(o_.body.data()), o_.body.size()};
    }
    std::span<const uint8_t> request_body_part(h3::Connection&, void*, bool* eof) override;
    void on_early_data_rejected(h3::Connection&) override;
    void on_goaway(h3::Connection&) override;
    void on_migrated(h3::Connection&, const h3::MigrationResult& result) override;
    void on_closed(h3::Connection& c) override;
    void on_stream_reset(h3::Connection&, int64_t stream_id, uint64_t app_error) override;
    void on_stop_sending(h3::Connection&, int64_t stream_id, uint64_t app_error) override;

private:
    static void deadline_cb(struct ev_loop* loop, ev_timer* w, int revents);
    static void linger_cb(struct ev_loop* loop, ev_timer* w, int revents);
    static void stdin_cb(struct ev_loop* loop, ev_io* w, int revents);

    bool tunnel() const { return !o_.connect_protocol.empty(); }
    bool prepare();
    void emit(Request& r, const char* data, size_t len, uint64_t credit);
    void finish(Request& r, std::string error);
    void advance();
    void maybe_close();
    void fail_unfinished(const std::string& reason);
    void info(const char* format, ...) __attribute__((format(printf, 2, 3)));

    struct ev_loop* loop_;
    const Options& o_;
    h3::TlsContext tls_;
    h3::ClientSettings settings_;
    h3::PacketIo io_;
    h3::SessionData saved_session_;
    std::unique_ptr<h3::Connection> conn_;
    std::vector<Request> requests_;
    size_t next_submit_ = 0; // `next_submit_` is the first request not yet submitted.
    size_t head_ = 0;        // `head_` is the first request whose output is not complete.
    size_t finished_ = 0;
    uint64_t body_total_ = 0; // `body_total_` counts body bytes over all streams.
    bool migration_asked_ = false;
    bool timed_out_ = false;
    bool write_failed_ = false;
    bool lingering_ = false; // `lingering_`: done, waiting briefly for a session ticket.
    std::string connection_error_;
    FILE* out_ = stdout;
    ev_timer deadline_;
    ev_timer linger_;
    // --connect-protocol: stdin read once the 2xx arrived, sent as it comes. Every piece
    // stays here until the process ends (nghttp3 points into it until acknowledged).
    ev_io stdin_watcher_;
    std::deque<std::string> stdin_parts_;
    size_t next_part_ = 0; // `next_part_` is the first piece not yet handed to nghttp3.
    bool stdin_started_ = false;
    bool stdin_eof_ = false;
};

void Fetcher::info(const char* format, ...) {
    if (o_.silent) {
        return;
    }
    va_list ap;
    va_start(ap, format);
    std::vfprintf(stderr, format, ap);
    va_end(ap);
}

bool Fetcher::prepare() {
    std::string error;
    if (!tls_.init(!o_.insecure, o_.cacert, error)) {
        std::fprintf(stderr, "h3get: %s\n", error.c_str());
        return false;
    }
    if (!o_.output.empty()) {
        out_ = std::fopen(o_.output.c_str(), "wb");
        if (!out_) {
            std::fprintf(stderr, "h3get: cannot open %s: %s\n", o_.output.c_str(),
                         std::strerror(errno));
            out_ = stdout;
            return false;
        }
    }
    static char buffer[1 << 20];
    std::setvbuf(out_, buffer, _IOFBF, sizeof(buffer));
    if (!o_.session_file.empty() &&
        !h3::load_session_file(o_.session_file, saved_session_, error)) {
        info("h3get: %s; starting a new session\n", error.c_str());
    }
    requests_.resize(o_.urls.size() * o_.repeat);
    size_t i = 0;
    for (const auto& url : o_.urls) {
        for (unsigned k = 0; k < o_.repeat; ++k, ++i) {
            requests_[i].index = i;
            requests_[i].url = &url;
        }
    }
    settings_.tls = &tls_;
    settings_.alpn = o_.alpn;
    settings_.keep_session = !o_.session_file.empty();
    if (o_.raw.any) {
        settings_.raw = &o_.raw.plan;
    }
    auto max_time = static_cast<uint64_t>(o_.max_time * NGTCP2_SECONDS);
    settings_.handshake_timeout = max_time;
    settings_.idle_timeout = max_time < 30 * NGTCP2_SECONDS ? 30 * NGTCP2_SECONDS : max_time;
    // Probe a silent server: a vanished one answers with ICMP (connection refused) at once.
    settings_.keep_alive = NGTCP2_SECONDS;
    return true;
}

int Fetcher::run() {
    if (!prepare()) {
        return kExitUsage;
    }
    const auto& first = o_.urls[0];
    h3::ConnectTarget target;
    std::string error;
    if (!h3::resolve(first.host, first.port, o_.resolves, target.remote, error)) {
        std::fprintf(stderr, "h3get: %s\n", error.c_str());
        return kExitConnection;
    }
    if (o_.sni_given) {
        target.sni = o_.sni;
    } else if (!h3::is_ip_literal(first.host)) {
        target.sni = first.host; // RFC 6066 §3: no IP literals in SNI
    }
    target.verify_name = o_.sni_given ? o_.sni : first.host;
    target.session = &saved_session_;
    target.early_data = o_.early_data;
    if (o_.early_data && saved_session_.empty()) {
        info("early data: not attempted (no saved session)\n");
    }

    conn_ = std::make_unique<h3::Connection>(loop_, io_, settings_, *this);
    if (!conn_->connect(target, error)) {
        std::fprintf(stderr, "h3get: %s\n", error.c_str());
        return kExitConnection;
    }
    if (o_.verbose) {
        info("* connecting to %s from port %u\n", h3::format_address(target.remote.get()).c_str(),
             conn_->local_port());
    }
    ev_timer_init(&deadline_, deadline_cb, o_.max_time, 0.);
    deadline_.data = this;
    ev_timer_start(loop_, &deadline_);
    ev_timer_init(&linger_, linger_cb, 0.5, 0.);
    linger_.data = this;
    ev_io_init(&stdin_watcher_, stdin_cb, STDIN_FILENO, EV_READ);
    stdin_watcher_.data = this;
    ev_run(loop_, 0);
    ev_timer_stop(loop_, &deadline_);
    ev_timer_stop(loop_, &linger_);
    ev_io_stop(loop_, &stdin_watcher_);

    if (std::fflush(out_) != 0 && !write_failed_) {
        write_failed_ = true;
        std::fprintf(stderr, "h3get: cannot write the output: %s\n", std::strerror(errno));
    }
    if (conn_ && !o_.session_file.empty() && !conn_->session().ticket.empty()) {
        if (!h3::save_session_file(o_.session_file, conn_->session(), error)) {
            std::fprintf(stderr, "h3get: %s\n", error.c_str());
        }
    } else if (!o_.session_file.empty() && conn_ && conn_->handshake_completed()) {
        info("h3get: no session ticket received; %s not updated\n", o_.session_file.c_str());
    }
    conn_.reset();

    if (timed_out_) {
        std::fprintf(stderr, "h3get: timed out after %g s\n", o_.max_time);
        return kExitConnection;
    }
    if (!connection_error_.empty()) {
        std::fprintf(stderr, "h3get: %s\n", connection_error_.c_str());
        return kExitConnection;
    }
    for (const auto& r : requests_) {
        if (!r.complete) {
            return kExitStream;
        }
    }
    return write_failed_ ? kExitStream : kExitOk;
}

void Fetcher::on_handshake_completed(h3::Connection& c) {
    if (c.early_data_attempted()) {
        std::fprintf(stderr, "early data: %s\n", c.early_data_accepted() ? "accepted" : "rejected");
    }
    if (o_.verbose) {
        info("* handshake completed: ALPN %s, QUIC version 0x%08x, %s %s %s\n", c.alpn().c_str(),
             c.quic_version(), c.tls_version().c_str(), c.tls_cipher().c_str(),
             c.tls_group().c_str());
    }
}

void Fetcher::on_stream_credit(h3::Connection& c) {
    static const std::string kMethod = ":method", kScheme = ":scheme", kHttps = "https",
                             kAuthority = ":authority", kPath = ":path", kUserAgent = "user-agent",
                             kAgent = "h3get/0.1", kContentLength = "content-length";
    if (o_.raw.request_given) {
        // The bytes as given, not held back by raw bytes elsewhere awaiting acknowledgement;
        // with -n, on as many streams as the server's MAX_STREAMS lets open.
        while (next_submit_ < requests_.size() && c.can_open_stream()) {
            auto& r = requests_[next_submit_];
            r.stream_id = c.submit_raw(o_.raw.request, o_.raw.request_fin, &r);
            if (r.stream_id < 0) {
                break;
            }
            if (o_.summary && !r.hash) {
                gnutls_hash_init(&r.hash, GNUTLS_DIG_SHA256);
            }
            ++next_submit_;
        }
        return;
    }
    std::string length = std::to_string(o_.body.size());
    std::vector<nghttp3_nv> nva;
    while (next_submit_ < requests_.size() && c.can_submit()) {
        auto& r = requests_[next_submit_];
        static const std::string kProtocol = ":protocol";
        nva.clear();
        nva.push_back(make_nv(kMethod, o_.method));
        if (tunnel()) {
            nva.push_back(make_nv(kProtocol, o_.connect_protocol));
        }
        nva.push_back(make_nv(kScheme, kHttps));
        nva.push_back(make_nv(kAuthority, r.url->authority));
        nva.push_back(make_nv(kPath, r.url->path));
        bool has_agent = false, has_length = false;
        for (const auto& [name, value] : o_.headers) {
            has_agent |= name == kUserAgent;
            has_length |= name == kContentLength;
            nva.push_back(make_nv(name, value));
        }
        if (!has_agent) {
            nva.push_back(make_nv(kUserAgent, kAgent));
        }
        if (o_.has_body && !has_length) {
            nva.push_back(make_nv(kContentLength, length));
        }
        r.stream_id = c.submit(nva.data(), nva.size(), o_.has_body || tunnel(), &r, tunnel());
        if (r.stream_id < 0) {
            break;
        }
        if (o_.summary && !r.hash) {
            gnutls_hash_init(&r.hash, GNUTLS_DIG_SHA256); // only while running: -n can be large
        }
        ++next_submit_;
    }
}

void Fetcher::on_header(h3::Connection&, void* stream, int32_t token, std::string_view name,
                        std::string_view value) {
    auto& r = *static_cast<Request*>(stream);
    if (token == NGHTTP3_QPACK_TOKEN__STATUS) {
        r.status = 0;
        for (char ch : value) {
            r.status = r.status * 10 + (ch - '0');
        }
        if (o_.include) {
            std::string line = "HTTP/3 " + std::string(value) + "\r\n";
            emit(r, line.data(), line.size(), 0);
        }
        return;
    }
    if (o_.include) {
        std::string line;
        line.reserve(name.size() + value.size() + 4);
        line.append(name).append(": ").append(value).append("\r\n");
        emit(r, line.data(), line.size(), 0);
    }
}

void Fetcher::on_headers_end(h3::Connection&, void* stream) {
    auto& r = *static_cast<Request*>(stream);
    if (o_.include) {
        emit(r, "\r\n", 2, 0);
    }
    if (tunnel() && r.status >= 200) {
        std::fflush(out_);
        // RFC 8441 §4 (RFC 9220): the tunnel is open once a 2xx came; send nothing before.
        if (r.status < 300 && !stdin_started_) {
            stdin_started_ = true;
            fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
            ev_io_start(loop_, &stdin_watcher_);
        }
    }
}

std::span<const uint8_t> Fetcher::request_body_part(h3::Connection&, void*, bool* eof) {
    if (next_part_ < stdin_parts_.size()) {
        const std::string& part = stdin_parts_[next_part_++];
        return {reinterpret_cast<const uint8_t*>(part.data()), part.size()};
    }
    *eof = stdin_eof_;
    return {};
}

void Fetcher::stdin_cb(struct ev_loop* loop, ev_io* w, int) {
    auto* f = static_cast<Fetcher*>(w->data);
    char buf[65536];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n > 0) {
        f->stdin_parts_.emplace_back(buf, static_cast<size_t>(n));
    } else {
        f->stdin_eof_ = true; // EOF (or an error): our side of the tunnel ends
        ev_io_stop(loop, w);
    }
    if (f->conn_ && !f->requests_.empty() && f->requests_[0].stream_id >= 0) {
        f->conn_->resume_body(f->requests_[0].stream_id);
    }
}

void Fetcher::on_body(h3::Connection& c, int64_t, void* stream, const uint8_t* data, size_t len) {
    auto& r = *static_cast<Request*>(stream);
    r.body_bytes += len;
    body_total_ += len;
    if (o_.summary) {
        gnutls_hash(r.hash, data, len);
        c.consume(r.stream_id, len);
    } else {
        emit(r, reinterpret_cast<const char*>(data), len, len);
        if (tunnel()) {
            std::fflush(out_); // a tunnel's peer waits for what it said to arrive
        }
    }
    if (!migration_asked_) {
        if (o_.migrate_after >= 0 && body_total_ >= static_cast<uint64_t>(o_.migrate_after)) {
            migration_asked_ = true;
            c.request_migration(h3::Connection::Migration::Validated);
        } else if (o_.rebind_after >= 0 && body_total_ >= static_cast<uint64_t>(o_.rebind_after)) {
            migration_asked_ = true;
            c.request_migration(h3::Connection::Migration::NatRebinding);
        }
    }
}

// Output goes out in request order: the head request writes through; later ones hold their
// bytes (bounded by their stream windows, which are only credited once the bytes are written)
// and release the connection window at once so the head can never starve.
void Fetcher::emit(Request& r, const char* data, size_t len, uint64_t credit) {
    if (r.index == head_) {
        if (!write_failed_ && std::fwrite(data, 1, len, out_) != len) {
            write_failed_ = true;
            std::fprintf(stderr, "h3get: cannot write the output: %s\n", std::strerror(errno));
            conn_->close();
        }
        if (credit) {
            conn_->consume(r.stream_id, credit);
        }
        return;
    }
    r.held.append(data, len);
    if (credit) {
        r.held_credit += credit;
        conn_->consume_connection(credit);
    }
}

void Fetcher::advance() {
    while (head_ < requests_.size() && requests_[head_].finished) {
        ++head_;
        if (head_ == requests_.size()) {
            break;
        }
        auto& r = requests_[head_];
        if (!r.held.empty()) {
            if (!write_failed_ &&
                std::fwrite(r.held.data(), 1, r.held.size(), out_) != r.held.size()) {
                write_failed_ = true;
                std::fprintf(stderr, "h3get: cannot write the output: %s\n", std::strerror(errno));
            }
            std::string().swap(r.held);
        }
        if (r.held_credit && !r.finished) {
            conn_->consume_stream(r.stream_id, r.held_credit);
        }
        r.held_credit = 0;
    }
}

void Fetcher::finish(Request& r, std::string error) {
    if (r.finished) {
        return;
    }
    r.finished = true;
    r.error = std::move(error);
    ++finished_;
    if (o_.raw.any && r.error.empty()) {
        std::fprintf(stderr, "response: %d\n", r.status);
    }
    if (o_.summary) {
        if (r.error.empty()) {
            uint8_t digest[32];
            if (!r.hash) {
                gnutls_hash_init(&r.hash, GNUTLS_DIG_SHA256);
            }
            gnutls_hash_deinit(r.hash, digest);
            r.hash = nullptr;
            std::fprintf(out_, "%d %" PRIu64 " %s %s\n", r.status, r.body_bytes,
                         hex(digest, sizeof(digest)).c_str(), r.url->text.c_str());
        } else {
            std::fprintf(out_, "ERROR %s %s\n", r.error.c_str(), r.url->text.c_str());
            if (r.hash) {
                gnutls_hash_deinit(r.hash, nullptr);
                r.hash = nullptr;
            }
        }
        std::fflush(out_);
    }
    if (o_.verbose) {
        if (r.error.empty()) {
            info("* stream %" PRId64 ": %s %s -> %d, %" PRIu64 " bytes\n", r.stream_id,
                 o_.method.c_str(), r.url->text.c_str(), r.status, r.body_bytes);
        } else {
            info("* stream %" PRId64 ": %s %s failed: %s\n", r.stream_id, o_.method.c_str(),
                 r.url->text.c_str(), r.error.c_str());
        }
    }
    advance();
    maybe_close();
}

void Fetcher::on_response_end(h3::Connection&, void* stream) {
    auto& r = *static_cast<Request*>(stream);
    r.complete = true;
    if (tunnel() && r.status >= 200 && r.status < 300) {
        // The server ended its side: so does our output (the reader sees EOF, as with a
        // half-closed socket); ours ends with stdin, then the stream closes.
        std::fflush(out_);
        int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, fileno(out_));
            ::close(null);
        }
        return;
    }
    finish(r, "");
}

void Fetcher::on_stream_closed(h3::Connection&, void* stream, uint64_t app_error) {
    auto& r = *static_cast<Request*>(stream);
    if (tunnel() && r.complete && app_error == NGHTTP3_H3_NO_ERROR) {
        finish(r, ""); // both sides of the tunnel ended
        return;
    }
    if (tunnel() && r.complete && !r.finished) {
        r.complete = false; // the tunnel was cut after the server's side had ended
    }
    if (!r.complete) {
        finish(r, app_error == NGHTTP3_H3_NO_ERROR
                      ? "incomplete-response"
                      : "stream-reset:" + h3::application_error_name(app_error));
    }
}

void Fetcher::on_early_data_rejected(h3::Connection&) {
    // Nothing of those requests reached the server: send them again over 1-RTT.
    for (size_t i = 0; i < next_submit_; ++i) {
        auto& r = requests_[i];
        r.stream_id = -1;
        r.status = 0;
        r.body_bytes = 0;
        if (r.hash) {
            gnutls_hash_deinit(r.hash, nullptr);
            r.hash = nullptr;
        }
    }
    next_submit_ = 0;
}

void Fetcher::on_goaway(h3::Connection&) {
    // The server takes no new requests on this connection (RFC 9114 §5.2); the ones not yet
    // sent fail rather than wait for a stream that will never come.
    for (size_t i = next_submit_; i < requests_.size(); ++i) {
        finish(requests_[i], "goaway");
    }
    next_submit_ = requests_.size();
}

void Fetcher::on_migrated(h3::Connection& c, const h3::MigrationResult& result) {
    if (result.ok) {
        std::fprintf(stderr, "migrated: %u -> %u\n", result.old_port, result.new_port);
    } else {
        std::fprintf(stderr, "migration failed: %s\n", result.error.c_str());
    }
    maybe_close();
}

// Everything is done once every request finished, no migration awaits its verdict and, when
// a session is to be saved, a ticket arrived (or a short wait for one ran out).
void Fetcher::maybe_close() {
    if (finished_ < requests_.size() || conn_->closed() || conn_->migration_in_progress()) {
        return;
    }
    if (!o_.session_file.empty() && conn_->session().ticket.empty() && !lingering_ &&
        connection_error_.empty()) {
        lingering_ = true;
        ev_timer_start(loop_, &linger_);
        return;
    }
    conn_->close();
}

void Fetcher::fail_unfinished(const std::string& reason) {
    for (auto& r : requests_) {
        if (!r.finished) {
            finish(r, reason);
        }
    }
}

void Fetcher::on_stream_reset(h3::Connection&, int64_t stream_id, uint64_t app_error) {
    if (o_.raw.any) {
        std::fprintf(stderr, "stream reset: %" PRId64 " 0x%" PRIx64 " %s\n", stream_id, app_error,
                     h3::application_error_name(app_error).c_str());
    }
}

void Fetcher::on_stop_sending(h3::Connection&, int64_t stream_id, uint64_t app_error) {
    if (o_.raw.any) {
        std::fprintf(stderr, "stop sending: %" PRId64 " 0x%" PRIx64 " %s\n", stream_id, app_error,
                     h3::application_error_name(app_error).c_str());
    }
}

void Fetcher::on_closed(h3::Connection& c) {
    bool clean = finished_ == requests_.size() && !timed_out_;
    const auto& peer = c.peer_close();
    if (o_.raw.any && peer.received) {
        std::fprintf(stderr, "closed: 0x%" PRIx64 " %s\n", peer.code,
                     (peer.application ? h3::application_error_name(peer.code)
                                       : h3::transport_error_name(peer.code))
                         .c_str());
        // What the server did is the result: an error close counts even after the responses.
        clean = clean && peer.code == (peer.application ? NGHTTP3_H3_NO_ERROR : 0);
    }
    if (!clean && !timed_out_) {
        connection_error_ = c.close_reason();
        // "refused", "certificate ..." and "handshake ..." say it already.
        if (!c.handshake_completed() && connection_error_.find("handshake") == std::string::npos &&
            connection_error_.find("refused") == std::string::npos &&
            connection_error_.find("certificate") == std::string::npos) {
            connection_error_ = "handshake failed: " + connection_error_;
        }
        fail_unfinished("connection-error");
    }
    ev_break(loop_, EVBREAK_ALL);
}

void Fetcher::deadline_cb(struct ev_loop*, ev_timer* w, int) {
    auto* f = static_cast<Fetcher*>(w->data);
    f->timed_out_ = true;
    f->fail_unfinished("timeout");
    f->conn_->close();
}

void Fetcher::linger_cb(struct ev_loop*, ev_timer* w, int) {
    static_cast<Fetcher*>(w->data)->maybe_close();
}

} // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    Options options;
    if (!parse_options(argc, argv, options)) {
        return kExitUsage;
    }
    struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
    Fetcher fetcher(loop, options);
    return fetcher.run();
}
