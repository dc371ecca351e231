// TLS 1.3 for QUIC through GnuTLS and ngtcp2_crypto_gnutls (Debian 12's OpenSSL 3.0 has no
// QUIC API). The same certificate files and the same SNI choice as the TCP listeners
// (worker/tls/context.h), ALPN from the registered applications (worker/quic/application.h:
// "h3" and whatever else registered), session tickets whose key is derived from the master's
// secret so any worker of any generation resumes a session, optional client certificates,
// and 0-RTT only for sites that enable it. Built and checked by the master before workers
// fork.
#pragma once

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/config.h"
#include "modules/router/router.h"

namespace wraith::quic {

class TlsContext;
struct ApplicationSpec;

// What a session's user pointer refers to: ngtcp2_crypto_gnutls reads the conn_ref (it must
// come first), the ClientHello hook records the site SNI chose and the application ALPN chose.
struct SessionOwner {
    ngtcp2_crypto_conn_ref ref{};
    const TlsContext* tls = nullptr;
    const Site* site = nullptr;
    const ApplicationSpec* application = nullptr;
};

class TlsContext {
public:
    ~TlsContext();
    // Loads every site's certificates into GnuTLS credentials; problems go to `diag` with the
    // site's position and set *failed. Returns nullptr when no listener has "h3".
    static std::shared_ptr<const TlsContext> build(const Config& config, Diagnostics& diag,
                                                   bool* failed);

    // Sets up a fresh server session owned by `owner` (its conn_ref filled by the caller) for
    // a client of `listen`, offering the ALPNs it answers (ListenConfig::quic_offers).
    // `secret` keys the session tickets. False with a message on failure.
    bool init_session(gnutls_session_t* out, SessionOwner* owner,
                      const std::array<uint8_t, 32>& secret, const ListenConfig& listen,
                      std::string* error) const;
    bool early_data_enabled() const { return any_early_data_; }

    // What a finished handshake says about the client, kept by the connection for logs and
    // handlers once the session is gone (the same forms as the TCP listeners).
    struct PeerTls {
        std::string sni;
        std::string client_subject;     // RFC 4514, "CN=alice,O=Example"
        std::string client_sans;        // "DNS:a.example, email:alice@example.com"
        std::string client_fingerprint; // SHA-256 of the DER certificate, lower-case hex
    };
    static void describe_peer(gnutls_session_t session, PeerTls* out);

private:
    explicit TlsContext(const Config& config) : router_(config) {}
    static int on_client_hello(gnutls_session_t session);
    static int verify_client(gnutls_session_t session);

    struct SiteCreds {
        const Site* site = nullptr;
        gnutls_certificate_credentials_t creds = nullptr;
        gnutls_certificate_request_t request = GNUTLS_CERT_IGNORE;
    };
    const SiteCreds* creds_for(std::string_view sni) const;

    Router router_;
    std::map<const Site*, SiteCreds> sites_;
    const SiteCreds* default_ = nullptr;
    gnutls_priority_t priority_ = nullptr;
    gnutls_anti_replay_t anti_replay_ = nullptr;
    bool any_early_data_ = false;
};

} // namespace wraith::quic
