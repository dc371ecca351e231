// The classic BPF program that steers QUIC datagrams between the sockets of a reuseport group,
// run by the kernel against real sockets on loopback.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cstdio>
#include <cstring>
#include <string>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "common/quic_cid.h"
#include "master/quic_sockets.h"

using namespace wraith;

namespace {

struct Group {
    std::vector<int> fds;
    sockaddr_in addr{};
    ~Group() {
        for (int fd : fds)
            ::close(fd);
    }
};

void make_group(Group& g, size_t n) {
    g.addr.sin_family = AF_INET;
    g.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (size_t i = 0; i < n; ++i) {
        int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        REQUIRE(fd >= 0);
        int one = 1;
        REQUIRE(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&g.addr), sizeof(g.addr)) == 0);
        if (i == 0) {
            socklen_t len = sizeof(g.addr);
            getsockname(fd, reinterpret_cast<sockaddr*>(&g.addr), &len);
        }
        g.fds.push_back(fd);
    }
}

// Sends `pkt` from a fresh client socket (a new source port each time, like a migrating
// client) and returns the index of the group socket that received it.
int deliver(Group& g, const std::vector<uint8_t>& pkt) {
    int c = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(c >= 0);
    REQUIRE(sendto(c, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&g.addr),
                   sizeof(g.addr)) == static_cast<ssize_t>(pkt.size()));
    ::close(c);
    std::vector<pollfd> pfds;
    for (int fd : g.fds)
        pfds.push_back({fd, POLLIN, 0});
    REQUIRE(poll(pfds.data(), pfds.size(), 1000) == 1);
    for (size_t i = 0; i < pfds.size(); ++i) {
        if (pfds[i].revents & POLLIN) {
            char buf[2048];
            REQUIRE(recv(g.fds[i], buf, sizeof(buf), 0) == static_cast<ssize_t>(pkt.size()));
            return static_cast<int>(i);
        }
    }
    return -1;
}

std::vector<uint8_t> short_packet(uint8_t index, uint8_t marker, uint8_t salt) {
    std::vector<uint8_t> p(60, salt);
    p[0] = 0x40;
    p[1 + quic_cid::kIndexOffset] = index;
    p[1 + quic_cid::kMarkerOffset] = marker;
    return p;
}

std::vector<uint8_t> long_packet(uint8_t type, std::vector<uint8_t> dcid) {
    std::vector<uint8_t> p = {static_cast<uint8_t>(0xc0 | type << 4), 0, 0, 0, 1,
                              static_cast<uint8_t>(dcid.size())};
    p.insert(p.end(), dcid.begin(), dcid.end());
    p.resize(1200, 0);
    return p;
}

} // namespace

TEST_CASE("QUIC steering: our CIDs reach the socket they name, whatever the source port") {
    Group g;
    make_group(g, 4);
    const uint8_t marker = 0x5a;
    std::vector<sock_filter> prog = quic_steering_program(marker, {2, 3}, {0, 1, 2, 3});
    sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
    REQUIRE(setsockopt(g.fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) ==
            0);

    for (uint8_t salt = 1; salt <= 8; ++salt)
        for (uint8_t index = 0; index < 4; ++index)
            CHECK(deliver(g, short_packet(index, marker, salt)) == index);

    // Handshake packets (long header) with our 18-byte CID: by the index too.
    std::vector<uint8_t> cid(quic_cid::kLength, 7);
    cid[quic_cid::kMarkerOffset] = marker;
    for (uint8_t index = 0; index < 4; ++index) {
        cid[quic_cid::kIndexOffset] = index;
        CHECK(deliver(g, long_packet(2, cid)) == index);
    }
}

