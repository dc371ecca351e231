// The protocol-independent exchange: what every handler and filter sees. HTTP/1.1, HTTP/2 and
// HTTP/3 adapters (worker/http1, worker/http2, worker/http3) map their wire format onto these
// types; nothing here knows about sockets or framing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <string_view>
#include <sys/socket.h>
#include <sys/types.h>
#include <type_traits>
#include <vector>

#include "common/arena.h"

struct ev_loop;

namespace wraith {

struct ExchangeSummary;
struct Site;
struct Route;
struct FilterScope;
struct Captures;
class ModuleWorkers;
namespace geo {
struct Lookup;
}

// A header field. Names are lower-case (HTTP/2 and /3 require it; HTTP/1 is normalised on
// parse). Both views point into memory that lives as long as the request (read buffer or
// request arena).
struct Header {
    std::string_view name;
    std::string_view value;
};
static_assert(std::is_trivially_copyable_v<Header> && std::is_trivially_destructible_v<Header>);

// An ordered header list. The first kInline fields live in the object itself, so a typical
// request or response head costs no allocation; longer lists move to the heap, and a list
// reused across requests on a connection keeps that storage.
class Headers {
public:
    static constexpr size_t kInline = 16;

    Headers() = default;
    Headers(const Headers& other) { *this = other; }
    Headers& operator=(const Headers& other) {
        if (this != &other) {
            clear();
            reserve(other.size_);
            std::copy(other.begin(), other.end(), data_);
            size_ = other.size_;
        }
        return *this;
    }
    Headers(Headers&& other) noexcept { *this = std::move(other); }
    Headers& operator=(Headers&& other) noexcept {
        if (this == &other)
            return *this;
        if (other.data_ == other.inline_fields()) {
            std::copy(other.begin(), other.end(),
                      data_ == heap_.get() ? heap_.get() : inline_fields());
            if (data_ != heap_.get())
                data_ = inline_fields();
            size_ = other.size_;
        } else {
            heap_ = std::move(other.heap_);
            data_ = heap_.get();
            cap_ = other.cap_;
            size_ = other.size_;
            other.data_ = other.inline_fields();
            other.cap_ = kInline;
        }
        other.size_ = 0;
        return *this;
    }

    void add(std::string_view name, std::string_view value) {
        if (size_ == cap_)
            reserve(cap_ * 2);
        data_[size_++] = Header{name, value};
    }
    // First value of `name` (lower-case), or empty view with found == false.
    const Header* find(std::string_view name) const {
        for (const auto& h : *this)
            if (h.name == name)
                return &h;
        return nullptr;
    }
    std::string_view get(std::string_view name) const {
        const Header* h = find(name);
        return h ? h->value : std::string_view{};
    }
    size_t count(std::string_view name) const {
        size_t n = 0;
        for (const auto& h : *this)
            n += h.name == name;
        return n;
    }
    // Replaces every `name` field by one with `value`.
    void set(std::string_view name, std::string_view value) {
        remove(name);
        add(name, value);
    }
    void remove(std::string_view name) {
        Header* end =
            std::remove_if(data_, data_ + size_, [&](const Header& h) { return h.name == name; });
        size_ = static_cast<size_t>(end - data_);
    }
    void clear() { size_ = 0; }
    size_t size() const { return size_; }
    const Header* begin() const { return data_; }
    const Header* end() const { return data_ + size_; }

private:
    void reserve(size_t n) {
        if (n <= cap_)
            return;
        auto bigger = std::make_unique<Header[]>(n);
        std::copy(data_, data_ + size_, bigger.get());
        heap_ = std::move(bigger);
        data_ = heap_.get();
        cap_ = n;
    }

    Header* inline_fields() { return reinterpret_cast<Header*>(inline_); }
    // Raw bytes, not Header[kInline]: a Headers is made for every request and response, and
    // constructing sixteen empty fields each time was 512 bytes of stores for nothing. A
    // field comes to life when it is added (Header is an aggregate of two views).
    alignas(Header) unsigned char inline_[sizeof(Header) * kInline];
    Header* data_ = inline_fields();
    size_t size_ = 0;
    size_t cap_ = kInline;
    std::unique_ptr<Header[]> heap_;
};

enum class Method : uint8_t { other, get, head, post, put, del, options, connect, trace, patch };
Method method_from(std::string_view token);

// RFC 9110 token (a field name, a method, a cookie name).
bool is_token(std::string_view s);
// The value of cookie `name` in one Cookie field ("a=1; b=2"), or nullopt when it is absent.
std::optional<std::string_view> find_cookie(std::string_view field, std::string_view name);
// A field value we may send: no CR, LF or NUL.
bool is_field_value(std::string_view s);
// A field value an operator configured: no control characters at all but tab (RFC 9110
// §5.5 obs-text aside), so nothing odd reaches clients from a config file.
bool is_clean_field_value(std::string_view s);

// An IPv4 or IPv6 socket address in the 28 bytes it needs (a sockaddr_storage takes 128, and
// every connection keeps two: idle keep-alive connections are counted in thousands).
union SocketAddress {
    sockaddr sa;
    sockaddr_in v4;
    sockaddr_in6 v6;

