// UDP sockets for QUIC listeners (those with "h3" in protocols), owned by the master.
//
// Each QUIC listener has one SO_REUSEPORT group of UDP sockets; socket i of every group belongs
// to the worker process holding "socket index" i (one per live worker of any generation). The
// master never closes a socket of a group while the listener lives, so a socket's position in
// the kernel's group stays its index, and a classic BPF program attached to the group steers
// each datagram: one carrying a Wraith connection ID goes to the socket its first byte names
// (common/quic_cid.h), whatever the client's address; anything else (a new connection) goes to
// a socket of the serving generation, picked by a hash of the client's DCID. See
// docs/decisions.md, "QUIC packet steering".
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"

namespace wraith {

// The steering program for a group: `serving` lists the socket indices new connections go to
// (the current generation's workers), `live` every index a worker reads (all generations),
// `marker` is byte 1 of every CID this master issues. Empty if it cannot be expressed.
std::vector<sock_filter> quic_steering_program(uint8_t marker, const std::vector<uint8_t>& serving,
                                               const std::vector<uint8_t>& live);

// What the kernel granted a UDP socket's buffers, in bytes.
struct UdpBufferSizes {
    int rcv = 0;
    int snd = 0;
};
// Asks for `size` bytes each way: SO_RCVBUFFORCE / SO_SNDBUFFORCE when `privileged` (they
// need CAP_NET_ADMIN, and fall back), else SO_RCVBUF / SO_SNDBUF, which the kernel caps at
// net.core.rmem_max / wmem_max. Returns what it granted.
UdpBufferSizes size_udp_buffers(int fd, uint64_t size, bool privileged);
// One line naming the sysctls to raise when `got` is short of `asked`; empty otherwise.
std::string udp_buffer_warning(uint64_t asked, UdpBufferSizes got);

class QuicSockets {
public:
    QuicSockets();
    ~QuicSockets();
    QuicSockets(const QuicSockets&) = delete;
    QuicSockets& operator=(const QuicSockets&) = delete;

    uint8_t marker() const { return marker_; }
    // Binds every QUIC listener of `config` with sockets 0..count-1 (keeping those bound
    // already). False with *error when a port cannot be bound.
    bool acquire(const Config& config, size_t count, std::string* error);
    // Socket `index` of each listener of `config`, parallel to config.listeners (-1 where the
    // listener has no QUIC).
    std::vector<int> fds_for(const Config& config, uint8_t index) const;
    // Attaches the steering program to every group.
    void steer(const std::vector<uint8_t>& serving, const std::vector<uint8_t>& live);
    // Closes the groups of listeners no config in `in_use` has.
    void release_unused(const std::vector<const Config*>& in_use);
    std::vector<int> all_fds() const;
    // Binary upgrade: the groups to hand over; taking over handed groups and their marker.
    std::map<std::string, std::vector<int>> groups() const;
    void adopt(uint8_t marker, const std::map<std::string, std::vector<int>>& groups);

private:
    static std::string key(const ListenConfig& l);
    struct Group {
        std::vector<int> fds; // position in the vector == position in the reuseport group
    };
    std::map<std::string, Group> groups_;
    uint8_t marker_;
    std::vector<uint8_t> serving_;
    std::vector<uint8_t> live_;
    bool buffer_warned_ = false; // the capped-buffer warning went out
};

} // namespace wraith
