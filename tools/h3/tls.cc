#include "tools/h3/tls.h"

#include <fstream>
#include <iterator>

namespace h3 {

namespace {

// TLS 1.3 only, without middlebox compatibility mode (RFC 9001 §8.4), and only the AEADs
// ngtcp2's GnuTLS backend implements for packet protection. X25519 first, as OpenSSL and
// browsers offer it, so handshakes cost what they cost other clients.
constexpr const char* kPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

constexpr const char* kTicketLabel = "GNUTLS SESSION PARAMETERS";
constexpr const char* kParamsLabel = "QUIC TRANSPORT PARAMETERS";

bool decode_block(const std::string& text, const char* label, std::vector<uint8_t>& out) {
    gnutls_datum_t in{reinterpret_cast<unsigned char*>(const_cast<char*>(text.data())),
                      static_cast<unsigned>(text.size())};
    gnutls_datum_t decoded{};
    if (gnutls_pem_base64_decode2(label, &in, &decoded) < 0) {
        return false;
    }
    out.assign(decoded.data, decoded.data + decoded.size);
    gnutls_free(decoded.data);
    return true;
}

bool encode_block(const std::vector<uint8_t>& data, const char* label, std::string& out) {
    gnutls_datum_t in{const_cast<unsigned char*>(data.data()), static_cast<unsigned>(data.size())};
    gnutls_datum_t encoded{};
    if (gnutls_pem_base64_encode2(label, &in, &encoded) < 0) {
        return false;
    }
    out.append(reinterpret_cast<const char*>(encoded.data), encoded.size);
    gnutls_free(encoded.data);
    return true;
}

} // namespace

TlsContext::~TlsContext() {
    if (priority_) {
        gnutls_priority_deinit(priority_);
    }
    if (credentials_) {
        gnutls_certificate_free_credentials(credentials_);
    }
}

bool TlsContext::init(bool verify, const std::string& ca_file, std::string& error) {
    verify_ = verify;
    if (int rv = gnutls_certificate_allocate_credentials(&credentials_); rv != 0) {
        error = std::string("TLS setup failed: ") + gnutls_strerror(rv);
        return false;
    }
    if (verify) {
        int rv = ca_file.empty() ? gnutls_certificate_set_x509_system_trust(credentials_)
                                 : gnutls_certificate_set_x509_trust_file(
                                       credentials_, ca_file.c_str(), GNUTLS_X509_FMT_PEM);
        if (rv < 0) {
            error = ca_file.empty() ? std::string("cannot load the system trust store: ")
                                    : "cannot load CA file " + ca_file + ": ";
            error += gnutls_strerror(rv);
            return false;
        }
        if (rv == 0 && !ca_file.empty()) {
            error = "no certificate found in CA file " + ca_file;
            return false;
        }
    }
    if (int rv = gnutls_priority_init(&priority_, kPriority, nullptr); rv != 0) {
        error = std::string("TLS priority setup failed: ") + gnutls_strerror(rv);
        return false;
    }
    return true;
}

bool load_session_file(const std::string& path, SessionData& out, std::string& error) {
    out = SessionData{};
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return true;
    }
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (text.empty()) {
        return true;
    }
    if (!decode_block(text, kTicketLabel, out.ticket)) {
        error = "session file " + path + " has no usable TLS session";
        out = SessionData{};
        return false;
    }
    // Transport parameters are optional: without them resumption works, 0-RTT does not.
    decode_block(text, kParamsLabel, out.transport_params);
    return true;
}

bool save_session_file(const std::string& path, const SessionData& data, std::string& error) {
    std::string text;
    if (!encode_block(data.ticket, kTicketLabel, text) ||
        (!data.transport_params.empty() &&
         !encode_block(data.transport_params, kParamsLabel, text))) {
        error = "cannot encode the session for " + path;
        return false;
    }
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << text;
    file.close();
    if (!file) {
        error = "cannot write session file " + path;
        return false;
    }
    return true;
}

std::string describe_verify_failure(gnutls_session_t session) {
    unsigned status = gnutls_session_get_verify_cert_status(session);
    if (status == 0) {
        return "certificate verification failed";
    }
    gnutls_datum_t text{};
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) < 0) {
        return "certificate verification failed";
    }
    std::string message = "certificate verification failed: ";
    message.append(reinterpret_cast<const char*>(text.data), text.size);
    gnutls_free(text.data);
    while (!message.empty() && (message.back() == ' ' || message.back() == '\n')) {
        message.pop_back();
    }
    return message;
}

} // namespace h3
