#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "worker/quic/triage.h"

using namespace wraith::quic;

namespace {

const std::array<uint8_t, 32> kSecret{1, 2, 3};
const uint32_t kBoth[] = {NGTCP2_PROTO_VER_V2, NGTCP2_PROTO_VER_V1};

// A real first datagram of gtlsclient (QUIC v1, 18-byte DCID, no token), from the fuzz corpus;
// its first byte there is the fuzz target's mode byte.
std::vector<uint8_t> initial_v1() {
    std::ifstream f(std::string(WRAITH_SOURCE_DIR) + "/tests/fuzz/corpus/quic_datagram/initial_v1",
                    std::ios::binary);
    std::vector<uint8_t> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    REQUIRE(d.size() > 1200);
    d.erase(d.begin());
    return d;
}

struct Loopback {
    sockaddr_in addr{};
    Loopback() {
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(4433);
    }
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&addr); }
};

Triage run(const std::vector<uint8_t>& pkt, TriagePolicy policy = {}) {
    if (policy.versions.empty())
        policy.versions = kBoth;
    policy.secret = &kSecret;
    Loopback from;
    Triage t;
    triage_unknown(policy, pkt.data(), pkt.size(), from.sa(), sizeof(from.addr),
                   100 * NGTCP2_SECONDS, &t);
    return t;
}

} // namespace

TEST_CASE("a client's first Initial is accepted, refused at capacity, ignored while draining",
          "[quic][triage]") {
    std::vector<uint8_t> pkt = initial_v1();
    Triage t = run(pkt);
    CHECK(t.verdict == Verdict::accept);
    CHECK(t.token_type == NGTCP2_TOKEN_TYPE_UNKNOWN);
    TriagePolicy full;
    full.at_capacity = true;
    CHECK(run(pkt, full).verdict == Verdict::refuse);
    TriagePolicy draining;
    draining.draining = true;
    CHECK(run(pkt, draining).verdict == Verdict::drop);
}

TEST_CASE("a version the config leaves out gets Version Negotiation naming the config's",
          "[quic][triage]") {
    static const uint32_t only_v2[] = {NGTCP2_PROTO_VER_V2};
    TriagePolicy policy;
    policy.versions = only_v2;
    const std::vector<uint8_t> pkt = initial_v1(); // t.vc points into it
    Triage t = run(pkt, policy);
    REQUIRE(t.verdict == Verdict::version_negotiation);
    uint8_t buf[256];
    size_t n = write_version_negotiation(buf, sizeof(buf), only_v2, t.vc);
    REQUIRE(n > 4);
    CHECK(std::vector<uint8_t>(buf + n - 4, buf + n) ==
          std::vector<uint8_t>{0x6b, 0x33, 0x43, 0xcf});
    // Below 1200 bytes nothing is said (RFC 9000 §5.2.2).
    std::vector<uint8_t> small = initial_v1();
    small.resize(1199);
    CHECK(run(small, policy).verdict == Verdict::drop);
}

TEST_CASE("a version one bit away from one we speak is damage: dropped, not negotiated",
          "[quic][triage]") {
    std::vector<uint8_t> pkt = initial_v1();
    const uint32_t v1 = NGTCP2_PROTO_VER_V1;
    for (int bit = 0; bit < 32; ++bit) {
        uint32_t v = v1 ^ (1u << bit);
        for (int i = 0; i < 4; ++i)
            pkt[1 + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
        INFO("version " << std::hex << v);
        CHECK(run(pkt).verdict == Verdict::drop);
    }
    // Two bits off, or a reserved version (RFC 9000 §15): a version someone may speak.
    for (uint32_t v : {v1 ^ 0x3u, 0x1a2a3a4au, 0xff00001du}) {
        for (int i = 0; i < 4; ++i)
            pkt[1 + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
        INFO("version " << std::hex << v);
        CHECK(run(pkt).verdict == Verdict::version_negotiation);
    }
    // v2 one bit off, with only v1 configured, is a version we do not speak at all.
    static const uint32_t only_v1[] = {NGTCP2_PROTO_VER_V1};
    TriagePolicy policy;
    policy.versions = only_v1;
    uint32_t near_v2 = NGTCP2_PROTO_VER_V2 ^ 0x100u;
    for (int i = 0; i < 4; ++i)
        pkt[1 + i] = static_cast<uint8_t>(near_v2 >> (24 - 8 * i));
    CHECK(run(pkt, policy).verdict == Verdict::version_negotiation);
    CHECK(run(pkt).verdict == Verdict::drop);
}

TEST_CASE("an Initial with a token we do not accept still needs an 8-byte DCID",
          "[quic][triage]") {
    // RFC 9000 §7.2; ngtcp2_accept checks it only without a token (the fuzz target's find).
    std::vector<uint8_t> pkt = initial_v1();
    const size_t dcil = pkt[5];
    const size_t token_at = 6 + dcil + 1 + pkt[6 + dcil];
    REQUIRE(pkt[token_at] == 0); // no token
    std::vector<uint8_t> junk(pkt.begin(), pkt.begin() + 5);
    junk.push_back(4); // a 4-byte DCID
    junk.insert(junk.end(), {1, 2, 3, 4});
    junk.insert(junk.end(), pkt.begin() + 6 + dcil, pkt.begin() + token_at);
    junk.push_back(20); // a 20-byte token of nobody's
    junk.insert(junk.end(), 20, 0x77);
    junk.insert(junk.end(), pkt.begin() + token_at + 1, pkt.end());
    CHECK(run(junk).verdict == Verdict::drop);
}

TEST_CASE("a Retry is never built with the client's own DCID as its SCID", "[quic][triage]") {
    const std::vector<uint8_t> pkt = initial_v1(); // t.hd points into it
    Triage t = run(pkt);
    REQUIRE(t.verdict == Verdict::accept);
    Loopback from;
    uint8_t buf[1500];
    CHECK(write_retry(buf, sizeof(buf), kSecret, t.hd, t.hd.dcid, from.sa(), sizeof(from.addr),
                      100 * NGTCP2_SECONDS) == 0);
    ngtcp2_cid other = t.hd.dcid;
    other.data[0] ^= 1;
    CHECK(write_retry(buf, sizeof(buf), kSecret, t.hd, other, from.sa(), sizeof(from.addr),
                      100 * NGTCP2_SECONDS) > 0);
}

TEST_CASE("a stateless reset is shorter than what provoked it and needs our CID length",
          "[quic][triage]") {
    uint8_t cid[18] = {};
    uint8_t buf[128];
    size_t n = write_stateless_reset(buf, sizeof(buf), kSecret, cid, sizeof(cid), 50);
    CHECK((n > 0 && n < 50));
    CHECK(write_stateless_reset(buf, sizeof(buf), kSecret, cid, sizeof(cid), 41) == 0);
    CHECK(write_stateless_reset(buf, sizeof(buf), kSecret, cid, 8, 100) == 0);
}
