#include "worker/quic/endpoint.h"

#include <ngtcp2/ngtcp2_crypto.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/counters.h"
#include "common/log.h"
#include "common/hash.h"
#include "common/quic_cid.h"
#include "worker/quic/random.h"
#include "worker/quic/connection.h"
#include "worker/quic/tls.h"
#include "worker/quic/triage.h"
#include "worker/worker.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace wraith::quic {

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

CidKey::CidKey(const uint8_t* p, size_t n) {
    len = static_cast<uint8_t>(std::min<size_t>(n, NGTCP2_MAX_CIDLEN));
    std::memcpy(data.data(), p, len);
}

size_t CidHash::operator()(const CidKey& k) const {
    // FNV-1a over the bytes; CIDs are random, and foreign ones cannot pick our buckets far.
    return static_cast<size_t>(
        fnv1a64({reinterpret_cast<const char*>(k.data.data()), k.len}));
}

namespace {

socklen_t len_of(const sockaddr_storage& a) {
    return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

} // namespace

Endpoint::Endpoint(Worker& worker, const WorkerSetup& setup)
    : worker_(worker), tls_(setup.quic_tls), index_(static_cast<uint8_t>(setup.quic_index)),
      marker_(setup.quic_marker), secret_(setup.quic_secret) {
    if (!tls_ || setup.quic_index < 0)
        return;
    const Config& config = *setup.config;
    for (size_t i = 0; i < setup.quic_fds.size() && i < config.listeners.size(); ++i) {
        if (setup.quic_fds[i] < 0)
            continue;
        auto s = std::make_unique<Socket>();
        s->fd = setup.quic_fds[i];
        s->listen = &config.listeners[i];
        s->bound = config.listeners[i].addr;
        s->endpoint = this;
        sockets_.push_back(std::move(s));
    }
    if (sockets_.empty())
        return;
    tx_.reset(new uint8_t[kTxBufferSize]);
    rx_.reset(new uint8_t[kBatch * kRxSize]);
}

Endpoint::~Endpoint() {
    for (auto& s : sockets_) {
        ev_io_stop(worker_.loop(), &s->io);
        ev_io_stop(worker_.loop(), &s->write_io);
    }
}

const Http3Config& Endpoint::settings() const {
    return worker_.config().http3;
}

void Endpoint::start() {
    for (auto& s : sockets_) {
        ev_io_init(&s->io, on_readable, s->fd, EV_READ);
        s->io.data = s.get();
        ev_io_start(worker_.loop(), &s->io);
        ev_io_init(&s->write_io, on_writable, s->fd, EV_WRITE);
        s->write_io.data = s.get();
    }
}

void Endpoint::drain() {
    draining_ = true; // existing connections go on; their packets keep arriving here
}

// ---- connection IDs ------------------------------------------------------------------------

void Endpoint::new_cid(ngtcp2_cid* cid, uint8_t* reset_token_out) {
    cid->datalen = quic_cid::kLength;
    fill_random(cid->data, cid->datalen);
    cid->data[quic_cid::kIndexOffset] = index_;
    cid->data[quic_cid::kMarkerOffset] = marker_;
    if (reset_token_out)
        reset_token(reset_token_out, *cid);
}

void Endpoint::reset_token(uint8_t* token, const ngtcp2_cid& cid) const {
    ngtcp2_crypto_generate_stateless_reset_token(token, secret_.data(), secret_.size(), &cid);
}

void Endpoint::associate(const ngtcp2_cid& cid, Connection* c) {
    cids_[CidKey(cid)] = c;
}

void Endpoint::dissociate(const ngtcp2_cid& cid) {
    cids_.erase(CidKey(cid));
}

void Endpoint::forget(Connection* c) {
    std::erase(blocked_, c);
    if (connection_count_)
        --connection_count_;
}

// ---- receiving -----------------------------------------------------------------------------

void Endpoint::on_readable(struct ev_loop*, ev_io* w, int) {
    auto* sock = static_cast<Socket*>(w->data);
    sock->endpoint->read_batch(*sock);
}

void Endpoint::read_batch(Socket& sock) {
    mmsghdr msgs[kBatch];
    iovec iovs[kBatch];
    sockaddr_storage addrs[kBatch];
    alignas(cmsghdr) char ctrl[kBatch][CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(int)) +
                                       CMSG_SPACE(sizeof(in_pktinfo)) + CMSG_SPACE(sizeof(int))];
    // A few batches per wakeup, then back to the loop so other sockets and timers run.
    for (int round = 0; round < 4; ++round) {
        for (size_t i = 0; i < kBatch; ++i) {
            iovs[i] = {rx_.get() + i * kRxSize, kRxSize};
            msgs[i].msg_hdr = {};
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i]);
            msgs[i].msg_len = 0;
        }
        int n = recvmmsg(sock.fd, msgs, kBatch, MSG_DONTWAIT, nullptr);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                ErrorLog::limited(LogLevel::warn, "quic: recvmmsg: %s", std::strerror(errno));
            return;
        }
        for (int i = 0; i < n; ++i) {
            msghdr& h = msgs[i].msg_hdr;
            if (h.msg_flags & MSG_TRUNC)
                continue; // larger than any packet we allow: not QUIC we speak
            sockaddr_storage local = sock.bound;
            uint32_t ecn = 0;
            for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                    in_pktinfo pi;
                    std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
                    if (sock.bound.ss_family == AF_INET6) {
                        // IPv4 on a dual-stack socket: answer from the v4-mapped address.
                        auto& a = reinterpret_cast<sockaddr_in6&>(local);
                        std::memset(&a.sin6_addr, 0, sizeof(a.sin6_addr));
                        a.sin6_addr.s6_addr[10] = 0xff;
                        a.sin6_addr.s6_addr[11] = 0xff;
                        std::memcpy(&a.sin6_addr.s6_addr[12], &pi.ipi_addr, 4);
                    } else {
                        reinterpret_cast<sockaddr_in&>(local).sin_addr = pi.ipi_addr;
                    }
                } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                    in6_pktinfo pi;
                    std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
                    reinterpret_cast<sockaddr_in6&>(local).sin6_addr = pi.ipi6_addr;
                } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
                    ecn = *reinterpret_cast<const uint8_t*>(CMSG_DATA(c)) & 0x3;
                } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
                    int tclass;
                    std::memcpy(&tclass, CMSG_DATA(c), sizeof(tclass));
                    ecn = static_cast<uint32_t>(tclass) & 0x3;
                }
            }
            dispatch(sock, local, addrs[i], h.msg_namelen, ecn, rx_.get() + i * kRxSize,
                     msgs[i].msg_len);
        }
        if (static_cast<size_t>(n) < kBatch)
            return;
    }
}

