#include "master/quic_sockets.h"

#include <arpa/inet.h>
#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <set>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/quic_cid.h"

namespace wraith {

namespace {

// A tiny assembler for forward jumps: instructions are emitted in order; a jump names a label
// that is resolved when the label is placed.
class Program {
public:
    void emit(uint16_t code, uint32_t k) { insns_.push_back(BPF_STMT(code, k)); }
    // Conditional jump: to `yes` when true, else to the next instruction.
    void jump_if(uint16_t code, uint32_t k, int yes) { jumps(code, k, yes, -1); }
    // Conditional jump: next instruction when true, else to `no`.
    void jump_unless(uint16_t code, uint32_t k, int no) { jumps(code, k, -1, no); }
    int label() { return next_label_++; }
    void place(int label) {
        for (auto& f : fixups_) {
            if (f.label != label)
                continue;
            uint32_t off = static_cast<uint32_t>(insns_.size() - f.insn - 1);
            if (off > 255)
                overflow_ = true; // classic BPF jumps are 8 bits
            (f.true_branch ? insns_[f.insn].jt : insns_[f.insn].jf) = static_cast<uint8_t>(off);
        }
    }
    std::vector<sock_filter> take() {
        if (overflow_)
            insns_.clear();
        return std::move(insns_);
    }

private:
    void jumps(uint16_t code, uint32_t k, int yes, int no) {
        size_t at = insns_.size();
        insns_.push_back(BPF_JUMP(code, k, 0, 0));
        if (yes >= 0)
            fixups_.push_back({at, yes, true});
        if (no >= 0)
            fixups_.push_back({at, no, false});
    }
    struct Fixup {
        size_t insn;
        int label;
        bool true_branch;
    };
    std::vector<sock_filter> insns_;
    std::vector<Fixup> fixups_;
    int next_label_ = 0;
    bool overflow_ = false;
};

} // namespace

std::vector<sock_filter> quic_steering_program(uint8_t marker,
                                               const std::vector<uint8_t>& serving,
                                               const std::vector<uint8_t>& live) {
    using namespace quic_cid;
    // Offsets are into the UDP payload (the kernel pulls the UDP header first).
    constexpr uint32_t kShortDcid = 1;     // after the first byte (RFC 9000 §17.3)
    constexpr uint32_t kLongDcidLen = 5;   // after first byte + version (§17.2)
    constexpr uint32_t kLongDcid = 6;
    Program p;
    int pick = p.label(), long_header = p.label(), hash = p.label(), pick_long = p.label();

    p.emit(BPF_LD | BPF_W | BPF_LEN, 0);
    p.jump_unless(BPF_JMP | BPF_JGE | BPF_K, kShortDcid + kLength, pick);
    p.emit(BPF_LD | BPF_B | BPF_ABS, 0);
    p.jump_if(BPF_JMP | BPF_JSET | BPF_K, 0x80, long_header);
    // Short header: the DCID is ours if it carries the marker.
    p.emit(BPF_LD | BPF_B | BPF_ABS, kShortDcid + kMarkerOffset);
    p.jump_unless(BPF_JMP | BPF_JEQ | BPF_K, marker, pick);
    // The index must name a socket some worker reads: a client's random DCID can carry the
    // marker by chance (1 in 256), and a dead worker's index has no reader. Checked against
    // a bitmap of live indices, 8 words of 32 bits as immediates.
    uint32_t bitmap[8] = {};
    for (uint8_t i : live)
        bitmap[i >> 5] |= 1u << (i & 31);
    auto return_if_live = [&](uint32_t index_offset) {
        int words[8], test = p.label();
        p.emit(BPF_LD | BPF_B | BPF_ABS, index_offset);
        p.emit(BPF_MISC | BPF_TAX, 0);
        p.emit(BPF_ALU | BPF_RSH | BPF_K, 5);
        for (int w = 0; w < 8; ++w) {
            words[w] = p.label();
            p.jump_if(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(w), words[w]);
        }
        p.jump_if(BPF_JMP | BPF_JGE | BPF_K, 0, pick); // not reached: an index is < 256
        for (int w = 0; w < 8; ++w) {
            p.place(words[w]);
            p.emit(BPF_LD | BPF_IMM, bitmap[w]);
            p.jump_if(BPF_JMP | BPF_JGE | BPF_K, 0, test); // always
        }
        p.place(test);
        p.emit(BPF_ST, 0);              // M[0] = the bitmap word
        p.emit(BPF_MISC | BPF_TXA, 0);  // A = index
        p.emit(BPF_ALU | BPF_AND | BPF_K, 31);
        p.emit(BPF_MISC | BPF_TAX, 0);  // X = bit in the word
        p.emit(BPF_LD | BPF_MEM, 0);
        p.emit(BPF_ALU | BPF_RSH | BPF_X, 0);
        p.emit(BPF_ALU | BPF_AND | BPF_K, 1);
        p.jump_unless(BPF_JMP | BPF_JEQ | BPF_K, 1, pick);
        p.emit(BPF_LD | BPF_B | BPF_ABS, index_offset);
        p.emit(BPF_RET | BPF_A, 0);
    };
    return_if_live(kShortDcid + kIndexOffset);

    p.place(long_header);
    p.emit(BPF_LD | BPF_W | BPF_LEN, 0);
    p.jump_unless(BPF_JMP | BPF_JGE | BPF_K, kLongDcid + kLength, pick);
    p.emit(BPF_LD | BPF_B | BPF_ABS, kLongDcidLen);
    p.jump_unless(BPF_JMP | BPF_JEQ | BPF_K, kLength, pick);
    p.emit(BPF_LD | BPF_B | BPF_ABS, kLongDcid + kMarkerOffset);
    p.jump_unless(BPF_JMP | BPF_JEQ | BPF_K, marker, pick);
    return_if_live(kLongDcid + kIndexOffset);

    // Not ours (a new connection, or garbage): a serving socket chosen by the client's DCID,
    // which stays the same for every Initial and 0-RTT packet of one connection attempt.
    p.place(pick);
    int fallback = p.label();
    p.emit(BPF_LD | BPF_W | BPF_LEN, 0);
    p.jump_unless(BPF_JMP | BPF_JGE | BPF_K, kLongDcid + 4, fallback);
    p.emit(BPF_LD | BPF_B | BPF_ABS, 0);
    p.jump_if(BPF_JMP | BPF_JSET | BPF_K, 0x80, pick_long);
    p.emit(BPF_LD | BPF_W | BPF_ABS, kShortDcid);
    p.jump_if(BPF_JMP | BPF_JGE | BPF_K, 0, hash); // always: skip the long-header load
    p.place(pick_long);
    p.emit(BPF_LD | BPF_W | BPF_ABS, kLongDcid);
    p.place(hash);
    std::vector<int> targets;
    if (!serving.empty()) {
        p.emit(BPF_ALU | BPF_MOD | BPF_K, static_cast<uint32_t>(serving.size()));
        for (size_t i = 0; i < serving.size(); ++i) {
            targets.push_back(p.label());
            p.jump_if(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(i), targets.back());
        }
    }
    p.place(fallback);
    // No serving socket: past the end of the group, which means "the kernel's own hash".
    p.emit(BPF_RET | BPF_K, serving.empty() ? 0xffffffffu : serving.front());
    for (size_t i = 0; i < serving.size(); ++i) {
        p.place(targets[i]);
        p.emit(BPF_RET | BPF_K, serving[i]);
    }
    return p.take();
}

QuicSockets::QuicSockets() {
    // Never 0, so a zero-filled DCID does not look like ours.
    uint8_t b = 0;
    while (b == 0)
        if (getrandom(&b, 1, 0) != 1)
            b = static_cast<uint8_t>(getpid() | 1);
    marker_ = b;
}

QuicSockets::~QuicSockets() {
    for (auto& [k, g] : groups_)
        for (int fd : g.fds)
            ::close(fd);
}

std::string QuicSockets::key(const ListenConfig& l) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (l.addr.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&l.addr);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    } else {
        auto* a = reinterpret_cast<const sockaddr_in*>(&l.addr);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    }
    return std::string("udp ") + host + " " + std::to_string(port) +
           (l.ipv6_only ? " v6only" : "");
}

