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

// RFC 8767 §4: the TTL of a stale answer.
constexpr uint32_t kStaleAnswerTtl = 30;

// After `forward` finished: the answer to send in `out` (the upstream's, TTLs clamped; or
// SERVFAIL), stored in the cache when it may be (RFC 2308 for negative answers).
void answer_forwarded(DnsWorker& worker, std::string_view query, const Message& q,
                      const Forward& forward, std::string& out);

// Before a query is answered or forwarded: removes its hop-by-hop EDNS options, Padding and
// edns-tcp-keepalive (RFC 8467 §4.1: no padding towards an unencrypted upstream; keep-alive
// speaks of the client's connection only). `q` keeps telling what the client sent.
void strip_hop_options(std::string& query, const Message& q);

// The answer as the client gets it over an encrypted transport: padded to a multiple of 468
// octets when the query was padded (RFC 8467 §4.1, "if the query was padded"), and with
// edns-tcp-keepalive of `keepalive` (units of 100 ms) when 0 or more (RFC 7828 §3.3.2).
void finish_answer(std::string& answer, const Message& q, int keepalive = -1);

// How long a client may keep `answer`: its smallest TTL, or a negative answer's SOA TTL; 0
// when it has none (RFC 8484 §5.1). Also its rcode in `rcode` when it parses.
uint32_t answer_lifetime(std::string_view answer, uint8_t* rcode = nullptr);

} // namespace wraith::dns
