// Answering a query from the block lists, the cache or an upstream (resolve.h).
#include "modules/dns/resolve.h"

#include <algorithm>

namespace wraith::dns {

AnswerSource answer_locally(DnsWorker& worker, std::string_view query, const Message& q,
                            std::string& out) {
    Counters& counters = worker.cache.counters();
    const DnsConfig& dns = worker.dns;
    if (dns.blocks(q.qname, q.qname_len)) {
        counters.blocked.fetch_add(1, std::memory_order_relaxed);
        std::string_view address;
        if (q.qtype == kTypeA && q.qclass == kClassIn)
            address = dns.block_v4;
        else if (q.qtype == kTypeAaaa && q.qclass == kClassIn)
            address = dns.block_v6;
        const bool has_address = !dns.block_v4.empty() || !dns.block_v6.empty();
        out.clear();
        build_answer(query, q, has_address ? kRcodeNoError : kRcodeNxDomain, out, address,
                     std::max<uint32_t>(dns.min_ttl, 60));
        return "blocked";
    }
    uint32_t age = 0;
    if (worker.cache.lookup(CacheKey(q), monotonic_ms(), out, age, dns.serve_stale)) {
        set_id(out.data(), q.id);
        if (rewrite_ttls(out.data(), out.size(), age)) {
            counters.cache_hits.fetch_add(1, std::memory_order_relaxed);
            return "hit";
        }
        out.clear(); // aged, it no longer walks: ask upstream
    }
    counters.cache_misses.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
}

void answer_forwarded(DnsWorker& worker, std::string_view query, const Message& q,
                      const Forward& forward, std::string& out) {
    out.clear();
    const DnsConfig& dns = worker.dns;
    if (!forward.ok()) {
        // RFC 8767 §4: every upstream failed, so an answer that expired less than
        // serve_stale ago is better than SERVFAIL; its TTLs say 30 s (stale-answer-ttl).
        uint32_t age = 0;
        if (dns.serve_stale > 0 &&
            worker.cache.lookup(CacheKey(q), monotonic_ms(), out, age, dns.serve_stale, true)) {
            set_id(out.data(), q.id);
            if (rewrite_ttls(out.data(), out.size(), 0, kStaleAnswerTtl, kStaleAnswerTtl)) {
                worker.cache.counters().stale.fetch_add(1, std::memory_order_relaxed);
                return;
            }
        }
        out.clear();
        build_answer(query, q, kRcodeServFail, out);
        return;
    }
    out = forward.answer();
    const Message& m = forward.answer_message();
    // How long the cache keeps it: the smallest TTL clamped to [min_ttl, max_ttl]; a negative
    // answer (NXDOMAIN, or NOERROR without answers) its SOA's negative TTL capped by
    // negative_ttl (RFC 2308 §5), and not at all without a SOA. Errors and truncated answers
    // are not cached.
    const bool negative =
        m.rcode() == kRcodeNxDomain || (m.rcode() == kRcodeNoError && m.ancount == 0);
    uint32_t keep = 0;
    if (m.truncated()) {
        keep = 0; // truncated even over TCP
    } else if (negative) {
        if (m.soa_ttl != UINT32_MAX)
            keep = std::min(m.soa_ttl, dns.negative_ttl);
    } else if (m.rcode() == kRcodeNoError && m.min_ttl != UINT32_MAX) {
        keep = std::clamp(m.min_ttl, dns.min_ttl, dns.max_ttl);
        if (!rewrite_ttls(out.data(), out.size(), 0, dns.min_ttl, dns.max_ttl)) {
            out.clear(); // the upstream's names lean on its TTLs: not an answer to pass on
            build_answer(query, q, kRcodeServFail, out);
            return;
        }
    }
    if (keep > 0)
        worker.cache.store(CacheKey(q), out, keep, monotonic_ms());
}

void strip_hop_options(std::string& query, const Message& q) {
    if (q.padded || q.keepalive >= 0)
        set_hop_options(query, -1, 0);
}

void finish_answer(std::string& answer, const Message& q, int keepalive) {
    if (q.padded || keepalive >= 0)
        set_hop_options(answer, keepalive, q.padded ? kResponsePaddingBlock : 0);
}

uint32_t answer_lifetime(std::string_view answer, uint8_t* rcode) {
    Message m;
    if (parse(answer, m) != ParseError::none)
        return 0;
    if (rcode)
        *rcode = m.rcode();
    const uint32_t smallest = std::min(m.min_ttl, m.soa_ttl);
    return smallest == UINT32_MAX ? 0 : smallest;
}

} // namespace wraith::dns