UdpBufferSizes size_udp_buffers(int fd, uint64_t size, bool privileged) {
    int want = static_cast<int>(std::min<uint64_t>(size, INT_MAX / 2));
    // The FORCE variants ignore net.core.rmem_max / wmem_max but need CAP_NET_ADMIN.
    if (!privileged || setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    if (!privileged || setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
    // The kernel reports twice what it grants (the other half is its bookkeeping, socket(7)).
    UdpBufferSizes got;
    socklen_t len = sizeof(got.rcv);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got.rcv, &len) == 0)
        got.rcv /= 2;
    len = sizeof(got.snd);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got.snd, &len) == 0)
        got.snd /= 2;
    return got;
}

std::string udp_buffer_warning(uint64_t asked, UdpBufferSizes got) {
    auto kib = [](uint64_t n) { return std::to_string(n / 1024) + " KiB"; };
    std::string sysctls;
    if (static_cast<uint64_t>(got.rcv) < asked)
        sysctls += " net.core.rmem_max=" + std::to_string(asked);
    if (static_cast<uint64_t>(got.snd) < asked)
        sysctls += " net.core.wmem_max=" + std::to_string(asked);
    if (sysctls.empty())
        return {};
    return "QUIC UDP socket buffers capped by the kernel at " + kib(got.rcv) + " receive / " +
           kib(got.snd) + " send (http3.udp_buffer_size asks " + kib(asked) +
           "); bursts may be dropped. Raise the limit: sysctl -w" + sysctls +
           " (or run the master as root, which sets them with SO_RCVBUFFORCE)";
}

