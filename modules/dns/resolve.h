// Answering one query, whatever carried it (DoH's exchange, a DoT connection): from the block
// lists, from the shared cache, or, after a Forward (forwarder.h), from an upstream's answer,
// which is kept in the cache when it may be.
#pragma once

#include <string>
#include <string_view>

#include "modules/dns/forwarder.h"
#include "modules/dns/message.h"

namespace wraith::dns {

// Where an answer came from: "blocked", "hit" (the cache) or "miss" (an upstream, or SERVFAIL
// when none answered). Constant strings.
using AnswerSource = const char*;

// A query the carrier has validated (parse() and check_query()) as `query`/`q`. When the block
// lists or the cache answer it, fills `out` (the answer, with the query's ID) and returns the
// source; otherwise returns nullptr and the query must be forwarded. Counts it.
AnswerSource answer_locally(DnsWorker& worker, std::string_view query, const Message& q,
                            std::string& out);

// After `forward` finished: the answer to send in `out` (the upstream's, TTLs clamped; or
// SERVFAIL), stored in the cache when it may be (RFC 2308 for negative answers).
void answer_forwarded(DnsWorker& worker, std::string_view query, const Message& q,
                      const Forward& forward, std::string& out);

// How long a client may keep `answer`: its smallest TTL, or a negative answer's SOA TTL; 0
// when it has none (RFC 8484 §5.1). Also its rcode in `rcode` when it parses.
uint32_t answer_lifetime(std::string_view answer, uint8_t* rcode = nullptr);

} // namespace wraith::dns
