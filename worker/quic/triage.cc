#include "worker/quic/triage.h"

#include <ngtcp2/ngtcp2_crypto.h>

#include <algorithm>
#include <bit>

#include "common/quic_cid.h"
#include "worker/quic/random.h"

namespace wraith::quic {

namespace {

// RFC 9000 §14.1: a client's first datagram is at least 1200 bytes; only such a datagram
// with a version we do not speak earns a Version Negotiation (§5.2.2, §6.1).
constexpr size_t kMinInitialDatagram = 1200;

bool allowed(std::span<const uint32_t> versions, uint32_t version) {
    return std::find(versions.begin(), versions.end(), version) != versions.end();
}

// A version one bit away from one we accept: no QUIC version in use is (v1 is 0x00000001,
// v2 0x6b3343cf, the reserved ones 0x?a?a?a?a), so it is ours with a bit flipped on the path.
// It gets no Version Negotiation: Chromium abandons a connection attempt on one that lists
// its own version (RFC 9000 §6.2 says discard it), while a dropped Initial is sent again.
bool damaged(std::span<const uint32_t> versions, uint32_t version) {
    return std::any_of(versions.begin(), versions.end(),
                       [version](uint32_t v) { return std::popcount(v ^ version) == 1; });
}

} // namespace

Verdict decode_header(const uint8_t* data, size_t len, ngtcp2_version_cid* vc) {
    if (len == 0)
        return Verdict::drop;
    int rv = ngtcp2_pkt_decode_version_cid(vc, data, len, quic_cid::kLength);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION)
        return Verdict::version_negotiation;
    // Not a QUIC packet we can read: drop silently (RFC 9000 §5.2).
    return rv == 0 ? Verdict::accept : Verdict::drop;
}

void triage_unknown(const TriagePolicy& policy, const uint8_t* data, size_t len,
                    const sockaddr* remote, socklen_t remote_len, uint64_t now, Triage* out) {
    *out = Triage{};
    switch (decode_header(data, len, &out->vc)) {
    case Verdict::drop:
        return;
    case Verdict::version_negotiation: // a version ngtcp2 cannot read
        if (!policy.draining && !damaged(policy.versions, out->vc.version))
            out->verdict = Verdict::version_negotiation;
        return;
    default:
        break;
    }
    if (!(data[0] & 0x80)) {
        // A short-header packet for a connection we do not have (its worker crashed, or the
        // connection ended): tell the client with a stateless reset.
        out->verdict = Verdict::stateless_reset;
        return;
    }
    // A version ngtcp2 reads but [http3] versions leave out, on a first datagram: negotiate
    // (the client retries in one we listed, RFC 9000 §6.2).
    if (out->vc.version && !allowed(policy.versions, out->vc.version)) {
        if (len >= kMinInitialDatagram && !policy.draining &&
            !damaged(policy.versions, out->vc.version))
            out->verdict = Verdict::version_negotiation;
        return;
    }
    if (policy.draining)
        return; // the serving generation takes new connections; the client retransmits
    ngtcp2_pkt_hd& hd = out->hd;
    if (ngtcp2_accept(&hd, data, len) != 0)
        return; // not an acceptable first packet (e.g. too small an Initial)
    if (policy.at_capacity) {
        out->verdict = Verdict::refuse;
        return;
    }
    const std::array<uint8_t, 32>& secret = *policy.secret;
    if (hd.tokenlen > 0) {
        if (hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
            int rv = ngtcp2_crypto_verify_retry_token2(
                &out->original_dcid, hd.token, hd.tokenlen, secret.data(), secret.size(),
                hd.version, remote, remote_len, &hd.dcid, 10 * NGTCP2_SECONDS, now);
            if (rv == NGTCP2_CRYPTO_ERR_VERIFY_TOKEN) {
                // Ours, sealed by our secret, but expired, for another address or another
                // DCID: a stale or replayed token (RFC 9000 §8.1.2).
                out->verdict = Verdict::invalid_token;
                return;
            }
            if (rv == 0) {
                out->has_original_dcid = true;
                out->token_type = NGTCP2_TOKEN_TYPE_RETRY;
            }
            // A token that does not open with our secret is not ours: bits flipped on the
            // path, or a forgery. Answering it with a close would let anyone who can bend
            // one bit of a client's first Initial end that client's connection attempt;
            // it is no token, and the Initial goes on as one without.
        } else if (hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_REGULAR &&
                   ngtcp2_crypto_verify_regular_token(hd.token, hd.tokenlen, secret.data(),
                                                      secret.size(), remote, remote_len,
                                                      3600 * NGTCP2_SECONDS, now) == 0) {
            out->token_type = NGTCP2_TOKEN_TYPE_NEW_TOKEN; // from an earlier connection
        }
        // Anything else is unknown or stale: as if absent (RFC 9000 §8.1.3).
    }
    // RFC 9000 §7.2: a DCID the client chose (no Retry before) is at least 8 bytes. ngtcp2_accept
    // checks that only for an Initial without a token, and a token we do not accept is no
    // token (found by tests/fuzz/fuzz_quic_datagram.cc: such a packet passed, and a Retry for
    // it could not be built).
    if (out->token_type != NGTCP2_TOKEN_TYPE_RETRY && hd.dcid.datalen < NGTCP2_MIN_INITIAL_DCIDLEN)
        return;
    if (out->token_type == NGTCP2_TOKEN_TYPE_UNKNOWN) {
        hd.token = nullptr;
        hd.tokenlen = 0;
    }
    out->verdict = Verdict::accept;
}

