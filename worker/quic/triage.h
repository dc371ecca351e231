// What a server does with a datagram no connection of ours claimed, decided before any
// connection state exists (RFC 9000 §5.2, §6, §8.1, §10.3): drop it, answer it statelessly
// (Version Negotiation, stateless reset, Retry, CONNECTION_CLOSE), or start a connection.
// Pure functions over the packet bytes, the master's secret and the [http3] versions, so the
// endpoint (worker/quic/endpoint.h) acts on the verdict and the fuzz target
// (tests/fuzz/fuzz_quic_datagram.cc) feeds it hostile datagrams without sockets.
#pragma once

#include <ngtcp2/ngtcp2.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace wraith::quic {

// What triage needs to know about the server.
struct TriagePolicy {
    std::span<const uint32_t> versions;    // [http3] versions, most preferred first
    const std::array<uint8_t, 32>* secret; // keys Retry and NEW_TOKEN tokens
    bool draining = false;                 // this worker takes no new connections
    bool at_capacity = false;              // http3.max_connections reached
};

enum class Verdict {
    drop,                // not for us, or nothing to say (RFC 9000 §5.2.2)
    version_negotiation, // a version we do not speak (RFC 9000 §6)
    stateless_reset,     // a short-header packet for a connection we do not have (§10.3)
    refuse,              // at capacity: CONNECTION_CLOSE(CONNECTION_REFUSED)
    invalid_token,       // a Retry token that fails verification: CONNECTION_CLOSE(INVALID_TOKEN)
    accept,              // a new connection (Retry first if the endpoint wants one and the
                         // address is not validated: token_type UNKNOWN)
};

// vc and hd point into the datagram triaged: valid as long as its bytes are.
struct Triage {
    Verdict verdict = Verdict::drop;
    ngtcp2_version_cid vc{}; // the header's version and CIDs (all but drop)
    ngtcp2_pkt_hd hd{};      // the Initial's header (refuse, invalid_token, accept)
    // accept: what validated the client's address (a Retry or NEW_TOKEN token in hd), and
    // after a Retry the client's first DCID, which the token carried.
    ngtcp2_token_type token_type = NGTCP2_TOKEN_TYPE_UNKNOWN;
    bool has_original_dcid = false;
    ngtcp2_cid original_dcid{};
};

// Step 1 for every datagram: the version and CIDs. `vc` is filled unless it returns drop;
// version_negotiation for a version ngtcp2 cannot read; otherwise the caller looks the DCID
// up and calls triage_unknown when no connection has it.
Verdict decode_header(const uint8_t* data, size_t len, ngtcp2_version_cid* vc);
// Step 2 for a datagram whose DCID is nobody's. `*out` is filled as the verdict says.
void triage_unknown(const TriagePolicy& policy, const uint8_t* data, size_t len,
                    const sockaddr* remote, socklen_t remote_len, uint64_t now, Triage* out);

// ---- the stateless answers, written into `buf` (returns the length, 0 if none fits)

size_t write_version_negotiation(uint8_t* buf, size_t cap, std::span<const uint32_t> versions,
                                 const ngtcp2_version_cid& vc);
// A Retry whose token carries hd.dcid; `scid` is the fresh CID the client is to use next.
size_t write_retry(uint8_t* buf, size_t cap, const std::array<uint8_t, 32>& secret,
                   const ngtcp2_pkt_hd& hd, const ngtcp2_cid& scid, const sockaddr* remote,
                   socklen_t remote_len, uint64_t now);
// Our SCID is the client's chosen DCID: the Initial keys both sides hold derive from it
// (RFC 9001 §5.2), so the client can read the close.
size_t write_close(uint8_t* buf, size_t cap, const ngtcp2_pkt_hd& hd, uint64_t error_code);
// A stateless reset shorter than the packet (`pktlen`) that provoked it; 0 if that packet is
// too short to answer without risking a loop between two endpoints, or `dcid` is not the
// length ours have.
size_t write_stateless_reset(uint8_t* buf, size_t cap, const std::array<uint8_t, 32>& secret,
                             const uint8_t* dcid, size_t dcidlen, size_t pktlen);

} // namespace wraith::quic
