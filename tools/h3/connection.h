// One HTTP/3 client connection: a QUIC connection (ngtcp2 + GnuTLS) over a connected UDP
// socket on a libev loop, with nghttp3 on top. Shared by h3get and h3load.
#pragma once

#include <ev.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tools/h3/net.h"
#include "tools/h3/raw.h"
#include "tools/h3/tls.h"
#include "tools/h3/udp.h"

namespace h3 {

class Connection;

// Settings every connection of a run shares.
struct ClientSettings {
    TlsContext* tls = nullptr;                        // `tls` is trust and priorities.
    std::string alpn = "h3";                          // `alpn` is the one protocol offered.
    uint64_t idle_timeout = 30 * NGTCP2_SECONDS;      // `idle_timeout` 0 means none of ours.
    uint64_t handshake_timeout = 10 * NGTCP2_SECONDS; // `handshake_timeout` bounds the handshake.
    uint64_t keep_alive = 0; // `keep_alive` sends a PING after this much silence (0: never).
    uint64_t stream_window = 256 * 1024;               // `stream_window` is each response's
                                                       // initial receive window.
    uint64_t max_stream_window = 16 * 1024 * 1024;     // `max_stream_window` caps auto-tuning.
    uint64_t connection_window = 8 * 1024 * 1024;      // `connection_window` is the initial
                                                       // connection-level window.
    uint64_t max_connection_window = 64 * 1024 * 1024; // `max_connection_window` caps it.
    bool keep_session = false; // `keep_session` captures tickets and transport parameters.
    // `raw` turns on raw mode: protocol tests with hand-made bytes (raw.h).
    const RawPlan* raw = nullptr;
};

// Where and how to connect.
struct ConnectTarget {
    SocketAddress remote;                 // `remote` is the server's UDP address.
    SocketAddress local;                  // `local` is the address to send from (len 0: any).
    std::string sni;                      // `sni` is the server name sent; empty sends none.
    std::string verify_name;              // `verify_name` must match the certificate.
    const SessionData* session = nullptr; // `session` resumes TLS when not empty.
    bool early_data = false;              // `early_data` sends requests as 0-RTT if possible.
};

// The CONNECTION_CLOSE the server sent, if any.
struct PeerClose {
    bool received = false;
    bool application = false; // `application`: an HTTP/3 code, else a QUIC transport one.
    uint64_t code = 0;
};

// The outcome of Connection::request_migration.
struct MigrationResult {
    bool ok = false;       // `ok`: the connection now uses `new_port`.
    uint16_t old_port = 0; // `old_port` is the local port before.
    uint16_t new_port = 0; // `new_port` is the new local port (0 if none was opened).
    std::string error;     // `error` says why it failed.
};

// What the connection reports. Stream events carry the pointer given to submit().
class ConnectionHandler {
public:
    virtual ~ConnectionHandler() = default;

    // The TLS handshake completed: ALPN, version and the 0-RTT outcome are known.
    virtual void on_handshake_completed(Connection&) {}
    // Requests can be submitted (HTTP/3 is up and stream credit is left). Runs outside
    // the QUIC library's callbacks, so submit() may be called here.
    virtual void on_stream_credit(Connection&) {}
    virtual void on_header(Connection&, void* stream, int32_t token, std::string_view name,
                           std::string_view value) {}
    virtual void on_headers_end(Connection&, void* stream) {}
    // Response body bytes. Flow-control credit comes back only through consume*().
    virtual void on_body(Connection&, int64_t stream_id, void* stream, const uint8_t* data,
                         size_t len) = 0;
    // The whole response arrived (FIN).
    virtual void on_response_end(Connection&, void* stream) {}
    // The stream is closed; `app_error` is H3_NO_ERROR (0x100) for a clean close.
    virtual void on_stream_closed(Connection&, void* stream, uint64_t app_error) {}
    // The server sent RESET_STREAM, or STOP_SENDING, on `stream_id` (any stream). These run
    // inside the QUIC library's callbacks: report, but submit or close nothing there.
    virtual void on_stream_reset(Connection&, int64_t stream_id, uint64_t app_error) {}
    virtual void on_stop_sending(Connection&, int64_t stream_id, uint64_t app_error) {}
    // The request body of `stream`; it must stay valid until the stream closes.
    virtual std::span<const uint8_t> request_body(Connection&, void* stream) { return {}; }
    // A streamed request body (submit with `streamed`): the next bytes of `stream`, valid
    // until the stream closes; set *eof with the last. Empty without *eof: nothing yet, call
    // Connection::resume_body() when there is.
    virtual std::span<const uint8_t> request_body_part(Connection&, void* stream, bool* eof) {
        *eof = true;
        return {};
    }
    // The server refused 0-RTT: the requests submitted so far are void and get no more
    // events; submit them again on the next on_stream_credit.
    virtual void on_early_data_rejected(Connection&) {}
    // The server sent GOAWAY: no new requests on this connection.
    virtual void on_goaway(Connection&) {}
    // A requested migration finished or failed.
    virtual void on_migrated(Connection&, const MigrationResult&) {}
    // The connection is over (close_reason() says why). This is its last event; the
    // handler may destroy the Connection here.
    virtual void on_closed(Connection&) {}
};

// Bytes seen by one connection, for h3load's traffic line.
struct ConnectionCounters {
    uint64_t stream_bytes = 0;  // `stream_bytes` is all STREAM payload received.
    uint64_t request_bytes = 0; // `request_bytes` is the part on request streams.
    uint64_t body_bytes = 0;    // `body_bytes` is response body (DATA payload).
    uint64_t header_bytes = 0;  // `header_bytes` is decoded header names + values.
};

// One HTTP/3 connection to a server. Its work runs in its own libev callbacks; handler
// events come from there, and on_closed is the last thing such a callback does, so the
// handler may destroy the connection in it (and must not elsewhere while it is running).
class Connection {
public:
    enum class Migration { Validated, NatRebinding };

