// HTTPS to upstream servers (OpenSSL 3): the client context of an upstream's `tls` settings,
// built and checked at config load (before workers fork, so `wraith check` reports a missing
// CA file or a key that does not match its certificate), and the TLS transport of one
// connection: a non-blocking SSL_connect driven by the exchange's watchers, the server's
// certificate verified against the CA bundle and the server's name (or IP address), SNI,
// ALPN "http/1.1" (or "h2" for HTTP/2 upstreams, then required), and the last session per server
// offered again so reconnects resume.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "modules/proxy/upstream_config.h"
#include "modules/proxy/upstream_transport.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace wraith::proxy {

// The session a server last gave this worker, offered on the next connection to it. The pool
// keeps one per server (per worker); it owns its reference.
class TlsSessionSlot {
public:
    TlsSessionSlot() = default;
    TlsSessionSlot(TlsSessionSlot&& other) noexcept : session_(other.session_) {
        other.session_ = nullptr;
    }
    TlsSessionSlot& operator=(TlsSessionSlot&&) = delete;
    ~TlsSessionSlot();

    SSL_SESSION* get() const { return session_; }
    void keep(SSL_SESSION* session); // takes the caller's reference; nullptr forgets

private:
    SSL_SESSION* session_ = nullptr;
};

class UpstreamTlsContext {
public:
    // The context of `up.tls`: CA bundle (or the system one), client certificate, minimum
    // version. Problems go to `diag` at the tls settings' positions; nullptr then.
    static std::shared_ptr<const UpstreamTlsContext> build(const UpstreamConfig& up,
                                                           Diagnostics& diag);
    ~UpstreamTlsContext();
    UpstreamTlsContext(const UpstreamTlsContext&) = delete;
    UpstreamTlsContext& operator=(const UpstreamTlsContext&) = delete;

    // A TLS transport over the connected socket `fd` (taken, closed on failure) to `server`:
    // SNI and the name checked are `server_name`, else the server's host name; an IP literal
    // is checked against the certificate's IP addresses and gets no SNI (RFC 6066 §3).
    // `sessions` (may be null) resumes and keeps the server's session. nullptr: out of memory.
    std::unique_ptr<UpstreamTransport> connect(int fd, const UpstreamServer& server,
                                               TlsSessionSlot* sessions) const;

private:
    UpstreamTlsContext() = default;

    SSL_CTX* ctx_ = nullptr;
    bool verify_ = true;
    bool session_reuse_ = true;
    bool http2_ = false;      // ALPN "h2" instead of "http/1.1" (protocol = "h2")
    std::string server_name_; // "" = each server's own
};

// Prepares an upstream's TLS context (ModuleSpec::prepare_upstream of the proxy module).
void prepare_upstream_tls(UpstreamConfig& up, Diagnostics& diag);

} // namespace wraith::proxy
