// One QUIC connection (RFC 9000): ngtcp2 for the transport, GnuTLS for the handshake. Packets
// arrive from the worker's Endpoint; everything the connection sends is built in one write
// pass run from the worker's deferred queue (after a batch of packets, a handler's response,
// an ACK that frees window), paced by ngtcp2's timer. What runs on the streams is the
// Application the ALPN chose (worker/quic/application.h): the HTTP/3 session for "h3"
// (worker/http3/session.h), or another registered protocol. The connection owns packets,
// timers, migration, CIDs, TLS and the closing/draining periods; the application owns its
// streams' meaning and talks back through the stream API below.
#pragma once

#include <ev.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>

#include <memory>
#include <string>
#include <vector>

#include "common/http.h"
#include "worker/connection.h"
#include "worker/peer.h"
#include "worker/quic/application.h"
#include "worker/quic/endpoint.h"
#include "worker/quic/tls.h"
#include "worker/transport.h"

namespace wraith {
class Worker;
}

namespace wraith::quic {

class Connection final : public wraith::Connection, public AppConnection {
public:
    // A connection for a client's first Initial packet; nullptr (and deleted) on failure.
    // `token_type`: what validated the client's address (hd.token), or UNKNOWN for nothing.
    static Connection* create(Endpoint& ep, Endpoint::Socket& sock, const ngtcp2_path& path,
                              const ngtcp2_pkt_hd& hd, const ngtcp2_cid* original_dcid,
                              ngtcp2_token_type token_type);
    ~Connection() override;

    // A datagram for this connection. False: the connection is gone (do not touch it).
    void on_packet(Endpoint::Socket& sock, const ngtcp2_path& path, uint32_t ecn,
                   const uint8_t* data, size_t len);
    // The first packet asked for address validation (ngtcp2's NGTCP2_ERR_RETRY: 0-RTT came
    // before a ClientHello it could use): the endpoint sends a Retry; this connection is gone.
    bool wants_retry() const { return wants_retry_; }
    void on_send_ready();
    // What the accept phase needs held until the connection is gone (worker.h accept_phase).
    void hold_until_closed(std::unique_ptr<Transport::CloseHook> hook) {
        accepted_ = std::move(hook);
    }

    // wraith::Connection
    void drain() override;
    void close_now() override;
    void run_deferred() override;

    // ---- for the application (common/quic_application.h: AppConnection)
    Worker& worker() const { return ep_.worker(); }
    ModuleWorkers* modules() const override;
    const ConnectionInfo& info() const override { return peer_.info; }
    bool handshake_done() const override { return handshake_done_; }
    bool early_data_allowed() const override;
    bool closing() const override { return closing_ || dead_; }
    void want_write() override;
    void wake() override;
    void consumed(int64_t stream_id, size_t n) override;
    void reset_stream(int64_t stream_id, uint64_t app_error_code) override;
    void shutdown_stream_read(int64_t stream_id, uint64_t app_error_code) override;
    void shutdown_stream_write(int64_t stream_id, uint64_t app_error_code) override;
    bool open_uni_stream(int64_t* stream_id) override;
    uint64_t streams_uni_left() const override;
    uint64_t local_max_streams_bidi() const override;
    void extend_max_streams_bidi(uint64_t n) override;
    ngtcp2_duration pto() const override;
    ngtcp2_duration local_max_ack_delay() const override;
    void set_application_error(uint64_t code) override;
    void close_application(uint64_t code) override;

private:
    Connection(Endpoint& ep, Endpoint::Socket& sock);
    bool init(const ngtcp2_path& path, const ngtcp2_pkt_hd& hd, const ngtcp2_cid* original_dcid,
              ngtcp2_token_type token_type);
    // 1-RTT keys: the application the ALPN chose is created and started.
    bool start_application();

