#include "tools/h3/udp.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace h3 {

int open_udp_socket(const SocketAddress& remote, const SocketAddress& bind_to,
                    SocketAddress& local, std::string& error) {
    int fd = socket(remote.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        error = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    // Room for a burst at full speed; the kernel caps these at rmem_max/wmem_max.
    int buffer = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
    // Don't fragment: QUIC datagrams must arrive whole, and ngtcp2's PMTUD relies on it.
    int pmtud = IP_PMTUDISC_DO;
    if (remote.family() == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtud, sizeof(pmtud));
    } else {
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtud, sizeof(pmtud));
    }
    if (bind_to.len != 0 && bind(fd, bind_to.get(), bind_to.len) != 0) {
        error = "bind " + format_address(bind_to.get()) + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    if (connect(fd, remote.get(), remote.len) != 0) {
        error = "connect " + format_address(remote.get()) + ": " + std::strerror(errno);
        close(fd);
        return -1;
    }
    local = SocketAddress{};
    local.len = sizeof(local.storage);
    if (getsockname(fd, local.get(), &local.len) != 0) {
        error = std::string("getsockname: ") + std::strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

PacketIo::PacketIo() : rx_(new uint8_t[kBatch * kSlotSize]), tx_(new uint8_t[kTxSize]) {
    for (size_t i = 0; i < kBatch; ++i) {
        iovs_[i] = {rx_.get() + i * kSlotSize, kSlotSize};
        messages_[i].msg_hdr = msghdr{};
        messages_[i].msg_hdr.msg_name = &sources_[i];
        messages_[i].msg_hdr.msg_iov = &iovs_[i];
        messages_[i].msg_hdr.msg_iovlen = 1;
    }
}

int PacketIo::receive(int fd) {
    for (auto& m : messages_) {
        m.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    }
    int n;
    do {
        n = recvmmsg(fd, messages_, kBatch, MSG_DONTWAIT, nullptr);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    int kept = 0;
    for (int i = 0; i < n; ++i) {
        const auto& m = messages_[i];
        if (m.msg_hdr.msg_flags & MSG_TRUNC) {
            continue; // larger than we said we accept: not a datagram we can use
        }
        if (kept != i) {
            std::memmove(rx_.get() + kept * kSlotSize, rx_.get() + i * kSlotSize, m.msg_len);
            sources_[kept] = sources_[i];
        }
        lengths_[kept] = m.msg_len;
        source_lens_[kept] = m.msg_hdr.msg_namelen;
        bytes_received += m.msg_len;
        ++kept;
    }
    datagrams_received += static_cast<uint64_t>(n);
    return kept;
}

ssize_t PacketIo::send(int fd, const uint8_t* data, size_t len, size_t segment) {
    if (len <= segment || !gso_) {
        return send_each(fd, data, len, segment);
    }
    iovec iov{const_cast<uint8_t*>(data), len};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))]{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    auto* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_UDP;
    cmsg->cmsg_type = UDP_SEGMENT;
    cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t segment_size = static_cast<uint16_t>(segment);
    std::memcpy(CMSG_DATA(cmsg), &segment_size, sizeof(segment_size));
    ssize_t n;
    do {
        n = sendmsg(fd, &msg, 0);
    } while (n == -1 && errno == EINTR);
    if (n >= 0) {
        datagrams_sent += (len + segment - 1) / segment;
        return static_cast<ssize_t>(len);
    }
    if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP) {
        gso_ = false; // no GSO on this kernel or device: one datagram per sendmsg from now on
        return send_each(fd, data, len, segment);
    }
    return -errno;
}

ssize_t PacketIo::send_each(int fd, const uint8_t* data, size_t len, size_t segment) {
    for (size_t offset = 0; offset < len; offset += segment) {
        size_t n = len - offset < segment ? len - offset : segment;
        ssize_t rv;
        do {
            rv = ::send(fd, data + offset, n, 0);
        } while (rv == -1 && errno == EINTR);
        if (rv == -1) {
            // Datagrams before `offset` are gone; the caller keeps the rest for later.
            return offset == 0 ? -errno : static_cast<ssize_t>(offset);
        }
        ++datagrams_sent;
    }
    return static_cast<ssize_t>(len);
}

} // namespace h3
