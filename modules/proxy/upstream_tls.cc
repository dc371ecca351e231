#include "modules/proxy/upstream_tls.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "modules/proxy/h3_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace wraith::proxy {

namespace {

constexpr unsigned char kAlpnH1[] = "\x08http/1.1";
constexpr unsigned char kAlpnH2[] = "\x02h2"; // protocol = "h2": nothing else will do

// "error:0A000086:SSL routines::certificate verify failed" -> "certificate verify failed"
std::string openssl_reason() {
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (!e)
        return "unknown error";
    const char* reason = ERR_reason_error_string(e);
    if (reason)
        return reason;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

int transport_slot() {
    static int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return slot;
}

// The text form of an IP literal server's address ("127.0.0.1", "::1").
std::string ip_text(const sockaddr_storage& a) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, ip, sizeof ip);
    else
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, ip, sizeof ip);
    return ip;
}

bool is_ip_literal(const std::string& name) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, name.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// TLS over a connected socket, as a client. Reads fill the caller's buffer from as many
// records as are ready, so a large body is read in 64 KiB steps, not one record per event.
class TlsUpstreamTransport final : public UpstreamTransport {
public:
    TlsUpstreamTransport(int fd, SSL* ssl, bool http2, TlsSessionSlot* sessions,
                         std::string name)
        : UpstreamTransport(fd), ssl_(ssl), http2_(http2), sessions_(sessions),
          name_(std::move(name)) {
        SSL_set_fd(ssl_, fd);
        SSL_set_connect_state(ssl_);
        SSL_set_ex_data(ssl_, transport_slot(), this);
        if (sessions_ && sessions_->get())
            SSL_set_session(ssl_, sessions_->get());
    }

    ~TlsUpstreamTransport() override {
        // close_notify, as a courtesy (one non-blocking attempt); never after a fatal error.
        if (ready_ && !broken_ && !write_shut_) {
            ERR_clear_error();
            SSL_shutdown(ssl_);
            ERR_clear_error();
        }
        SSL_free(ssl_);
    }

    bool tls() const override { return true; }

    int handshake() override {
        ERR_clear_error();
        int r = SSL_connect(ssl_);
        if (r == 1 && http2_ && !alpn_is_h2()) {
            broken_ = true;
            error_ = "the server did not agree to HTTP/2 (ALPN h2)";
            return -1;
        }
        if (r == 1) {
            ready_ = true;
            read_want_ = write_want_ = 0;
            return 1;
        }
        int err = SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            read_want_ = write_want_ = err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
            return 0;
        }
        broken_ = true;
        long verify = SSL_get_verify_result(ssl_);
        if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
            verify != X509_V_OK) {
            error_ =
                std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
            if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
                error_ += " (expected " + name_ + ")";
            ERR_clear_error();
        } else if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
            error_ = errno ? std::strerror(errno) : "connection closed during the TLS handshake";
        } else {
            error_ = openssl_reason();
        }
        if (sessions_)
            sessions_->keep(nullptr); // the next attempt starts afresh (no stale session)
        return -1;
    }

    ssize_t read(char* buf, size_t len) override {
        size_t total = 0;
        read_want_ = 0;
        while (total < len) {
            ERR_clear_error();
            size_t n = 0;
            if (SSL_read_ex(ssl_, buf + total, len - total, &n) != 1) {
                if (total == 0)
                    return fail(true);
                // What stopped us is reported by the next call (the SSL keeps its state).
                int err = SSL_get_error(ssl_, 0);
                if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                    read_want_ = err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
                ERR_clear_error();
                break;
            }
            total += n;
        }
        return static_cast<ssize_t>(total);
    }

    ssize_t write(const char* data, size_t len) override {
        ERR_clear_error();
        size_t n = 0;
        if (SSL_write_ex(ssl_, data, len, &n) == 1) {
            write_want_ = 0;
            return static_cast<ssize_t>(n);
        }
        return fail(false);
    }

    int wait_events(bool reading) const override {
        int want = reading ? read_want_ : write_want_;
        return want ? want : reading ? EV_READ : EV_WRITE;
    }

    void shutdown_write() override {
        if (!broken_ && !write_shut_) {
            ERR_clear_error();
            SSL_shutdown(ssl_); // close_notify; the upstream's own comes as a read of 0
            ERR_clear_error();
        }
        write_shut_ = true;
        ::shutdown(fd_, SHUT_WR);
    }

    bool buffered() const override { return SSL_has_pending(ssl_) == 1; }

    // A session the upstream issued (TLS 1.3: after the handshake, read with the response).
    void keep_session(SSL_SESSION* session) {
        if (sessions_)
            sessions_->keep(session);
        else
            SSL_SESSION_free(session);
    }

private:
    // Maps an SSL result to the recv/send conventions, remembering what OpenSSL waits for.
    ssize_t fail(bool reading) {
        int err = SSL_get_error(ssl_, 0);
        int& want = reading ? read_want_ : write_want_;
        switch (err) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            want = err == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
            errno = EAGAIN;
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0; // close_notify (or an EOF: SSL_OP_IGNORE_UNEXPECTED_EOF)
        case SSL_ERROR_SYSCALL:
            broken_ = true;
            ERR_clear_error();
            if (errno == 0 || errno == EAGAIN)
                errno = ECONNRESET;
            return -1;
        default:
            broken_ = true;
            error_ = openssl_reason();
            errno = EPROTO;
            return -1;
        }
    }

    SSL* ssl_;
    bool alpn_is_h2() const {
        const unsigned char* p = nullptr;
        unsigned len = 0;
        SSL_get0_alpn_selected(ssl_, &p, &len);
        return len == 2 && p[0] == 'h' && p[1] == '2';
    }

    bool http2_;               // ALPN h2 offered and required
    TlsSessionSlot* sessions_; // the pool's slot for this server (this worker), or null
    std::string name_;         // the name or IP checked, for messages
    int read_want_ = 0;        // EV_READ or EV_WRITE after WANT_READ / WANT_WRITE
    int write_want_ = 0;
    bool ready_ = false;  // the handshake completed
    bool broken_ = false; // a fatal error: no close_notify
    bool write_shut_ = false;
};

