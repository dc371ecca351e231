// How a TCP connection the accept phase refused is told (docs/decisions.md, "Limits"): a
// refusal the client can read, not a silent close or a reset, at the price of a few bytes and
// no TLS handshake.
#pragma once

#include <cstdint>

namespace wraith {

// Answers and closes `fd`. Plain HTTP: `status` (429, 503) with Retry-After and Connection:
// close, after reading what the client already sent (TCP_DEFER_ACCEPT: usually the request),
// so the close is a FIN and not a reset that could destroy the answer. TLS: a fatal alert in a
// plain record (no handshake to encrypt with yet). status 0: close without a word.
void refuse_connection(int fd, bool tls, int status, uint32_t retry_after_s);

} // namespace wraith
