// HTTP/3 upstream connections (protocol = "h3"; pass = "h3://"): one QUIC connection (ngtcp2
// over a connected UDP socket, TLS 1.3 in GnuTLS, nghttp3 on top) per server of an upstream,
// shared by every request of this worker to that server, as H2Session is for HTTP/2. Request
// streams open within the server's stream limit (MAX_STREAMS); a request beyond it waits for
// credit, and a session that is full sends the next request to a second connection. The
// requests riding them are H3Exchanges (h3_upstream.h).
#pragma once

#include <ev.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "modules/proxy/h3_tls.h"
#include "modules/proxy/upstream_config.h"
#include "modules/proxy/upstream_metrics.h"

namespace wraith::proxy {

class H3Exchange;
class H3Sessions;
class UpstreamPool;

// ngtcp2's clock: CLOCK_MONOTONIC in nanoseconds.
uint64_t quic_now_ns();

// One request stream as the session keeps it: who gets its events, and the request body
// bytes handed to nghttp3, which points into them until the server acknowledged them (so
// they outlive a cancelled exchange until the stream closes).
struct H3Stream {
    H3Exchange* exchange = nullptr; // null: cancelled, its events are dropped
    std::deque<std::string> unacked;
    size_t unacked_bytes = 0;  // in `unacked`, minus `front_acked`
    size_t front_acked = 0;    // acknowledged bytes of unacked.front()
    bool body_blocked = false; // nghttp3 was told WOULDBLOCK for want of window here
};

// One QUIC connection to one server of an HTTP/3 upstream.
class H3Session {
public:
    H3Session(H3Sessions& owner, UpstreamPool& pool, struct ev_loop* loop, const UpstreamConfig& up,
              size_t server);
    ~H3Session();
    H3Session(const H3Session&) = delete;
    H3Session& operator=(const H3Session&) = delete;

    const UpstreamConfig& upstream() const { return up_; }
    size_t server() const { return server_; }
    bool usable() const { return state_ != State::dead && !goaway_; }
    bool has_room() const;
    void start();

    // A request for a stream: served at once when the session is ready and the server
    // allows another stream, else once it does.
    void add(H3Exchange* x);
    void remove(H3Exchange* x);
    // Opens a request stream for `x`; -1 when it could not (the exchange then fails).
    int64_t submit(H3Exchange* x, const nghttp3_nv* nva, size_t count, bool body);
    // More request body is ready on `id` (or its end).
    void resume(int64_t id);
    // `n` response body bytes of `id` were taken by the client: the server may send more.
    void consume(int64_t id, size_t n);
    // The request is over on our side: the stream is reset (H3_REQUEST_CANCELLED).
    void cancel(int64_t id);
    // The exchange is done with a stream that ends on its own: its events go nowhere now.
    void release(int64_t id);

private:
    friend struct H3Callbacks;
    // connecting: DNS; handshaking: QUIC + TLS; ready: requests go; dead: over.
    enum class State { connecting, handshaking, ready, dead };

    void connect(const std::vector<sockaddr_storage>& addrs);
    bool open_connection(const sockaddr_storage& addr, std::string& error);
    bool setup_http();
    static void on_read(struct ev_loop*, ev_io* w, int);
    static void on_write(struct ev_loop*, ev_io* w, int);
    static void on_expiry(struct ev_loop*, ev_timer* w, int);
    static void on_deadline(struct ev_loop*, ev_timer* w, int);
    void read_packets();
    // Writes what ngtcp2 and nghttp3 have to send, then re-arms the expiry timer.
    void flush();
    void schedule_flush(); // a flush on the loop, after the current callback
    bool send_packet(const uint8_t* data, size_t len);
    void after_io(); // the work deferred out of library callbacks
    void serve_waiting();
    void maybe_idle();
    void update_timer();
    void read_error(int liberr);
    // The session is over: every request on it or waiting for it hears why (empty: a quiet
    // close with nothing in flight). `udp_blocked`: the QUIC handshake never got an answer
    // (deadline, ICMP unreachable), which a fallback = "h2" upstream answers over TCP.
    // `kind`: what the requests count it as (connect, whatever it is, for a connection that
    // never got ready).
    void die(const std::string& why, bool udp_blocked = false, Failure kind = Failure::reset);
    void send_close();
    std::string where() const; // "upstream \"app\" server 127.0.0.1:443"

