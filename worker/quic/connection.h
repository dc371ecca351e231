// One QUIC connection (RFC 9000) with its HTTP/3 session (RFC 9114): ngtcp2 for the transport,
// GnuTLS for the handshake, nghttp3 for framing and QPACK. Packets arrive from the worker's
// Endpoint; everything the connection sends is built in one write pass run from the worker's
// deferred queue (after a batch of packets, a handler's response, an ACK that frees window),
// paced by ngtcp2's timer. Streams (worker/quic/stream.h) run the shared request pipeline.
#pragma once

#include <ev.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <string>
#include <vector>

#include "common/http.h"
#include "worker/connection.h"
#include "worker/peer.h"
#include "worker/quic/endpoint.h"
#include "worker/quic/tls.h"
#include "worker/transport.h"

namespace wraith {
class Worker;
}

namespace wraith::quic {

class Stream;

class Connection final : public wraith::Connection {
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
    void hold_until_closed(std::unique_ptr<Transport::CloseHook> hook) { accepted_ = std::move(hook); }

    // wraith::Connection
    void drain() override;
    void close_now() override;
    void run_deferred() override;

    // For streams.
    Worker& worker() const { return ep_.worker(); }
    const ConnectionInfo& info() const { return peer_.info; }
    nghttp3_conn* http() const { return http_; }
    void schedule(Stream* s);
    void want_write();
    // Request body bytes the handler consumed: flow-control credit back to the client.
    void consumed(int64_t stream_id, size_t n);
    void reset_stream(int64_t stream_id, uint64_t app_error_code);
    bool early_data_allowed() const;

private:
    Connection(Endpoint& ep, Endpoint::Socket& sock);
    bool init(const ngtcp2_path& path, const ngtcp2_pkt_hd& hd, const ngtcp2_cid* original_dcid,
              ngtcp2_token_type token_type);
    bool setup_http3();

    static const ngtcp2_callbacks* transport_callbacks();
    static const nghttp3_callbacks* http_callbacks();
    // ngtcp2 callbacks.
    static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref);
    static int on_recv_crypto_data(ngtcp2_conn*, ngtcp2_encryption_level level, uint64_t offset,
                                   const uint8_t* data, size_t len, void* user);
    static int on_handshake_completed(ngtcp2_conn*, void* user);
    static int on_recv_stream_data(ngtcp2_conn*, uint32_t flags, int64_t stream_id,
                                   uint64_t offset, const uint8_t* data, size_t len, void* user,
                                   void* stream_user);
    static int on_acked_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t offset,
                                    uint64_t len, void* user, void* stream_user);
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

    // nghttp3 callbacks.
    static int h3_acked_stream_data(nghttp3_conn*, int64_t stream_id, uint64_t len, void* user,
                                    void* stream_user);
    static int h3_stream_close(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                               void* user, void* stream_user);
    static int h3_recv_data(nghttp3_conn*, int64_t stream_id, const uint8_t* data, size_t len,
                            void* user, void* stream_user);
    static int h3_deferred_consume(nghttp3_conn*, int64_t stream_id, size_t consumed, void* user,
                                   void* stream_user);
    static int h3_begin_headers(nghttp3_conn*, int64_t stream_id, void* user, void* stream_user);
    static int h3_recv_header(nghttp3_conn*, int64_t stream_id, int32_t token,
                              nghttp3_rcbuf* name, nghttp3_rcbuf* value, uint8_t flags,
                              void* user, void* stream_user);
    static int h3_end_headers(nghttp3_conn*, int64_t stream_id, int fin, void* user,
                              void* stream_user);
    static int h3_end_stream(nghttp3_conn*, int64_t stream_id, void* user, void* stream_user);
    static int h3_stop_sending(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                               void* user, void* stream_user);
    static int h3_reset_stream(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                               void* user, void* stream_user);

    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_goaway_timer(struct ev_loop* loop, ev_timer* w, int revents);

    void service();   // pending stream work, then write, until quiet
    void write();     // builds and sends packets while ngtcp2 and nghttp3 have any
    bool flush_pending(); // resends a batch the socket refused; false if still blocked
    void update_timer();
    void handle_expiry();
    void fail_transport(int liberr);           // ngtcp2 error: close the connection
    void fail_application(uint64_t h3_error); // HTTP/3 error: close the connection
    void start_closing();                      // write CONNECTION_CLOSE, linger 3 PTO
    void start_draining();                     // the peer closed: linger silently
    void linger();
    void maybe_finish_drain();
    void start_goaway();
    void destroy();                            // deleted from the deferred queue
    void reap_streams();
    void release_tls(); // the handshake is over: keep what it said, free the session
    // A NEW_TOKEN for the client's current address (RFC 9000 §8.1.3): its next connection
    // from there skips address validation.
    void submit_address_token(const ngtcp2_path& path);

    Endpoint& ep_;
    Endpoint::Socket* sock_;
    ngtcp2_conn* conn_ = nullptr;
    nghttp3_conn* http_ = nullptr;
    gnutls_session_t tls_ = nullptr; // until the handshake is over
    SessionOwner owner_;
    TlsContext::PeerTls peer_tls_;
    Peer peer_;
    ev_timer timer_;
    ngtcp2_ccerr last_error_{};
    std::vector<ngtcp2_cid> cids_; // every CID registered for us at the endpoint

    Stream* streams_ = nullptr; // every stream not yet reaped
    std::vector<Stream*> pending_;
    std::vector<Stream*> working_; // pending_ of the round being run
    std::vector<Stream*> closed_streams_;

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
    // From the shutdown notice to the final GOAWAY, then from the last stream's end to the
    // close (maybe_finish_drain).
    ev_timer goaway_timer_;
    bool draining_ = false;  // worker drain: shutdown notice sent
    bool final_goaway_ = false; // GOAWAY with the last stream id sent
    bool close_when_idle_ = false; // the quiet period after the last stream is over
    bool closing_ = false;   // closing or draining period (RFC 9000 §10.2)
    bool dead_ = false;      // waiting for deferred deletion
    bool wants_retry_ = false; // see wants_retry()
    std::unique_ptr<Transport::CloseHook> accepted_; // the accept phase's; freed with us
};

} // namespace wraith::quic