    SocketAddress() : v6{} {}
    SocketAddress(const sockaddr_storage& s) { *this = s; } // NOLINT: converts on purpose
    SocketAddress& operator=(const sockaddr_storage& s) {
        v6 = sockaddr_in6{};
        if (s.ss_family == AF_INET)
            std::memcpy(&v4, &s, sizeof v4);
        else if (s.ss_family == AF_INET6)
            std::memcpy(&v6, &s, sizeof v6);
        return *this;
    }
    sa_family_t family() const { return sa.sa_family; }
    socklen_t length() const {
        return family() == AF_INET ? sizeof v4 : family() == AF_INET6 ? sizeof v6 : 0;
    }
    // A full sockaddr_storage, for interfaces that take one.
    sockaddr_storage storage() const {
        sockaddr_storage out{};
        std::memcpy(&out, this, sizeof *this);
        return out;
    }
};

// Who is on the other end of the connection a request arrived on.
// What a completed TLS handshake (over TCP or QUIC) settled. The TLS transport or the QUIC
// connection owns it, so a plain connection carries one pointer, not these fields.
struct TlsInfo {
    std::string_view sni;     // server name, when any
    std::string_view alpn;    // negotiated protocol, when any
    std::string_view version; // "TLSv1.3"
    std::string_view cipher;  // its IANA name, "TLS_AES_128_GCM_SHA256"
    bool resumed = false;     // the handshake resumed a session
    // A verified client certificate (mTLS); all empty without one.
    std::string_view client_subject;     // RFC 2253 form, "CN=alice,O=Example"
    std::string_view client_issuer;      // RFC 2253 form (TLS over TCP; empty on QUIC so far)
    std::string_view client_sans;        // "DNS:a.example, email:alice@example.com"
    std::string_view client_fingerprint; // SHA-256 of the DER certificate, lower-case hex
};

struct ConnectionInfo {
    SocketAddress peer;
    SocketAddress local;
    uint64_t id = 0;              // worker-unique connection number, for logs
    const TlsInfo* tls = nullptr; // TLS over TCP and QUIC; null on plain connections
    uint32_t quic_version = 0;    // QUIC: the negotiated version (0x1; 0x6b3343cf is v2)
    std::string_view peer_text;   // "[::1]:54321" or "127.0.0.1:5432", for logs
    std::string_view peer_ip;     // address only, for logs and X-Forwarded-For
    // Alt-Svc announced on responses (RFC 7838): h3 on this port, when the listener's QUIC
    // socket is bound; empty otherwise.
    std::string_view alt_svc;
    // The listener's own site ([admin]): every request on the connection goes there.
    const Site* site = nullptr;