    // Library events (h3_session.cc's H3Callbacks route them here).
    int on_stream_data(uint32_t flags, int64_t id, const uint8_t* data, size_t len);
    int on_acked(int64_t id, uint64_t len);
    void on_http_stream_close(int64_t id, uint64_t app_error, H3Stream* st);

    H3Sessions& owner_; // destroys this session once it ended
    UpstreamPool& pool_;
    const UpstreamConfig& up_;
    size_t server_;
    struct ev_loop* loop_;
    State state_ = State::connecting;
    uint64_t dns_wait_ = 0;
    int fd_ = -1;
    sockaddr_storage local_{};
    socklen_t local_len_ = 0;
    sockaddr_storage remote_{};
    socklen_t remote_len_ = 0;
    ngtcp2_crypto_conn_ref conn_ref_{}; // how ngtcp2's GnuTLS glue finds conn_
    ngtcp2_conn* conn_ = nullptr;
    nghttp3_conn* http_ = nullptr;
    gnutls_session_t tls_ = nullptr;
    QuicPeerName peer_; // GnuTLS points into it while verifying
    ngtcp2_ccerr last_error_{};
    ev_io read_io_{};
    ev_io write_io_{};             // started while the socket is full; fed to defer a flush
    ev_timer expiry_{};            // ngtcp2's next deadline (loss, ACK delay, pacing, idle)
    ev_timer deadline_{};          // connect_timeout while connecting, then keepalive_timeout idle
    uint64_t started_us_ = 0;      // monotonic: start() (wraith_upstream_connect_seconds)
    std::vector<uint8_t> blocked_; // a datagram the socket refused (EAGAIN), sent first
    std::vector<H3Exchange*> waiting_;
    std::unordered_map<int64_t, std::unique_ptr<H3Stream>> streams_;
    std::vector<int64_t> cancels_; // resets asked for inside library callbacks
    std::string http_error_;       // an nghttp3 failure inside a callback, for the log
    uint32_t streams_opened_ = 0;
    bool handshake_done_ = false;
    bool goaway_ = false; // the server's GOAWAY, or keepalive_requests reached
    bool in_io_ = false;  // inside ngtcp2/nghttp3: work waits for after_io()
};

// This worker's QUIC connections to each server of each HTTP/3 upstream (part of
// ProxyWorker), and which servers had UDP blocked lately (fallback = "h2").
class H3Sessions {
public:
    H3Sessions(struct ev_loop* loop, UpstreamPool& pool, UpstreamMetrics& metrics);
    ~H3Sessions();
    H3Sessions(const H3Sessions&) = delete;
    H3Sessions& operator=(const H3Sessions&) = delete;

    // A session with room for one more stream to server `server` of `up`, or a new one.
    H3Session* session_for(const UpstreamConfig& up, size_t server);
    // A session that ended is destroyed here, outside its own callbacks.
    void closed(H3Session* s);
    // The datagram buffers every session of this loop shares (one runs at a time).
    uint8_t* rx() { return rx_.get(); }
    uint8_t* tx() { return tx_.get(); }
    static constexpr size_t kRxSize = 65536;
    static constexpr size_t kTxSize = 1500;

    // fallback = "h2": a handshake to `server` got no answer; its requests go over HTTP/2
    // for kUdpRetry from now (logged once per such interval).
    void mark_udp_blocked(const UpstreamConfig& up, size_t server, const std::string& why);
    bool udp_blocked(const UpstreamConfig& up, size_t server) const;
    UpstreamMetrics& metrics() { return metrics_; }

private:
    static void on_reap(struct ev_loop* loop, ev_prepare* w, int revents);
    struct Key {
        const UpstreamConfig* up;
        size_t server;
    };
    struct ev_loop* loop_;
    UpstreamPool& pool_;
    UpstreamMetrics& metrics_;
    std::vector<std::pair<Key, std::unique_ptr<H3Session>>> sessions_;
    std::vector<std::unique_ptr<H3Session>> dead_;
    ev_prepare reaper_{};
    std::unique_ptr<uint8_t[]> rx_;
    std::unique_ptr<uint8_t[]> tx_;
    std::map<std::pair<const UpstreamConfig*, size_t>, ev_tstamp> blocked_until_;
};

} // namespace wraith::proxy