void Endpoint::dispatch(Socket& sock, const sockaddr_storage& local,
                        const sockaddr_storage& remote, socklen_t remote_len, uint32_t ecn,
                        uint8_t* data, size_t len) {
    ngtcp2_path path{};
    path.local.addr = const_cast<sockaddr*>(reinterpret_cast<const sockaddr*>(&local));
    path.local.addrlen = len_of(local);
    path.remote.addr = const_cast<sockaddr*>(reinterpret_cast<const sockaddr*>(&remote));
    path.remote.addrlen = remote_len;
    path.user_data = &sock;

    ngtcp2_version_cid vc;
    switch (decode_header(data, len, &vc)) {
    case Verdict::drop:
        return;
    case Verdict::version_negotiation:
        break; // triage_unknown answers it
    default:
        if (auto it = cids_.find(CidKey(vc.dcid, vc.dcidlen)); it != cids_.end()) {
            it->second->on_packet(sock, path, ecn, data, len);
            return;
        }
    }
    TriagePolicy policy;
    policy.versions = settings().versions;
    policy.secret = &secret_;
    policy.draining = draining_;
    policy.at_capacity = connection_count_ >= settings().max_connections;
    Triage t;
    triage_unknown(policy, data, len, path.remote.addr, path.remote.addrlen, now_ns(), &t);
    uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
    size_t n = 0;
    switch (t.verdict) {
    case Verdict::drop:
        return;
    case Verdict::version_negotiation:
        n = write_version_negotiation(buf, sizeof(buf), settings().versions, t.vc);
        break;
    case Verdict::stateless_reset:
        if (!reset_allowed())
            return;
        n = write_stateless_reset(buf, sizeof(buf), secret_, t.vc.dcid, t.vc.dcidlen, len);
        break;
    case Verdict::refuse:
        ErrorLog::limited(LogLevel::warn, "quic: http3.max_connections (%u) reached; refusing",
                          settings().max_connections);
        n = write_close(buf, sizeof(buf), t.hd, NGTCP2_CONNECTION_REFUSED);
        break;
    case Verdict::invalid_token:
        ErrorLog::limited(LogLevel::info, "quic: invalid Retry token; closing");
        n = write_close(buf, sizeof(buf), t.hd, NGTCP2_INVALID_TOKEN);
        break;
    case Verdict::accept:
        if (t.token_type == NGTCP2_TOKEN_TYPE_UNKNOWN && should_retry()) {
            send_retry(sock, path, t.hd, len);
            return;
        }
        accept(sock, path, ecn, data, len, t);
        return;
    }
    if (n > 0 && send(sock, path.local, path.remote, 0, buf, n, n))
        counters::add(counters::quic_retry_sent);
}