static int bind_udp(const ListenConfig& l, uint64_t buffer_size, std::string* warning,
                    std::string* error) {
    int fd = ::socket(l.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = l.address + ": UDP socket: " + std::strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l.addr.ss_family == AF_INET6) {
        int v6only = l.ipv6_only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
        // Which local address a datagram came to (a wildcard socket answers from it), and its
        // ECN bits; IPv4-mapped traffic on a dual-stack socket reports through the v4 options.
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
        int pmtu = IPV6_PMTUDISC_PROBE; // we size packets ourselves (DPLPMTUD); set DF
        setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    }
    if (l.addr.ss_family == AF_INET || !l.ipv6_only) {
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
        setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
        int pmtu = IP_PMTUDISC_PROBE;
        setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    }
    // Bursts of Initials and ACKs, and a fast sender's flight, must not overflow the default
    // ~200 KiB queues: quic-go based servers lose packets there more often than anywhere.
    if (std::string w = udp_buffer_warning(buffer_size, size_udp_buffers(fd, buffer_size, true));
        !w.empty())
        *warning = std::move(w);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len) != 0) {
        *error = l.pos.file + ":" + std::to_string(l.pos.line) + ":" +
                 std::to_string(l.pos.column) + ": cannot listen on UDP " + l.address +
                 " (for \"h3\"): " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

bool QuicSockets::acquire(const Config& config, size_t count, std::string* error) {
    if (count > quic_cid::kMaxSockets) {
        *error = "too many worker processes with QUIC sockets (at most " +
                 std::to_string(quic_cid::kMaxSockets) + " at once)";
        return false;
    }
    for (const ListenConfig& l : config.listeners) {
        if (!l.quic())
            continue;
        std::string k = key(l);
        bool fresh = !groups_.count(k);
        Group& g = groups_[k];
        while (g.fds.size() < count) {
            std::string warning;
            int fd = bind_udp(l, config.http3.udp_buffer_size, &warning, error);
            if (!warning.empty() && !buffer_warned_) {
                buffer_warned_ = true; // once per master: every socket gets the same answer
                WLOG_WARN("%s", warning.c_str());
            }
            if (fd < 0) {
                if (fresh) {
                    for (int f : g.fds)
                        ::close(f);
                    groups_.erase(k);
                }
                return false;
            }
            g.fds.push_back(fd);
        }
        if (fresh && !serving_.empty())
            steer(serving_, live_);
    }
    return true;
}

std::vector<int> QuicSockets::fds_for(const Config& config, uint8_t index) const {
    std::vector<int> fds;
    for (const ListenConfig& l : config.listeners) {
        auto it = l.quic() ? groups_.find(key(l)) : groups_.end();
        fds.push_back(it != groups_.end() && index < it->second.fds.size() ? it->second.fds[index]
                                                                           : -1);
    }
    return fds;
}

void QuicSockets::steer(const std::vector<uint8_t>& serving, const std::vector<uint8_t>& live) {
    serving_ = serving;
    live_ = live;
    std::vector<sock_filter> prog = quic_steering_program(marker_, serving, live);
    if (prog.empty()) {
        WLOG_ERROR("QUIC steering program too large for %zu serving sockets; not attached",
                   serving.size());
        return;
    }
    sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
    for (auto& [k, g] : groups_) {
        if (g.fds.empty())
            continue;
        if (setsockopt(g.fds.front(), SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog,
                       sizeof(fprog)) != 0)
            WLOG_ERROR("%s: cannot attach the QUIC steering program: %s; packets of migrated "
                       "connections may reach the wrong worker",
                       k.c_str(), std::strerror(errno));
    }
}

void QuicSockets::release_unused(const std::vector<const Config*>& in_use) {
    std::set<std::string> used;
    for (const Config* c : in_use)
        for (const ListenConfig& l : c->listeners)
            if (l.quic())
                used.insert(key(l));
    for (auto it = groups_.begin(); it != groups_.end();) {
        if (!used.count(it->first)) {
            for (int fd : it->second.fds)
                ::close(fd);
            it = groups_.erase(it);
        } else {
            ++it;
        }
    }
}

std::map<std::string, std::vector<int>> QuicSockets::groups() const {
    std::map<std::string, std::vector<int>> out;
    for (const auto& [k, g] : groups_)
        out[k] = g.fds;
    return out;
}

void QuicSockets::adopt(uint8_t marker, const std::map<std::string, std::vector<int>>& groups) {
    marker_ = marker; // CIDs the old workers issued must still steer to them
    for (const auto& [k, fds] : groups) {
        for (int fd : fds)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        groups_[k].fds = fds;
    }
}

std::vector<int> QuicSockets::all_fds() const {
    std::vector<int> v;
    for (const auto& [k, g] : groups_)
        v.insert(v.end(), g.fds.begin(), g.fds.end());
    return v;
}

} // namespace wraith
