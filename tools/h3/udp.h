// UDP sockets and batched datagram I/O (recvmmsg in, sendmsg with GSO out) shared by every
// connection on one event loop.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "tools/h3/net.h"

namespace h3 {

// Opens a non-blocking UDP socket connected to `remote` on a fresh ephemeral port, from
// `bind_to` if its len is not 0 (its port should be 0); stores the local address the kernel
// chose. Returns the descriptor or -1 with `error` set.
int open_udp_socket(const SocketAddress& remote, const SocketAddress& bind_to,
                    SocketAddress& local, std::string& error);

// The datagram buffers of one event loop. Connections on a loop run one at a time, so a
// single set serves them all and an idle connection holds no packet memory.
class PacketIo {
public:
    static constexpr size_t kBatch = 64; // datagrams per recvmmsg
    static constexpr size_t kSlotSize =
        4096; // largest datagram accepted (our max_udp_payload_size)
    static constexpr size_t kTxSize = 64 * 1024; // one GSO send at most

    PacketIo();

    // Receives up to kBatch datagrams from `fd`. Returns how many, 0 when none is waiting,
    // or -errno (e.g. -ECONNREFUSED after an ICMP port unreachable).
    int receive(int fd);
    const uint8_t* data(int i) const { return rx_.get() + static_cast<size_t>(i) * kSlotSize; }
    size_t size(int i) const { return lengths_[i]; }
    const sockaddr* source(int i) const { return reinterpret_cast<const sockaddr*>(&sources_[i]); }
    socklen_t source_len(int i) const { return source_lens_[i]; }

    // Scratch buffer the current connection assembles outgoing packets in.
    uint8_t* tx() { return tx_.get(); }

    // Sends `len` bytes on connected `fd` as datagrams of `segment` bytes (the last may be
    // shorter) in one sendmsg, with UDP GSO when the kernel has it. Returns the bytes sent
    // (fewer than `len` when the socket filled up part way), or -errno when none went out.
    ssize_t send(int fd, const uint8_t* data, size_t len, size_t segment);

    uint64_t datagrams_received = 0; // `datagrams_received` counts every datagram read.
    uint64_t bytes_received = 0;     // `bytes_received` counts their UDP payload bytes.
    uint64_t datagrams_sent = 0;     // `datagrams_sent` counts every datagram written.

private:
    ssize_t send_each(int fd, const uint8_t* data, size_t len, size_t segment);

    std::unique_ptr<uint8_t[]> rx_;    // `rx_` is kBatch slots of kSlotSize.
    std::unique_ptr<uint8_t[]> tx_;    // `tx_` is kTxSize bytes.
    mmsghdr messages_[kBatch];         // `messages_` point into `rx_` slots.
    iovec iovs_[kBatch];               // `iovs_` are the slots of `rx_`.
    size_t lengths_[kBatch];           // `lengths_` of the datagrams received.
    sockaddr_storage sources_[kBatch]; // `sources_` of the datagrams received.
    socklen_t source_lens_[kBatch];    // `source_lens_` of `sources_`.
    bool gso_ = true;                  // `gso_` turns false when the kernel refuses UDP_SEGMENT.
};

} // namespace h3