void Endpoint::accept(Socket& sock, const ngtcp2_path& path, uint32_t ecn, const uint8_t* data,
                      size_t len, const Triage& t) {
    // The accept phase (connection limits): after address validation, before any handshake
    // work, so a refused client costs one CONNECTION_CLOSE.
    std::unique_ptr<Transport::CloseHook> accepted;
    sockaddr_storage peer{}, local{};
    std::memcpy(&peer, path.remote.addr, std::min<size_t>(path.remote.addrlen, sizeof(peer)));
    std::memcpy(&local, path.local.addr, std::min<size_t>(path.local.addrlen, sizeof(local)));
    ConnectionInfo unused;
    AcceptContext refusal{unused};
    if (!worker_.accept_phase(peer, local, accepted, &refusal)) {
        uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
        size_t n = write_close(buf, sizeof(buf), t.hd, NGTCP2_CONNECTION_REFUSED);
        if (n > 0)
            send(sock, path.local, path.remote, 0, buf, n, n);
        return;
    }
    Connection* c = Connection::create(*this, sock, path, t.hd,
                                       t.has_original_dcid ? &t.original_dcid : nullptr,
                                       t.token_type);
    if (!c)
        return;
    c->hold_until_closed(std::move(accepted));
    ++connection_count_;
    c->on_packet(sock, path, ecn, data, len);
    // ngtcp2 could not use this first packet without a validated address: Retry, and the
    // client's next Initial (with the token) starts a fresh connection.
    if (c->wants_retry() && t.token_type == NGTCP2_TOKEN_TYPE_UNKNOWN)
        send_retry(sock, path, t.hd, len);
}

bool Endpoint::should_retry() {
    switch (settings().retry) {
    case Http3Config::Retry::always:
        return true;
    case Http3Config::Retry::never:
        return false;
    case Http3Config::Retry::automatic:
        break;
    }
    uint64_t second = now_ns() / NGTCP2_SECONDS;
    if (second != rate_second_) {
        rate_second_ = second;
        rate_count_ = 0;
    }
    return ++rate_count_ > settings().retry_above;
}

bool Endpoint::reset_allowed() {
    // RFC 9000 §10.3.3: stateless resets are rate limited.
    uint64_t second = now_ns() / NGTCP2_SECONDS;
    if (second != reset_second_) {
        reset_second_ = second;
        reset_count_ = 0;
    }
    return ++reset_count_ <= 1000;
}