    Connection(struct ev_loop* loop, PacketIo& io, const ClientSettings& settings,
               ConnectionHandler& handler);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    // Sends CONNECTION_CLOSE if still open; no handler events.
    ~Connection();

    // Opens the socket and starts the handshake on the next loop iteration.
    bool connect(const ConnectTarget& target, std::string& error);

    // HTTP/3 is up and a request stream can be opened.
    bool can_open_stream() const;
    // can_open_stream(), and in raw mode the server has acknowledged every raw byte.
    bool can_submit() const;
    // Raw mode: opens a request stream and sends `bytes` on it as they are (then FIN if
    // `fin`); the response is read without nghttp3. `bytes` is copied. -1 as submit().
    int64_t submit_raw(std::span<const uint8_t> bytes, bool fin, void* stream);
    // Opens a request stream with `headers`; returns its id, or -1 without stream credit.
    // `streamed`: the body comes piecewise from request_body_part() instead of at once.
    int64_t submit(const nghttp3_nv* headers, size_t count, bool has_body, void* stream,
                   bool streamed = false);
    // More of a streamed body (or its end) is ready: nghttp3 asks again, then it is sent.
    void resume_body(int64_t stream_id);
    // Gives back `n` bytes of receive credit on the stream and on the connection.
    void consume(int64_t stream_id, size_t n);
    // The two halves of consume(), for a reader that holds bytes back: the connection's
    // credit at once (so other streams keep moving), the stream's once they are used.
    void consume_stream(int64_t stream_id, size_t n);
    void consume_connection(size_t n);
    // Sends what is pending on the next loop iteration (after submit() outside events).
    void schedule_write();
    // Closes with H3_NO_ERROR on the next loop iteration; on_closed follows.
    void close();
    // Moves to a new local port once the handshake is confirmed (on_migrated follows).
    void request_migration(Migration kind);

    bool handshake_completed() const { return handshake_completed_; }
    bool closed() const { return closed_; }
    bool migration_in_progress() const { return migration_requested_ || migration_validating_; }
    bool early_data_attempted() const { return early_data_; }
    bool early_data_accepted() const { return early_data_ && !early_data_rejected_; }
    const std::string& close_reason() const { return close_reason_; }
    const PeerClose& peer_close() const { return peer_close_; }
    std::string alpn() const;
    std::string tls_version() const; // "TLSv1.3"
    std::string tls_cipher() const;  // "TLS_AES_128_GCM_SHA256"
    std::string tls_group() const;   // "X25519"
    uint32_t quic_version() const;
    uint16_t local_port() const;
    const SessionData& session() const { return session_; }
    const ConnectionCounters& counters() const { return counters_; }
    uint64_t started_at() const { return started_at_; } // ns, monotonic

private:
    friend struct QuicCallbacks;
    friend struct HttpCallbacks;
    friend class RawStreams;

    // A local UDP socket the connection sends and receives on.
    struct Endpoint {
        Connection* owner = nullptr; // `owner` receives the socket's events.
        int fd = -1;                 // `fd` is connected to the server.
        SocketAddress local;         // `local` is the address ngtcp2 knows the path by.
        uint16_t bound_port = 0;     // `bound_port` is the real port (differs after rebinding).
        ev_io read_watcher;          // `read_watcher` fires on incoming datagrams.
    };
    // Datagrams the socket refused (EAGAIN), sent first when it turns writable.
    struct Unsent {
        Endpoint* endpoint = nullptr; // `endpoint` they must leave from.
        size_t segment = 0;           // `segment` is the datagram size.
        std::vector<uint8_t> bytes;   // `bytes` is one or more datagrams back to back.
    };

