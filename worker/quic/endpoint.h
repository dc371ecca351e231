// A worker's QUIC side: its UDP socket of every "h3" listener (master/quic_sockets.h), read in
// batches with recvmmsg; datagrams are dispatched by destination connection ID to the owning
// worker/quic/connection.h, or triaged (worker/quic/triage.h) and answered statelessly:
// Version Negotiation, Retry (address validation, RFC 9000 §8.1), stateless reset (§10.3,
// keyed by the master's secret so any worker can reset any connection), or a new connection. Sending goes through here with
// IP_PKTINFO (a wildcard socket answers from the address the client used), ECN marks and
// UDP GSO batches.
#pragma once

#include <ev.h>
#include <ngtcp2/ngtcp2.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/config.h"

namespace wraith {
class Worker;
struct WorkerSetup;
} // namespace wraith

namespace wraith::quic {

class Connection;
class TlsContext;
struct Triage;

// A connection ID as a hash key.
struct CidKey {
    uint8_t len = 0;
    std::array<uint8_t, NGTCP2_MAX_CIDLEN> data{};
    CidKey() = default;
    CidKey(const uint8_t* p, size_t n);
    explicit CidKey(const ngtcp2_cid& cid) : CidKey(cid.data, cid.datalen) {}
    bool operator==(const CidKey& o) const {
        return len == o.len && std::equal(data.begin(), data.begin() + len, o.data.begin());
    }
};
struct CidHash {
    size_t operator()(const CidKey& k) const;
};

class Endpoint {
public:
    struct Socket {
        int fd = -1;
        const ListenConfig* listen = nullptr;
        sockaddr_storage bound{}; // the listener's address (port for PKTINFO locals)
        ev_io io{};
        ev_io write_io{};
        Endpoint* endpoint = nullptr;
    };

    Endpoint(Worker& worker, const WorkerSetup& setup);
    ~Endpoint();
    Endpoint(const Endpoint&) = delete;
    Endpoint& operator=(const Endpoint&) = delete;

    bool empty() const { return sockets_.empty(); }
    void start();
    // The worker drains: no new connections; existing ones finish.
    void drain();

    Worker& worker() const { return worker_; }
    const Http3Config& settings() const;
    const TlsContext& tls() const { return *tls_; }
    const std::array<uint8_t, 32>& secret() const { return secret_; }

    // A fresh server CID (common/quic_cid.h layout) and its stateless reset token.
    void new_cid(ngtcp2_cid* cid, uint8_t* reset_token);
    void reset_token(uint8_t* token, const ngtcp2_cid& cid) const;
    void associate(const ngtcp2_cid& cid, Connection* c);
    void dissociate(const ngtcp2_cid& cid);
    void forget(Connection* c); // the connection is being deleted
    size_t connection_count() const { return connection_count_; }

    // Sends `len` bytes as datagrams of `gso` bytes (the last may be shorter). False when the
    // socket is full (EAGAIN): nothing of it was sent.
    bool send(Socket& sock, const ngtcp2_addr& local, const ngtcp2_addr& remote, uint32_t ecn,
              const uint8_t* data, size_t len, size_t gso);
    // Calls c->on_send_ready() once `sock` is writable again.
    void wait_writable(Socket& sock, Connection* c);
    // Scratch space for one connection's outgoing batch (the loop is single-threaded).
    uint8_t* tx_buffer() { return tx_.get(); }
    static constexpr size_t kTxBufferSize = 64 * 1024;

private:
    static constexpr size_t kBatch = 32;
    static constexpr size_t kRxSize = 2048;

    static void on_readable(struct ev_loop* loop, ev_io* w, int revents);
    static void on_writable(struct ev_loop* loop, ev_io* w, int revents);
    void read_batch(Socket& sock);
    void dispatch(Socket& sock, const sockaddr_storage& local, const sockaddr_storage& remote,
                  socklen_t remote_len, uint32_t ecn, uint8_t* data, size_t len);
    // A new connection for a datagram triage (worker/quic/triage.h) accepted.
    void accept(Socket& sock, const ngtcp2_path& path, uint32_t ecn, const uint8_t* data,
                size_t len, const Triage& t);
    bool should_retry();
    bool reset_allowed();
    void send_retry(Socket& sock, const ngtcp2_path& path, const ngtcp2_pkt_hd& hd, size_t pktlen);

    Worker& worker_;
    std::shared_ptr<const TlsContext> tls_;
    std::vector<std::unique_ptr<Socket>> sockets_;
    std::unordered_map<CidKey, Connection*, CidHash> cids_;
    size_t connection_count_ = 0;
    uint8_t index_;
    uint8_t marker_;
    std::array<uint8_t, 32> secret_;
    std::unique_ptr<uint8_t[]> tx_;
    std::unique_ptr<uint8_t[]> rx_;            // kBatch datagrams of kRxSize
    std::vector<Connection*> blocked_;         // waiting for a socket to drain
    bool draining_ = false;
    // Retry "auto": handshakes started in the current second.
    uint64_t rate_second_ = 0;
    uint32_t rate_count_ = 0;
    // Stateless resets sent in the current second (RFC 9000 §10.3.3 says limit them).
    uint64_t reset_second_ = 0;
    uint32_t reset_count_ = 0;
};

// Nanoseconds on the monotonic clock, ngtcp2's time base.
uint64_t now_ns();

} // namespace wraith::quic