void Endpoint::send_retry(Socket& sock, const ngtcp2_path& path, const ngtcp2_pkt_hd& hd,
                          size_t pktlen) {
    ngtcp2_cid scid;
    new_cid(&scid, nullptr);
    uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
    // Never more than three times what the client sent (anti-amplification, §8.1).
    size_t n = write_retry(buf, std::min(sizeof(buf), pktlen * 3), secret_, hd, scid,
                           path.remote.addr, path.remote.addrlen, now_ns());
    if (n > 0)
        send(sock, path.local, path.remote, 0, buf, n, n);
}

// ---- sending -------------------------------------------------------------------------------

bool Endpoint::send(Socket& sock, const ngtcp2_addr& local, const ngtcp2_addr& remote,
                    uint32_t ecn, const uint8_t* data, size_t len, size_t gso) {
    iovec iov{const_cast<uint8_t*>(data), len};
    msghdr msg{};
    msg.msg_name = remote.addr;
    msg.msg_namelen = remote.addrlen;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(int)) +
                               CMSG_SPACE(sizeof(uint16_t))];
    std::memset(ctrl, 0, sizeof(ctrl));
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof(ctrl);
    size_t used = 0;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    const bool v6 = sock.bound.ss_family == AF_INET6;
    // The source address the client used: a wildcard socket must answer from it.
    if (v6) {
        auto* l = reinterpret_cast<const sockaddr_in6*>(local.addr);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
        in6_pktinfo pi{};
        pi.ipi6_addr = l->sin6_addr;
        std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        used += CMSG_SPACE(sizeof(in6_pktinfo));
    } else {
        auto* l = reinterpret_cast<const sockaddr_in*>(local.addr);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
        in_pktinfo pi{};
        pi.ipi_spec_dst = l->sin_addr;
        std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        used += CMSG_SPACE(sizeof(in_pktinfo));
    }
    if (ecn) {
        c = reinterpret_cast<cmsghdr*>(ctrl + used);
        bool mapped = v6 && IN6_IS_ADDR_V4MAPPED(
                                &reinterpret_cast<const sockaddr_in6*>(remote.addr)->sin6_addr);
        c->cmsg_level = v6 && !mapped ? IPPROTO_IPV6 : IPPROTO_IP;
        c->cmsg_type = v6 && !mapped ? IPV6_TCLASS : IP_TOS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        int tos = static_cast<int>(ecn);
        std::memcpy(CMSG_DATA(c), &tos, sizeof(tos));
        used += CMSG_SPACE(sizeof(int));
    }
    if (len > gso) {
        c = reinterpret_cast<cmsghdr*>(ctrl + used);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(gso);
        std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
        used += CMSG_SPACE(sizeof(uint16_t));
    }
    msg.msg_controllen = used;
    for (;;) {
        ssize_t n = sendmsg(sock.fd, &msg, MSG_DONTWAIT);
        if (n >= 0)
            return true;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return false;
        if (errno == EIO && len > gso) {
            // No GSO on this path (the device or a tunnel refuses it): one datagram at a time.
            for (size_t off = 0; off < len; off += gso)
                if (!send(sock, local, remote, ecn, data + off, std::min(gso, len - off),
                          std::min(gso, len - off)))
                    return false;
            return true;
        }
        // Unreachable peer, bad address: the datagram is lost, as UDP allows; loss recovery
        // or the idle timeout deal with the connection.
        ErrorLog::limited(LogLevel::info, "quic: sendmsg: %s", std::strerror(errno));
        return true;
    }
}

void Endpoint::wait_writable(Socket& sock, Connection* c) {
    if (std::find(blocked_.begin(), blocked_.end(), c) == blocked_.end())
        blocked_.push_back(c);
    if (!ev_is_active(&sock.write_io))
        ev_io_start(worker_.loop(), &sock.write_io);
}

void Endpoint::on_writable(struct ev_loop* loop, ev_io* w, int) {
    auto* sock = static_cast<Socket*>(w->data);
    Endpoint& ep = *sock->endpoint;
    ev_io_stop(loop, w);
    std::vector<Connection*> ready;
    ready.swap(ep.blocked_);
    for (Connection* c : ready)
        c->on_send_ready();
}

} // namespace wraith::quic
