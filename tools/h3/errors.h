// Names for QUIC and HTTP/3 error codes, for one-line error messages.
#pragma once

#include <cstdint>
#include <string>

namespace h3 {

// "H3_REQUEST_CANCELLED" for an HTTP/3 or QPACK application error code (RFC 9114 §8.1,
// RFC 9204 §6), "0x1234" for an unknown one.
std::string application_error_name(uint64_t code);
// "PROTOCOL_VIOLATION", "CRYPTO_ERROR(handshake failure)" ... (RFC 9000 §20.1).
std::string transport_error_name(uint64_t code);

} // namespace h3
