#include "modules/proxy/h3_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <cstring>

namespace wraith::proxy {

namespace {

// TLS 1.3 only, without middlebox compatibility mode (RFC 9001 §8.4), and only the AEADs
// ngtcp2's GnuTLS backend protects packets with.
constexpr const char* kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

constexpr char kAlpnH3[] = "h3";

std::string ip_text(const sockaddr_storage& a) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a).sin6_addr, ip, sizeof ip);
    else
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a).sin_addr, ip, sizeof ip);
    return ip;
}

} // namespace

QuicTlsContext::~QuicTlsContext() {
    if (priority_)
        gnutls_priority_deinit(priority_);
    if (credentials_)
        gnutls_certificate_free_credentials(credentials_);
}

std::shared_ptr<const QuicTlsContext> QuicTlsContext::build(const UpstreamConfig& up,
                                                            Diagnostics& diag) {
    const UpstreamTls& tls = *up.tls;
    const bool implicit = up.name.rfind("h3://", 0) == 0;
    auto bad = [&](const SourcePos& pos, std::string_view key, const std::string& what) {
        std::string where = implicit ? "proxy.pass" : "upstream." + up.name + ".tls";
        if (!implicit && !key.empty())
            where.append(".").append(key);
        diag.error(pos, where + ": " + what + " (QUIC, GnuTLS)");
    };
    std::shared_ptr<QuicTlsContext> c(new QuicTlsContext());
    c->verify_ = tls.verify;
    c->server_name_ = tls.server_name;
    if (int rv = gnutls_certificate_allocate_credentials(&c->credentials_); rv != 0) {
        bad(tls.pos, "", std::string("cannot create TLS credentials: ") + gnutls_strerror(rv));
        return nullptr;
    }
    bool ok = true;
    if (tls.verify || !tls.ca.empty()) {
        int rv = tls.ca.empty() ? gnutls_certificate_set_x509_system_trust(c->credentials_)
                                : gnutls_certificate_set_x509_trust_file(
                                      c->credentials_, tls.ca.c_str(), GNUTLS_X509_FMT_PEM);
        if (rv < 0 || (rv == 0 && !tls.ca.empty())) {
            bad(tls.ca.empty() ? tls.pos : tls.ca_pos, tls.ca.empty() ? "" : "ca",
                tls.ca.empty()
                    ? std::string("cannot load the system trust store: ") + gnutls_strerror(rv)
                    : "no CA certificate loaded from " + tls.ca +
                          (rv < 0 ? std::string(": ") + gnutls_strerror(rv) : ""));
            ok = false;
        }
    }
    if (!tls.cert.empty()) {
        int rv = gnutls_certificate_set_x509_key_file(c->credentials_, tls.cert.c_str(),
                                                      tls.key.c_str(), GNUTLS_X509_FMT_PEM);
        if (rv < 0) {
            bad(tls.cert_pos, "cert",
                "cannot load client certificate " + tls.cert + " with key " + tls.key + ": " +
                    gnutls_strerror(rv));
            ok = false;
        }
    }
    if (int rv = gnutls_priority_init(&c->priority_, kPriority, nullptr); rv != 0) {
        bad(tls.pos, "", std::string("TLS priority setup failed: ") + gnutls_strerror(rv));
        ok = false;
    }
    return ok ? c : nullptr;
}

gnutls_session_t QuicTlsContext::new_session(const UpstreamServer& server, QuicPeerName& peer,
                                             std::string& error) const {
    gnutls_session_t s = nullptr;
    if (int rv = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA); rv != 0) {
        error = std::string("gnutls_init: ") + gnutls_strerror(rv);
        return nullptr;
    }
    auto fail = [&](const std::string& what) {
        error = what;
        gnutls_deinit(s);
        return nullptr;
    };
    if (gnutls_priority_set(s, priority_) != 0)
        return fail("gnutls_priority_set failed");
    if (ngtcp2_crypto_gnutls_configure_client_session(s) != 0)
        return fail("ngtcp2_crypto_gnutls_configure_client_session failed");
    if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, credentials_) != 0)
        return fail("gnutls_credentials_set failed");
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpnH3)),
                        sizeof kAlpnH3 - 1};
    gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY);
    peer.name = !server_name_.empty()  ? server_name_
                : !server.host.empty() ? server.host
                                       : ip_text(server.addr);
    peer.ip_len = 0;
    if (inet_pton(AF_INET, peer.name.c_str(), peer.ip) == 1)
        peer.ip_len = 4;
    else if (inet_pton(AF_INET6, peer.name.c_str(), peer.ip) == 1)
        peer.ip_len = 16;
    if (!peer.ip_len)
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, peer.name.data(), peer.name.size());
    if (verify_) {
        // Chain and name (or IP SAN) checked inside the handshake: a mismatch fails it.
        peer.vdata.type = peer.ip_len ? GNUTLS_DT_IP_ADDRESS : GNUTLS_DT_DNS_HOSTNAME;
        peer.vdata.data =
            peer.ip_len ? peer.ip : reinterpret_cast<unsigned char*>(peer.name.data());
        peer.vdata.size = peer.ip_len ? static_cast<unsigned>(peer.ip_len) : 0;
        gnutls_session_set_verify_cert2(s, &peer.vdata, 1, 0);
    }
    return s;
}

std::string quic_verify_failure(gnutls_session_t session) {
    unsigned status = gnutls_session_get_verify_cert_status(session);
    if (status == 0)
        return {};
    gnutls_datum_t text{};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) < 0)
        return "certificate verification failed";
    std::string message = "certificate verification failed: ";
    message.append(reinterpret_cast<const char*>(text.data), text.size);
    gnutls_free(text.data);
    while (!message.empty() && (message.back() == ' ' || message.back() == '\n'))
        message.pop_back();
    return message;
}

} // namespace wraith::proxy
