// GnuTLS setup shared by the HTTP/3 client tools: trust, priorities, saved sessions.
#pragma once

#include <gnutls/gnutls.h>

#include <cstdint>
#include <string>
#include <vector>

namespace h3 {

// Client TLS settings shared by every connection of a run: credentials (trust store) and
// the TLS 1.3-only priority list QUIC needs (RFC 9001 §4.2).
class TlsContext {
public:
    TlsContext() = default;
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;
    ~TlsContext();

    // `verify`: check the server's chain and name; trust `ca_file` (PEM) if given, else the
    // system store.
    bool init(bool verify, const std::string& ca_file, std::string& error);

    gnutls_certificate_credentials_t credentials() const { return credentials_; }
    gnutls_priority_t priority() const { return priority_; }
    bool verify() const { return verify_; }

private:
    gnutls_certificate_credentials_t credentials_ = nullptr; // `credentials_` holds the trust list.
    gnutls_priority_t priority_ = nullptr; // `priority_` is parsed once, set on each session.
    bool verify_ = true;                   // `verify_` is false with -k.
};

// What a later connection needs to resume the TLS session (the ticket, RFC 8446 §4.6.1) and
// to send 0-RTT (the server's transport parameters it must remember, RFC 9000 §7.4.1).
struct SessionData {
    std::vector<uint8_t> ticket;           // `ticket` is gnutls_session_get_data2's output.
    std::vector<uint8_t> transport_params; // `transport_params` is ngtcp2-encoded.

    bool empty() const { return ticket.empty(); }
};

// Reads a --session-file. A missing file is not an error: `out` stays empty and true is
// returned. A damaged one is.
bool load_session_file(const std::string& path, SessionData& out, std::string& error);
bool save_session_file(const std::string& path, const SessionData& data, std::string& error);

// One line explaining why certificate verification failed on `session`.
std::string describe_verify_failure(gnutls_session_t session);

} // namespace h3
