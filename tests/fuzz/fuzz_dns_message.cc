// libFuzzer target for the DNS message walk (modules/dns/message.h): a DoH client and an
// upstream may send any bytes. Checks that parse() never reads out of bounds or loops, that
// what it accepts holds together (a question name that ends in its root label and renders),
// that aging TTLs keeps an accepted message acceptable, that rewriting its hop-by-hop EDNS
// options (padding, keep-alive) keeps it acceptable, and that base64url round-trips.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modules/dns/message.h"

using namespace wraith::dns;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    Message m;
    if (parse(in, m) == ParseError::none) {
        CHECK(m.qname_len >= 1 && m.qname_len <= kMaxName && m.qname[m.qname_len - 1] == 0);
        CHECK(m.question_end <= size);
        CHECK(!name_text(m.qname, m.qname_len).empty());
        std::string copy(in);
        Message again;
        // False only when a pointer aims into a TTL; else the result walks.
        if (rewrite_ttls(copy.data(), copy.size(), 100, 5, 1000)) {
            CHECK(parse(copy, again) == ParseError::none);
            CHECK(again.min_ttl == UINT32_MAX || again.min_ttl <= 1000);
            CHECK(same_question(m, again) == m.response());
        }
        std::string answer;
        build_answer(in, m, kRcodeNxDomain, answer);
        CHECK(parse(answer, again) == ParseError::none && again.rcode() == kRcodeNxDomain);
        // Hop-by-hop options: stripped, then keep-alive and padding added, the message still
        // walks and is a whole number of 468-octet blocks (or the 65535 limit).
        std::string hop(in);
        CHECK(set_hop_options(hop, -1, 0));
        CHECK(parse(hop, again) == ParseError::none && !again.padded && again.keepalive == -1);
        CHECK(again.qname_len == m.qname_len && again.question_end == m.question_end);
        if (set_hop_options(hop, 70, kResponsePaddingBlock)) {
            CHECK(parse(hop, again) == ParseError::none && again.keepalive == 2);
            CHECK(!again.padded || hop.size() % kResponsePaddingBlock == 0 ||
                  hop.size() == kMaxMessage);
        }
    }
    std::string decoded;
    if (base64url_decode(in, decoded))
        CHECK(base64url_encode(decoded) == in);
    return 0;
}