    static void read_cb(struct ev_loop* loop, ev_io* w, int revents);
    static void write_cb(struct ev_loop* loop, ev_io* w, int revents);
    static void timer_cb(struct ev_loop* loop, ev_timer* w, int revents);

    Endpoint* open_endpoint(std::string& error);
    bool init_tls(const ConnectTarget& target, std::string& error);
    void use_session(const ConnectTarget& target);
    void on_readable(Endpoint& endpoint);
    void feed(Endpoint& endpoint, int i);
    // Runs after every event: deferred work, writes, timer; reports a close last.
    void after_event();
    bool write_packets();
    // Sends io_.tx()[0, len) from `endpoint`; false if the rest had to be kept (blocked).
    bool send_batch(Endpoint* endpoint, const uint8_t* data, size_t len, size_t segment);
    bool send_unsent();
    void queue_unsent(Endpoint* endpoint, const uint8_t* data, size_t len, size_t segment);
    void arm_write_watcher(Endpoint* endpoint);
    bool add_write_offset(int64_t stream_id, ngtcp2_ssize n);
    // nghttp3's bytes for RawStreams::kPhantomStream: written and acknowledged at once.
    bool swallow_phantom(const nghttp3_vec* vec, size_t count);
    void send_connection_close();
    void reject_early_data();
    Endpoint* current_endpoint() const;
    void update_timer();
    void perform_migration();
    void finish_close();
    void fail(std::string reason);
    std::string refused_reason() const;
    void fail_read(int liberr);
    void set_app_error(int nghttp3_error);

    // HTTP/3 (http3.cc).
    bool setup_http();
    // Raw mode's part of setup_http (raw.cc): nghttp3's streams and the raw ones.
    bool setup_raw_streams();
    void teardown_http();

    // QUIC events (connection.cc).
    int on_handshake_completed();
    int on_recv_stream_data(uint32_t flags, int64_t stream_id, const uint8_t* data, size_t len);
    int on_stream_close(uint32_t flags, int64_t stream_id, uint64_t app_error);
    void on_path_validation(const ngtcp2_path* path, bool ok);
    void on_new_ticket();

    struct ev_loop* loop_;              // `loop_` runs the watchers.
    PacketIo& io_;                      // `io_` holds the loop's datagram buffers.
    const ClientSettings& settings_;    // `settings_` outlive the connection.
    ConnectionHandler& handler_;        // `handler_` gets the events.
    ngtcp2_crypto_conn_ref conn_ref_{}; // `conn_ref_` lets ngtcp2's TLS glue find `conn_`.
    ngtcp2_conn* conn_ = nullptr;
    nghttp3_conn* http_ = nullptr;
    std::unique_ptr<RawStreams> raw_; // `raw_` exists in raw mode once HTTP/3 is set up.
    gnutls_session_t tls_ = nullptr;
    SocketAddress remote_;
    SocketAddress bind_to_; // `bind_to_` is ConnectTarget::local, for every socket opened.
    std::string verify_name_; // `verify_name_` must outlive `tls_` (GnuTLS keeps it).
    std::vector<std::unique_ptr<Endpoint>> endpoints_; // `endpoints_`: current one first.
    ev_io write_watcher_;                      // `write_watcher_` resumes sending (and kicks off).
    ev_timer timer_;                           // `timer_` fires at ngtcp2's expiry.
    std::vector<Unsent> unsent_;               // `unsent_` is empty unless the socket filled up.
    ngtcp2_ccerr last_error_;                  // `last_error_` goes into CONNECTION_CLOSE.
    std::string close_reason_;
    PeerClose peer_close_;
    SessionData session_; // `session_` is the latest ticket (keep_session).
    ConnectionCounters counters_;
    uint64_t started_at_ = 0;
    bool handshake_completed_ = false;
    bool handshake_confirmed_ = false;
    bool early_data_ = false; // `early_data_`: requests went out as 0-RTT.
    bool early_data_rejected_ = false;
    bool goaway_ = false;
    bool closing_ = false;   // `closing_`: close at the end of this event.
    bool send_close_ = true; // `send_close_`: our CONNECTION_CLOSE is still due.
    bool closed_ = false;
    bool close_requested_ = false;
    bool migration_requested_ = false;
    bool migration_validating_ = false;
    Migration migration_kind_ = Migration::Validated;
    Endpoint* migration_target_ = nullptr; // `migration_target_` is being validated.
    uint16_t migration_from_ = 0;
};

} // namespace h3