    // The TLS fields, empty without TLS.
    std::string_view sni() const { return tls ? tls->sni : std::string_view(); }
    std::string_view alpn() const { return tls ? tls->alpn : std::string_view(); }
    std::string_view tls_version() const { return tls ? tls->version : std::string_view(); }
    std::string_view tls_cipher() const { return tls ? tls->cipher : std::string_view(); }
    bool tls_resumed() const { return tls && tls->resumed; }
    std::string_view client_subject() const {
        return tls ? tls->client_subject : std::string_view();
    }
    std::string_view client_issuer() const {
        return tls ? tls->client_issuer : std::string_view();
    }
    std::string_view client_sans() const { return tls ? tls->client_sans : std::string_view(); }
    std::string_view client_fingerprint() const {
        return tls ? tls->client_fingerprint : std::string_view();
    }
};

// A field a filter adds to the exchange's access-log line ("limit" = "api:reject"). Both views
// and the note itself live in the request's arena (or are constants).
struct LogNote {
    std::string_view name;
    std::string_view value;
    const LogNote* next = nullptr; // the note added before this one
};

// What a handler that forwards the request upstream (the proxy) reports about it, for the
// access log ($upstream_* variables, JSON fields) and metrics. Lives in the request arena.
struct UpstreamReport {
    std::string_view address;  // the server of the last try ("10.0.0.2:8080"); valid for the
                               // exchange (config or arena)
    std::string_view upstream; // the pool's name
    int status = 0;            // the status the upstream answered (0: none)
    uint32_t tries = 0;        // servers or connections tried (2+: retried)
    // Microseconds from when the proxy started on the request: the last try's connection was
    // ready (TCP, TLS; a pooled one: at once; HTTP/2 and HTTP/3: when the stream could open on
    // a ready connection), its response head came, its response ended. -1: never happened.
    int64_t connect_us = -1;
    int64_t header_us = -1;
    int64_t response_us = -1;
    // Why the last try failed (null: it did not): "connect", "timeout", "reset", "protocol"
    // (a malformed answer), "status" (an answer of the upstream's fail_statuses).
    const char* failure = nullptr;
};

// One request. Every view is valid until the exchange ends (protocol buffers or `arena`).
struct Request {
    std::string_view method; // as sent, e.g. "GET"
    Method method_id = Method::other;
    std::string_view scheme;    // "http" or "https"
    std::string_view authority; // host[:port] from :authority, absolute-form target, or Host
    std::string_view host;      // authority without port, lower-cased
    std::string_view target;    // request-target as sent (origin-form or "*")
    std::string_view path;      // raw path of the target, not decoded ("/a%20b")
    std::string_view query;     // after '?', without it; empty when absent
    int version = 11;           // 10, 11, 20 or 30
    Headers headers;
    int64_t content_length = -1; // -1: unknown (chunked / streaming) or none
    bool has_body = false;       // a body follows (Content-Length > 0, chunked, or h2/h3 DATA)
    // A tunnel the client asks for: the Upgrade field of an HTTP/1.1 request without a body
    // (RFC 9110 §7.8), or the :protocol of an extended CONNECT on HTTP/2 (RFC 8441) and
    // HTTP/3 (RFC 9220), e.g. "websocket"; empty otherwise. A handler that accepts answers 101
    // (HTTP/1.1) or 2xx (CONNECT) with end_stream = false; from then on the request body is
    // the client's byte stream and the response body the server's, each ending on its own.
    std::string_view upgrade;
    const ConnectionInfo* conn = nullptr;
    Arena* arena = nullptr;
    struct ev_loop* loop = nullptr; // the worker's loop, for handlers that wait on sockets
    timespec start{};               // when the request head was complete (CLOCK_REALTIME)
    uint64_t start_mono_us = 0;     // monotonic, for durations in logs

    // Filled by the pipeline (worker/pipeline.h) and the router.
    const Site* site = nullptr;
    const Route* route = nullptr;
    std::string_view decoded_path; // percent-decoded, normalised; never contains ".." segments
    const FilterScope* filters = nullptr; // the chain this exchange runs: its route's, else its
                                          // site's, else the server's
    ModuleWorkers* modules = nullptr;     // the worker's per-module state (common/module.h)

    // The client's address for everything that judges or records it (logs, limits, geo, the
    // proxy's X-Forwarded-For): the peer's, unless a request-head filter (real_ip) learnt the
    // address behind trusted proxies. Set by the pipeline before the request-head phase.
    std::string_view client_ip;
    // This exchange's id ($request_id, X-Request-ID upstream): made on first use
    // (request_id_of()), or taken from a trusted proxy's X-Request-ID.
    mutable std::string_view request_id;
    // $1..$9: the groups of the route's path regex, or of the last rewrite's pattern (arena).
    const Captures* captures = nullptr;
    // The geo database's answer for client_ip, looked up on first use by modules/geo (a rule,
    // a variable or a log field asked), so a request costs at most one lookup.
    mutable const geo::Lookup* geo = nullptr;
    uint8_t rewrites = 0; // internal rewrites so far (Router::kMaxRewrites)

    // RFC 8441 §4 / RFC 9220: a CONNECT carrying :protocol (its success status is 2xx, not 101).
    bool extended_connect() const { return method_id == Method::connect && !upgrade.empty(); }

    // Non-zero while serving a site's custom error page: the handler answers with this status
    // instead of 200 and skips conditionals and ranges.
    int override_status = 0;

