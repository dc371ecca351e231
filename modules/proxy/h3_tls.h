// TLS for HTTP/3 upstreams (protocol = "h3"): QUIC's handshake runs in GnuTLS (ngtcp2's
// crypto backend here; Debian 12's OpenSSL 3.0 has no QUIC API), so an h3 upstream's `tls`
// settings are built twice at config load: the OpenSSL context (upstream_tls.h) for the
// HTTP/2 fallback, and these GnuTLS credentials, from the same CA bundle (or the system
// store), client certificate, server_name and verify setting, so both paths trust alike.
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <string>

#include "common/config.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

// One connection's verification target: what GnuTLS checks the certificate against. GnuTLS
// keeps pointers into it, so it lives as long as the session (the H3Session owns both).
struct QuicPeerName {
    std::string name;          // the host name or IP text checked, for messages
    unsigned char ip[16] = {}; // an IP literal's raw address (IP SAN match)
    size_t ip_len = 0;         // 0: `name` is a DNS name
    gnutls_typed_vdata_st vdata{};
};

class QuicTlsContext {
public:
    // The credentials of `up.tls`; problems go to `diag` at the tls settings; nullptr then.
    static std::shared_ptr<const QuicTlsContext> build(const UpstreamConfig& up, Diagnostics& diag);
    ~QuicTlsContext();
    QuicTlsContext(const QuicTlsContext&) = delete;
    QuicTlsContext& operator=(const QuicTlsContext&) = delete;

    // A GnuTLS client session for a QUIC connection to `server`: TLS 1.3 priorities, ALPN
    // "h3", SNI (none for an IP literal, RFC 6066 §3) and certificate verification against
    // `peer` (filled here). The caller hands it to ngtcp2. nullptr and `error` on failure.
    gnutls_session_t new_session(const UpstreamServer& server, QuicPeerName& peer,
                                 std::string& error) const;
    bool verify() const { return verify_; }

private:
    QuicTlsContext() = default;

    gnutls_certificate_credentials_t credentials_ = nullptr;
    gnutls_priority_t priority_ = nullptr;
    bool verify_ = true;
    std::string server_name_; // "" = each server's own
};

// The verification failure of a handshake, in words ("certificate verification failed: The
// certificate is NOT trusted. ..."), or "" when the certificate was not the problem.
std::string quic_verify_failure(gnutls_session_t session);

} // namespace wraith::proxy