// ---- stateless answers ---------------------------------------------------------------------

size_t write_version_negotiation(uint8_t* buf, size_t cap, std::span<const uint32_t> versions,
                                 const ngtcp2_version_cid& vc) {
    uint8_t unused;
    fill_random(&unused, 1);
    // RFC 9000 §6: echo the client's CIDs swapped; list what we accept (RFC 9368 §2.1: the
    // Offered Versions, most preferred first).
    ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf, cap, unused, vc.scid, vc.scidlen,
                                                          vc.dcid, vc.dcidlen, versions.data(),
                                                          versions.size());
    return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t write_retry(uint8_t* buf, size_t cap, const std::array<uint8_t, 32>& secret,
                   const ngtcp2_pkt_hd& hd, const ngtcp2_cid& scid, const sockaddr* remote,
                   socklen_t remote_len, uint64_t now) {
    // RFC 9000 §7.3: the Retry's SCID must differ from the DCID the client chose (ngtcp2
    // asserts it); a fresh random CID equals it only if the client guessed 144 random bits.
    if (ngtcp2_cid_eq(&scid, &hd.dcid))
        return 0;
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2];
    ngtcp2_ssize toklen =
        ngtcp2_crypto_generate_retry_token2(token, secret.data(), secret.size(), hd.version,
                                           remote, remote_len, &scid, &hd.dcid, now);
    if (toklen < 0)
        return 0;
    ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, cap, hd.version, &hd.scid, &scid, &hd.dcid,
                                               token, static_cast<size_t>(toklen));
    return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t write_close(uint8_t* buf, size_t cap, const ngtcp2_pkt_hd& hd, uint64_t error_code) {
    ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buf, cap, hd.version, &hd.scid,
                                                          &hd.dcid, error_code, nullptr, 0);
    return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t write_stateless_reset(uint8_t* buf, size_t cap, const std::array<uint8_t, 32>& secret,
                             const uint8_t* dcid, size_t dcidlen, size_t pktlen) {
    // RFC 9000 §10.3: smaller than what provoked it (no loops between two endpoints), at
    // least 21 bytes (so it looks like a short header packet).
    constexpr size_t kMinLen = 41;
    if (pktlen <= kMinLen || dcidlen != quic_cid::kLength)
        return 0;
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, dcid, dcidlen);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    ngtcp2_crypto_generate_stateless_reset_token(token, secret.data(), secret.size(), &cid);
    size_t len = std::min<size_t>({pktlen - 1, 64, cap});
    uint8_t rand[64];
    fill_random(rand, sizeof(rand));
    ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, len, token, rand,
                                                      len - NGTCP2_STATELESS_RESET_TOKENLEN - 1);
    return n > 0 ? static_cast<size_t>(n) : 0;
}

} // namespace wraith::quic