    // Notes for the access log, newest first (add_log_note).
    const LogNote* log_notes = nullptr;
    // Set by a handler that went upstream (the proxy), null otherwise.
    UpstreamReport* upstream = nullptr;
    // Set by the exchange core for the log phase: how the exchange ended (log variables).
    const ExchangeSummary* summary = nullptr;
};

// Adds a note to req's access-log line; `name` and `value` must live as long as the exchange.
inline void add_log_note(Request& req, std::string_view name, std::string_view value) {
    req.log_notes = req.arena->make<LogNote>(LogNote{name, value, req.log_notes});
}

// Response status line and header fields, sent once by a handler or filter.
struct ResponseHead {
    int status = 200;
    Headers headers;             // names lower-case; the protocol adds date/server/framing
    int64_t content_length = -1; // -1: unknown; the protocol chunks (h1) or streams (h2/h3)
};

using Callback = std::function<void()>;

// Request body as a pull stream with backpressure. Protocols implement it over their own flow
// control; the body is never buffered whole unless a handler asks for it.
class BodyReader {
public:
    virtual ~BodyReader() = default;
    // Bytes received and not yet consumed (may be empty).
    virtual std::string_view peek() = 0;
    virtual void consume(size_t n) = 0;
    // Every body byte was delivered (peek() may still hold the last ones).
    virtual bool finished() const = 0;
    // The peer aborted or sent a malformed body; the exchange is ending.
    virtual bool failed() const = 0;
    // Called on the loop when more data arrived, or the body finished or failed. One callback;
    // a new call replaces the previous. Passing nullptr clears it.
    virtual void on_data(Callback cb) = 0;
    // While paused the protocol stops reading from the peer (or withholds window credit).
    virtual void pause() = 0;
    virtual void resume() = 0;
    // Reads and drops the rest of the body; the response may already be under way.
    virtual void discard() = 0;
};

// A body that is already over: what sub-requests (error pages, auth, mirrors) read.
class EmptyBody final : public BodyReader {
public:
    std::string_view peek() override { return {}; }
    void consume(size_t) override {}
    bool finished() const override { return true; }
    bool failed() const override { return false; }
    void on_data(Callback) override {}
    void pause() override {}
    void resume() override {}
    void discard() override {}
};

// Response side of an exchange. Data calls never block: they queue and report whether the
// caller should wait for on_writable() before queuing more.
class ResponseWriter {
public:
    enum class Result { ok, blocked, closed };

    virtual ~ResponseWriter() = default;
    // 1xx responses before the final one (100 Continue is handled by the protocol itself).
    virtual void send_informational(int status, const Headers& headers) = 0;
    // Final status and fields. With end_stream there is no body (or HEAD).
    virtual void send_headers(ResponseHead& head, bool end_stream) = 0;
    // Queues a copy of `data`.
    virtual Result send_body(std::string_view data, bool end_stream) = 0;
    // Like send_body, but the caller keeps `data` alive and unchanged until the exchange ends
    // (Arena::defer), so a writer may send from it without a copy: HTTP/3 hands a small
    // file's cached content to nghttp3 as it is. Writers that copy anyway need not override.
    virtual Result send_shared_body(std::string_view data, bool end_stream) {
        return send_body(data, end_stream);
    }
    // Queues `len` bytes of `fd` from `offset`. The caller keeps fd open until the exchange
    // ends (Arena::defer). Plain TCP uses sendfile(2); other transports copy.
    virtual Result send_file(int fd, off_t offset, size_t len, bool end_stream) = 0;
    // Ends the response with trailer fields (RFC 9110 §6.5), after the body. HTTP/1.1 sends
    // them in a chunked body, HTTP/2 and 3 as a final HEADERS frame; where the framing has no
    // room for them (Content-Length on HTTP/1, HTTP/1.0) they are dropped. Writers that cannot
    // carry trailers end the stream without them.
    virtual Result send_trailers(const Headers& trailers) { return send_body({}, true); }
    // Called once when queued data drained below the low watermark after `blocked`.
    virtual void on_writable(Callback cb) = 0;
    // Called if the exchange is aborted (peer gone, timeout, reset) before end_stream was sent
    // (for a tunnel: before both directions ended); after it no other method of the writer or
    // the body may be called. Arena cleanups run after this.
    virtual void on_abort(Callback cb) = 0;
    // Abort the response: HTTP/1 closes the connection, HTTP/2 and 3 reset the stream.
    virtual void reset() = 0;
    virtual bool headers_sent() const = 0;
    // Bytes of body handed to the transport so far (for logs).
    virtual uint64_t body_bytes_sent() const = 0;
};

const char* status_reason(int status);

// The client's address: Request::client_ip, else the peer's (a request rejected before the
// pipeline ran has only the connection).
inline std::string_view client_ip_of(const Request& req) {
    return !req.client_ip.empty() ? req.client_ip
           : req.conn             ? req.conn->peer_ip
                                  : std::string_view{};
}

// The request's id, made on first use: 32 random hex digits in its arena.
std::string_view request_id_of(const Request& req);
// 32 random hex digits (a per-process generator seeded from the kernel).
void generate_request_id(char out[32]);

} // namespace wraith
