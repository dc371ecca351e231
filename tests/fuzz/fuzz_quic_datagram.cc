// libFuzzer target for what a QUIC server does with a datagram no connection claims
// (worker/quic/triage.h): header decoding, version checks, Initial acceptance, Retry and
// NEW_TOKEN token verification, and the stateless answers built from it, all in front of
// ngtcp2's connection code. The first input byte picks the server's situation (versions,
// draining, at capacity, IPv4 or IPv6 client); the rest is the datagram.
//
// Beyond not crashing it checks what the endpoint relies on: every verdict agrees with the
// policy, a stateless reset is shorter than what provoked it, and the token round trip holds:
// for every Initial accepted without a token, the Retry we would send carries a token that,
// put into the client's next Initial (with the Retry's SCID as DCID), is accepted as a Retry
// token naming the first DCID; a NEW_TOKEN token from an earlier connection is accepted too;
// and the same token from another address is not.
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/quic_cid.h"
#include "worker/quic/triage.h"

using namespace wraith::quic;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

namespace {

constexpr uint32_t kV1 = NGTCP2_PROTO_VER_V1;
constexpr uint32_t kV2 = NGTCP2_PROTO_VER_V2;
constexpr uint64_t kNow = 1000 * NGTCP2_SECONDS; // fixed: tokens and runs are reproducible
const std::array<uint8_t, 32> kSecret = [] {
    std::array<uint8_t, 32> s{};
    for (size_t i = 0; i < s.size(); ++i)
        s[i] = static_cast<uint8_t>(0xa5 ^ i);
    return s;
}();

struct Client {
    sockaddr_storage addr{};
    socklen_t len = 0;
};

Client client(bool v6, uint16_t port) {
    Client c;
    if (v6) {
        auto& a = reinterpret_cast<sockaddr_in6&>(c.addr);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        a.sin6_port = htons(port);
        c.len = sizeof(a);
    } else {
        auto& a = reinterpret_cast<sockaddr_in&>(c.addr);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        c.len = sizeof(a);
    }
    return c;
}

size_t put_varint(uint8_t* p, uint64_t v) {
    if (v < 64) {
        p[0] = static_cast<uint8_t>(v);
        return 1;
    }
    p[0] = static_cast<uint8_t>(0x40 | (v >> 8));
    p[1] = static_cast<uint8_t>(v);
    return 2; // tokens here are well under 16 KiB
}

// The Initial `pkt` with its token replaced by `token` and, if `dcid` is set, its DCID by
// `dcid`. Empty if `pkt` is not a long header laid out as version 1 and 2 both lay it out.
std::vector<uint8_t> with_token(const uint8_t* pkt, size_t len, const uint8_t* token,
                                size_t toklen, const ngtcp2_cid* dcid) {
    std::vector<uint8_t> out;
    if (len < 7 || !(pkt[0] & 0x80))
        return out;
    size_t pos = 5;
    size_t dcil = pkt[pos];
    if (pos + 1 + dcil + 1 > len)
        return out;
    size_t scid_at = pos + 1 + dcil;
    size_t scil = pkt[scid_at];
    size_t tok_at = scid_at + 1 + scil;
    if (tok_at >= len)
        return out;
    size_t n = size_t{1} << (pkt[tok_at] >> 6);
    if (tok_at + n > len)
        return out;
    uint64_t old = pkt[tok_at] & 0x3f;
    for (size_t i = 1; i < n; ++i)
        old = (old << 8) | pkt[tok_at + i];
    size_t rest = tok_at + n + old;
    if (rest > len)
        return out;
    out.insert(out.end(), pkt, pkt + 5);
    if (dcid) {
        out.push_back(static_cast<uint8_t>(dcid->datalen));
        out.insert(out.end(), dcid->data, dcid->data + dcid->datalen);
    } else {
        out.insert(out.end(), pkt + 5, pkt + scid_at);
    }
    out.insert(out.end(), pkt + scid_at, pkt + tok_at);
    uint8_t v[2];
    out.insert(out.end(), v, v + put_varint(v, toklen));
    out.insert(out.end(), token, token + toklen);
    out.insert(out.end(), pkt + rest, pkt + len);
    return out;
}

// RFC 9000 §14.1: a client's Initial comes in a datagram of at least this many bytes.
constexpr size_t kMinInitial = 1200;
// RFC 9001 §5.8: the Retry Integrity Tag ends every Retry packet.
constexpr size_t kRetryTagLen = 16;

// The token of a Retry packet (RFC 9000 §17.2.5): after the CIDs, up to the tag.
bool retry_token(const uint8_t* pkt, size_t len, const uint8_t** token, size_t* toklen) {
    if (len < 7)
        return false;
    size_t pos = 5;
    pos += 1 + pkt[pos];
    if (pos >= len)
        return false;
    pos += 1 + pkt[pos];
    if (pos + kRetryTagLen > len)
        return false;
    *token = pkt + pos;
    *toklen = len - pos - kRetryTagLen;
    return true;
}

void check_token_round_trip(const TriagePolicy& policy, const Client& from, const uint8_t* pkt,
                            size_t len, const Triage& first) {
    // The Retry we would send, and the client's answer to it.
    ngtcp2_cid scid;
    scid.datalen = wraith::quic_cid::kLength;
    std::memset(scid.data, 0x5c, scid.datalen);
    if (ngtcp2_cid_eq(&scid, &first.hd.dcid)) {
        CHECK(write_retry(nullptr, 0, kSecret, first.hd, scid,
                          reinterpret_cast<const sockaddr*>(&from.addr), from.len, kNow) == 0);
        scid.data[2] ^= 1; // the endpoint's CIDs are random: this only happens to a fuzzer
    }
    uint8_t retry[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
    size_t n = write_retry(retry, sizeof(retry), kSecret, first.hd, scid,
                           reinterpret_cast<const sockaddr*>(&from.addr), from.len, kNow);
    CHECK(n > 0);
    const uint8_t* token;
    size_t toklen;
    CHECK(retry_token(retry, n, &token, &toklen));
    CHECK(toklen > 0 && token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2);
    std::vector<uint8_t> again = with_token(pkt, len, token, toklen, &scid);
    CHECK(!again.empty());
    Triage t;
    triage_unknown(policy, again.data(), again.size(),
                   reinterpret_cast<const sockaddr*>(&from.addr), from.len, kNow + NGTCP2_SECONDS,
                   &t);
    if (again.size() < kMinInitial) {
        CHECK(t.verdict == Verdict::drop);
        return;
    }
    CHECK(t.verdict == Verdict::accept);
    CHECK(t.token_type == NGTCP2_TOKEN_TYPE_RETRY && t.has_original_dcid);
    CHECK(ngtcp2_cid_eq(&t.original_dcid, &first.hd.dcid));
    // The same token from another port is forged as far as the server can tell.
    Client other = client(from.addr.ss_family == AF_INET6, 4434);
    triage_unknown(policy, again.data(), again.size(),
                   reinterpret_cast<const sockaddr*>(&other.addr), other.len,
                   kNow + NGTCP2_SECONDS, &t);
    CHECK(t.verdict == Verdict::invalid_token);
    // The same token with one bit flipped on the path does not open with our secret: it is
    // no token (a close for it would let a bent bit end a client's attempt).
    std::vector<uint8_t> bent(token, token + toklen);
    bent[toklen / 2] ^= 0x10;
    std::vector<uint8_t> mangled = with_token(pkt, len, bent.data(), bent.size(), &scid);
    CHECK(mangled.size() == again.size());
    triage_unknown(policy, mangled.data(), mangled.size(),
                   reinterpret_cast<const sockaddr*>(&from.addr), from.len,
                   kNow + NGTCP2_SECONDS, &t);
    CHECK(t.verdict == Verdict::accept && t.token_type == NGTCP2_TOKEN_TYPE_UNKNOWN);

    // A NEW_TOKEN token from an earlier connection from this address skips validation.
    uint8_t regular[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
    ngtcp2_ssize rl = ngtcp2_crypto_generate_regular_token(
        regular, kSecret.data(), kSecret.size(), reinterpret_cast<const sockaddr*>(&from.addr),
        from.len, kNow - 60 * NGTCP2_SECONDS);
    CHECK(rl > 0);
    again = with_token(pkt, len, regular, static_cast<size_t>(rl), nullptr);
    CHECK(!again.empty());
    triage_unknown(policy, again.data(), again.size(),
                   reinterpret_cast<const sockaddr*>(&from.addr), from.len, kNow, &t);
    if (again.size() < kMinInitial) // a long junk token was replaced: now too short an Initial
        CHECK(t.verdict == Verdict::drop);
    else
        CHECK(t.verdict == Verdict::accept && t.token_type == NGTCP2_TOKEN_TYPE_NEW_TOKEN);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    const uint8_t* pkt = data + 1;
    const size_t len = size - 1;
    static const uint32_t kBoth[] = {kV2, kV1}, kOnly1[] = {kV1}, kOnly2[] = {kV2};
    TriagePolicy policy;
    switch (mode & 3) {
    case 0:
    case 3:
        policy.versions = kBoth;
        break;
    case 1:
        policy.versions = kOnly1;
        break;
    case 2:
        policy.versions = kOnly2;
        break;
    }
    policy.secret = &kSecret;
    policy.draining = mode & 4;
    policy.at_capacity = mode & 8;
    const Client from = client(mode & 16, 4433);

    ngtcp2_version_cid vc;
    Verdict step1 = decode_header(pkt, len, &vc);
    Triage t;
    triage_unknown(policy, pkt, len, reinterpret_cast<const sockaddr*>(&from.addr), from.len,
                   kNow, &t);
    if (step1 == Verdict::drop)
        CHECK(t.verdict == Verdict::drop);

    uint8_t out[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
    size_t n = 0;
    switch (t.verdict) {
    case Verdict::drop:
        break;
    case Verdict::version_negotiation: {
        CHECK(!policy.draining);
        n = write_version_negotiation(out, sizeof(out), policy.versions, t.vc);
        CHECK(n > 0);
        // RFC 9000 §17.2.1: version 0, the client's CIDs swapped.
        CHECK(out[0] & 0x80 && std::memcmp(out + 1, "\0\0\0\0", 4) == 0);
        break;
    }
    case Verdict::stateless_reset:
        CHECK(!(pkt[0] & 0x80));
        n = write_stateless_reset(out, sizeof(out), kSecret, t.vc.dcid, t.vc.dcidlen, len);
        CHECK(n == 0 || (n < len && n >= 21)); // RFC 9000 §10.3: no loops, looks real
        break;
    case Verdict::refuse:
        CHECK(policy.at_capacity && !policy.draining);
        n = write_close(out, sizeof(out), t.hd, NGTCP2_CONNECTION_REFUSED);
        break;
    case Verdict::invalid_token:
        CHECK(!policy.draining && !policy.at_capacity);
        n = write_close(out, sizeof(out), t.hd, NGTCP2_INVALID_TOKEN);
        break;
    case Verdict::accept: {
        CHECK(!policy.draining && !policy.at_capacity);
        bool listed = false;
        for (uint32_t v : policy.versions)
            listed = listed || v == t.hd.version;
        CHECK(listed);
        CHECK((t.token_type == NGTCP2_TOKEN_TYPE_UNKNOWN) == (t.hd.tokenlen == 0));
        CHECK(t.has_original_dcid == (t.token_type == NGTCP2_TOKEN_TYPE_RETRY));
        if (t.token_type == NGTCP2_TOKEN_TYPE_UNKNOWN)
            check_token_round_trip(policy, from, pkt, len, t);
        break;
    }
    }
    CHECK(n <= sizeof(out));
    return 0;
}