    static const ngtcp2_callbacks* transport_callbacks();
    // ngtcp2 callbacks.
    static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref);
    static int on_recv_crypto_data(ngtcp2_conn*, ngtcp2_encryption_level level, uint64_t offset,
                                   const uint8_t* data, size_t len, void* user);
    static int on_handshake_completed(ngtcp2_conn*, void* user);
    static int on_recv_stream_data(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t offset,
                                   const uint8_t* data, size_t len, void* user, void* stream_user);
    static int on_acked_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t offset, uint64_t len,
                                    void* user, void* stream_user);
    static int on_stream_open(ngtcp2_conn*, int64_t stream_id, void* user);
    static int on_stream_close(ngtcp2_conn*, uint32_t flags, int64_t stream_id,
                               uint64_t app_error_code, void* user, void* stream_user);
    static int on_stream_reset(ngtcp2_conn*, int64_t stream_id, uint64_t final_size,
                               uint64_t app_error_code, void* user, void* stream_user);
    static int on_stream_stop_sending(ngtcp2_conn*, int64_t stream_id, uint64_t app_error_code,
                                      void* user, void* stream_user);
    static int on_extend_max_remote_streams_bidi(ngtcp2_conn*, uint64_t max_streams, void* user);
    static int on_extend_max_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t max_data,
                                         void* user, void* stream_user);
    static void on_rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*);
    static int on_get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token,
                                        size_t cidlen, void* user);
    static int on_remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* user);
    static int on_path_validation(ngtcp2_conn*, uint32_t flags, const ngtcp2_path* path,
                                  const ngtcp2_path* fallback_path,
                                  ngtcp2_path_validation_result res, void* user);
    static int on_recv_tx_key(ngtcp2_conn*, ngtcp2_encryption_level level, void* user);
    static int on_update_key(ngtcp2_conn*, uint8_t* rx_secret, uint8_t* tx_secret,
                             ngtcp2_crypto_aead_ctx* rx_aead_ctx, uint8_t* rx_iv,
                             ngtcp2_crypto_aead_ctx* tx_aead_ctx, uint8_t* tx_iv,
                             const uint8_t* current_rx_secret, const uint8_t* current_tx_secret,
                             size_t secretlen, void* user);

    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);

    void service();       // pending application work, then write, until quiet
    void write();         // builds and sends packets while ngtcp2 and the application have any
    bool flush_pending(); // resends a batch the socket refused; false if still blocked
    void update_timer();
    void handle_expiry();
    void fail_transport(int liberr); // ngtcp2 error: close the connection
    void start_closing();            // write CONNECTION_CLOSE, linger 3 PTO
    void start_draining();           // the peer closed: linger silently
    void linger();
    void destroy();     // deleted from the deferred queue
    void release_tls(); // the handshake is over: keep what it said, free the session
    // A NEW_TOKEN for the client's current address (RFC 9000 §8.1.3): its next connection
    // from there skips address validation.
    void submit_address_token(const ngtcp2_path& path);

    Endpoint& ep_;
    Endpoint::Socket* sock_;
    ngtcp2_conn* conn_ = nullptr;
    std::unique_ptr<Application> app_; // from 1-RTT keys on
    gnutls_session_t tls_ = nullptr;   // until the handshake is over
    SessionOwner owner_;
    TlsContext::PeerTls peer_tls_;
    TlsInfo tls_info_; // what peer_.info.tls points to: views of peer_tls_ and static names
    Peer peer_;
    ev_timer timer_;
    ngtcp2_ccerr last_error_{};
    // The endpoint routes our CIDs (ngtcp2_conn_get_scid lists them) and the client's first
    // DCID here; no copy of the list is kept per connection.
    ngtcp2_cid client_dcid_{};
    static constexpr size_t kMaxScids = 16; // ngtcp2 issues at most 8 (NGTCP2_MAX_SCID_POOL_SIZE)

    // A batch the socket refused (EAGAIN), resent before anything new.
    std::string pending_tx_;
    ngtcp2_path_storage pending_path_{};
    uint32_t pending_ecn_ = 0;
    size_t pending_gso_ = 0;
    bool send_blocked_ = false;

    std::string close_packet_; // CONNECTION_CLOSE, repeated to a peer that keeps sending
    uint64_t close_sent_at_ = 0;

    bool write_wanted_ = false;
    bool in_service_ = false;
    bool handshake_done_ = false;
    // Streams the client opened that ngtcp2 has not closed: their packets lost are counted at
    // close, or when the connection goes (counters::quic_stream_lost).
    std::vector<int64_t> open_streams_;
    void count_stream_losses(ngtcp2_conn* conn, int64_t stream_id);
    bool draining_ = false;    // worker drain: the application was (or will be) told
    bool closing_ = false;     // closing or draining period (RFC 9000 §10.2)
    bool dead_ = false;        // waiting for deferred deletion
    bool wants_retry_ = false; // see wants_retry()
    std::unique_ptr<Transport::CloseHook> accepted_; // the accept phase's; freed with us
    uint16_t key_phases_ = 0; // 1-RTT key generations derived (on_update_key)
};

} // namespace wraith::quic