int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* t = static_cast<TlsUpstreamTransport*>(SSL_get_ex_data(ssl, transport_slot()));
    if (!t)
        return 0;
    t->keep_session(session);
    return 1; // the reference is ours
}

} // namespace

TlsSessionSlot::~TlsSessionSlot() {
    SSL_SESSION_free(session_);
}

void TlsSessionSlot::keep(SSL_SESSION* session) {
    SSL_SESSION_free(session_);
    session_ = session;
}

UpstreamTlsContext::~UpstreamTlsContext() {
    SSL_CTX_free(ctx_);
}

std::shared_ptr<const UpstreamTlsContext> UpstreamTlsContext::build(const UpstreamConfig& up,
                                                                    Diagnostics& diag) {
    const UpstreamTls& tls = *up.tls;
    // "upstream.NAME.tls.KEY: ...", or for pass = "https://..." (no table) "proxy.pass: ...".
    const bool implicit = up.name.rfind("https://", 0) == 0 || up.name.rfind("h3://", 0) == 0;
    auto bad = [&](const SourcePos& pos, std::string_view key, const std::string& what) {
        std::string where = implicit ? "proxy.pass" : "upstream." + up.name + ".tls";
        if (!implicit && !key.empty())
            where.append(".").append(key);
        diag.error(pos, where + ": " + what);
    };
    std::shared_ptr<UpstreamTlsContext> c(new UpstreamTlsContext());
    c->verify_ = tls.verify;
    c->session_reuse_ = tls.session_reuse;
    c->server_name_ = tls.server_name;
    c->http2_ = up.http2 || up.fallback_h2; // h3's fallback is HTTP/2 over this context
    SSL_CTX* ctx = c->ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        bad(tls.pos, "", "cannot create a TLS context: " + openssl_reason());
        return nullptr;
    }
    bool ok = true;
    SSL_CTX_set_min_proto_version(ctx, tls.min_version);
    // An upstream that closes without close_notify ends its stream like a TCP FIN would
    // (as NGINX does); bodies with a length or chunks still detect truncation by framing.
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, tls.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    if (!tls.ca.empty()) {
        if (SSL_CTX_load_verify_file(ctx, tls.ca.c_str()) != 1) {
            bad(tls.ca_pos, "ca",
                "cannot load CA certificates from " + tls.ca + ": " + openssl_reason());
            ok = false;
        }
    } else if (tls.verify) {
        // The system bundle, as one file loaded now: a hashed directory would be read on the
        // worker's loop during handshakes.
        const char* env = std::getenv(X509_get_default_cert_file_env());
        std::string bundle = env && *env ? env : X509_get_default_cert_file();
        if (SSL_CTX_load_verify_file(ctx, bundle.c_str()) != 1) {
            bad(tls.pos, "",
                "no ca given and the system CA bundle " + bundle + " cannot be loaded (" +
                    openssl_reason() + "): set ca, or install ca-certificates");
            ok = false;
        }
    }
    if (!tls.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str()) != 1) {
            bad(tls.cert_pos, "cert",
                "cannot load certificate chain " + tls.cert + ": " + openssl_reason());
            ok = false;
        } else if (SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 &&
                   ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
            bad(tls.cert_pos, "key",
                "cannot load private key " + tls.key + ": " + openssl_reason());
            ok = false;
        } else if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            bad(tls.cert_pos, "key",
                "private key " + tls.key + " does not match certificate " + tls.cert);
            ok = false;
        }
    }
    if (tls.session_reuse) {
        // Sessions are kept per server by the pool, not in the context's own cache.
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    if (!ok)
        return nullptr;
    return c;
}

std::unique_ptr<UpstreamTransport> UpstreamTlsContext::connect(int fd, const UpstreamServer& server,
                                                               TlsSessionSlot* sessions) const {
    SSL* ssl = SSL_new(ctx_);
    if (!ssl) {
        ERR_clear_error();
        ::close(fd);
        return nullptr;
    }
    std::string name = !server_name_.empty()  ? server_name_
                       : !server.host.empty() ? server.host
                                              : ip_text(server.addr);
    const bool ip = is_ip_literal(name);
    // RFC 6066 §3: no IP literals in SNI.
    bool ok = ip || SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
    if (ok && verify_) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
        } else {
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(ssl, name.c_str()) == 1;
        }
    }
    ok = ok && (http2_ ? SSL_set_alpn_protos(ssl, kAlpnH2, sizeof kAlpnH2 - 1)
                       : SSL_set_alpn_protos(ssl, kAlpnH1, sizeof kAlpnH1 - 1)) == 0;
    if (!ok) {
        ERR_clear_error();
        SSL_free(ssl);
        ::close(fd);
        return nullptr;
    }
    // Records read ahead of the one asked for: fewer read(2) calls for a large body.
    SSL_set_read_ahead(ssl, 1);
    return std::make_unique<TlsUpstreamTransport>(fd, ssl, http2_, session_reuse_ ? sessions : nullptr,
                                                  std::move(name));
}

void prepare_upstream_tls(UpstreamConfig& up, Diagnostics& diag) {
    if (up.tls && !up.tls->context)
        up.tls->context = UpstreamTlsContext::build(up, diag);
    if (up.http3 && up.tls && !up.tls->quic_context)
        up.tls->quic_context = QuicTlsContext::build(up, diag);
}

} // namespace wraith::proxy