TEST_CASE("QUIC steering: new connections go to serving sockets, the same one per DCID") {
    Group g;
    make_group(g, 4);
    const uint8_t marker = 0x5a;
    std::vector<sock_filter> prog = quic_steering_program(marker, {1, 3}, {0, 1, 2, 3});
    sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
    REQUIRE(setsockopt(g.fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) ==
            0);
    int seen[4] = {};
    for (uint8_t i = 0; i < 40; ++i) {
        std::vector<uint8_t> dcid = {i, static_cast<uint8_t>(i * 7), 9, static_cast<uint8_t>(i * 13),
                                     1, 2, 3, 4};
        int first = deliver(g, long_packet(0, dcid));
        REQUIRE((first == 1 || first == 3));
        ++seen[first];
        // A retransmitted Initial from another port (or after a reload) picks the same socket.
        CHECK(deliver(g, long_packet(0, dcid)) == first);
    }
    CHECK(seen[1] > 0);
    CHECK(seen[3] > 0);
    // A short-header packet whose DCID lacks the marker (not ours): a serving socket too.
    std::vector<uint8_t> foreign = short_packet(0, marker ^ 0xff, 3);
    int to = deliver(g, foreign);
    CHECK((to == 1 || to == 3));
    // A too-short datagram is still delivered somewhere serving, never dropped by the program.
    to = deliver(g, {0x40, 1, 2});
    CHECK((to == 1 || to == 3));
}

TEST_CASE("QUIC steering: a CID naming no live socket goes to a serving one") {
    Group g;
    make_group(g, 4);
    const uint8_t marker = 0x5a;
    // Socket 0's worker is gone (index free); sockets 1..3 are read; 2 and 3 serve.
    std::vector<sock_filter> prog = quic_steering_program(marker, {2, 3}, {1, 2, 3});
    sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
    REQUIRE(setsockopt(g.fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) ==
            0);
    CHECK(deliver(g, short_packet(1, marker, 9)) == 1); // live: its owner
    for (uint8_t salt = 1; salt <= 6; ++salt) {
        int to = deliver(g, short_packet(0, marker, salt)); // dead: a serving socket resets it
        CHECK((to == 2 || to == 3));
        to = deliver(g, short_packet(200, marker, salt)); // never used at all
        CHECK((to == 2 || to == 3));
    }
    // A client's first Initial whose random 18-byte DCID happens to carry the marker and a
    // dead index: treated as new, not sent to nobody.
    std::vector<uint8_t> cid(quic_cid::kLength, 0x33);
    cid[quic_cid::kMarkerOffset] = marker;
    cid[quic_cid::kIndexOffset] = 0;
    int to = deliver(g, long_packet(0, cid));
    CHECK((to == 2 || to == 3));
    // Indices 32 and up use the other bitmap words.
    std::vector<sock_filter> prog2 = quic_steering_program(marker, {3}, {3, 40, 255});
    CHECK_FALSE(prog2.empty());
}

// ---- UDP socket buffers --------------------------------------------------------------------

TEST_CASE("an unprivileged UDP buffer request is capped at rmem_max and the warning names the "
          "sysctls", "[quic][sockets]") {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    long rmem_max = 0;
    if (FILE* f = std::fopen("/proc/sys/net/core/rmem_max", "r")) {
        if (std::fscanf(f, "%ld", &rmem_max) != 1)
            rmem_max = 0;
        std::fclose(f);
    }
    REQUIRE(rmem_max > 0);
    const uint64_t asked = static_cast<uint64_t>(rmem_max) * 2; // more than the cap
    wraith::UdpBufferSizes got = wraith::size_udp_buffers(fd, asked, false);
    CHECK(got.rcv == rmem_max);
    std::string w = wraith::udp_buffer_warning(asked, got);
    CHECK(w.find("sysctl -w net.core.rmem_max=" + std::to_string(asked)) != std::string::npos);
    CHECK(w.find("http3.udp_buffer_size") != std::string::npos);
    ::close(fd);
}

TEST_CASE("a UDP buffer the kernel granted in full gives no warning", "[quic][sockets]") {
    CHECK(wraith::udp_buffer_warning(1 << 20, {1 << 20, 1 << 20}).empty());
    std::string w = wraith::udp_buffer_warning(1 << 20, {1 << 20, 212992});
    CHECK(w.find("wmem_max") != std::string::npos);
    CHECK(w.find("rmem_max") == std::string::npos);
}

TEST_CASE("a privileged UDP buffer request gets the size asked", "[quic][sockets]") {
    if (geteuid() != 0)
        return; // SO_RCVBUFFORCE needs CAP_NET_ADMIN; the unprivileged case is above
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    wraith::UdpBufferSizes got = wraith::size_udp_buffers(fd, 16 << 20, true);
    CHECK(got.rcv == 16 << 20);
    CHECK(got.snd == 16 << 20);
    ::close(fd);
}
