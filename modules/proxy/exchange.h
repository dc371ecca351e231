// One proxied request: connects (or reuses a pooled connection), sends the request head and
// streams the body to the upstream, parses the response and streams it to the client. Lives in
// the request arena; its destructor stops every watcher and closes or pools the upstream
// connection, so no fd outlives the exchange.
//
// A WebSocket request (an HTTP/1.1 Upgrade, or an extended CONNECT on HTTP/2 and 3) goes
// upstream as an HTTP/1.1 Upgrade; once the upstream answers 101 the exchange is a tunnel:
// the client's body bytes go to the upstream socket and the upstream's bytes become the
// response body, each direction ending on its own (half-close), never pooled after.
#pragma once

#include <ev.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/connector.h"
#include "common/http.h"
#include "common/loop.h"
#include "modules/proxy/response_parser.h"
#include "modules/proxy/spool.h"
#include "modules/proxy/upstream_trace.h"
#include "modules/proxy/upstream_transport.h"

namespace wraith::proxy {

class ProxyHandler;
class ProxyWorker;

class ProxyExchange {
public:
    ProxyExchange(const ProxyHandler& handler, ProxyWorker& worker, Request& req, BodyReader& body,
                  ResponseWriter& out);
    ~ProxyExchange();
    ProxyExchange(const ProxyExchange&) = delete;
    ProxyExchange& operator=(const ProxyExchange&) = delete;

    void start();

private:
    // Where the exchange is. It starts at `request`, goes through `connecting` whenever it
    // needs a new connection (a retry goes back there), and leaves `request` for `response`
    // or `tunnel` when the upstream's head came; `finished` is the end of every path.
    enum class Stage {
        request,    // no connection yet, or the request goes up and no final head came
        connecting, // DNS, the TCP connect (Happy Eyeballs) or the TLS handshake
        response,   // the head went to the client; its body follows
        tunnel,     // the upstream said 101: raw bytes both ways
        finished,   // the response ended, failed or was aborted: no more client calls
    };
    bool finished() const { return stage_ == Stage::finished; }
    bool head_done() const { return stage_ == Stage::response || stage_ == Stage::tunnel; }

    // streaming: the client's body goes up as it arrives; spooling: it is being read whole
    // (buffer_request_body), spooled: it was, and goes up from the spool.
    enum class BodyState { none, streaming, spooling, spooled, done };

    void watch_body();      // the client's body wakes write_ready()
    void spool_more();      // buffer_request_body: reads what arrived into the spool
    void send_request();    // builds the head and connects (once the body is spooled, if it is)
    void restart_request(); // a retry or a fresh connection: the request from its start
    void build_request_head();
    bool connect_upstream(bool allow_reuse);
    // One step of readying a new connection (the TLS handshake; a plain one is ready at once):
    // true when requests may go, false while it waits or after it failed.
    bool handshake_step();
    void handshake_failed();
    void write_ready();
    void pull_body();
    void read_ready();
    void process_input();
    void wait_for_client();
    void send_last(std::string_view payload); // the body's last bytes, then its trailers
    bool handle_head(size_t head_len);
    void upstream_closed(int err);
    void complete();
    // The upstream said 101: checks the handshake and opens the tunnel; false when it failed.
    bool open_tunnel();
    // Both directions of the tunnel ended: nothing more to do for either side.
    void maybe_finish_tunnel();
    // The tunnel cannot go on (idle, upstream reset): the client's side is cut.
    void close_tunnel(const std::string& reason);
    void fail(int status, const std::string& reason);
    void client_aborted();
    void close_upstream();
    void update_io();
    void arm_timer();
    void timed_out();
    std::string describe() const; // "127.0.0.1:9000" for messages
    // Connecting to or hearing from the server failed (`kind`) before any response byte:
    // passive health counts it, and an idempotent request goes to another server when the
    // upstream's retries and retry budget allow. False: no retry (the caller answers the
    // client). `answered`: the server answered a status of fail_statuses (its bytes are
    // discarded).
    bool retry_elsewhere(const std::string& why, Failure kind, bool answered = false);
    // The try failed (`kind`) past the point of a retry: the client gets `status`.
    void fail_upstream(Failure kind, int status, const std::string& reason);
    void drop_drained_buffer();
    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_total_timer(struct ev_loop* loop, ev_timer* w, int revents);

    const ProxyHandler& handler_;
    ProxyWorker& worker_;
    Request& req_;
    BodyReader& body_;
    ResponseWriter& out_;
    struct ev_loop* loop_;
    // Connecting: a host name's addresses may first come from DNS, then Happy Eyeballs.
    void start_connect(const std::vector<sockaddr_storage>& addrs);
    void connector_done(int fd, const std::string& error);
    std::unique_ptr<Connector> connector_;
    uint64_t dns_wait_ = 0;          // non-zero: waiting for the server's first DNS answer
    ev_tstamp connect_deadline_ = 0; // connect_timeout covers the TCP connect and TLS handshake

    size_t server_ = 0;
    bool holding_ = false;    // counted in the pool's active connections of server_
    std::vector<bool> tried_; // servers this request tried (retries go elsewhere)
    uint32_t tries_ = 0;
    std::unique_ptr<UpstreamTransport> conn_; // plain TCP or TLS; null while connecting
    OrderedIo io_;                            // common/loop.h: served in readiness order
    ev_timer timer_;
    ev_timer total_timer_; // upstream.total_timeout
    int io_events_ = 0;
    Stage stage_ = Stage::request;
    bool reused_ = false; // conn_ came from the pool (may be stale: one retry allowed)
    bool retried_ = false;
    bool client_blocked_ = false; // the writer said `blocked`: stop reading the upstream
    bool body_paused_ = false;    // we paused the client's body (upstream socket full)
    bool body_chunked_ = false;   // request body re-encoded as chunked
    bool tunnel_ = false;         // a WebSocket handshake was asked of the upstream
    // Tunnel: the upstream's side ended (so did the response); the client's side ended (so
    // did our writing to the upstream: FIN sent). Both: the tunnel is over.
    bool upstream_eof_ = false;
    bool upstream_write_shut_ = false;
    BodyState body_state_ = BodyState::none;
    uint64_t body_consumed_ = 0;
    std::unique_ptr<BodySpool> spool_; // buffer_request_body
    uint64_t spool_sent_ = 0;          // bytes of the spool put into send_buf_
    std::string send_buf_;             // request bytes not yet written to the upstream
    size_t send_off_ = 0;
    char* recv_buf_ = nullptr;    // response bytes (a pooled 64 KiB buffer, taken on first read)
    size_t recv_len_ = 0;         // bytes in it
    size_t recv_off_ = 0;         // of which processed
    bool got_bytes_ = false;      // the upstream answered something on this connection
    std::string_view request_id_; // X-Request-ID sent upstream and returned (request arena)
    std::string ws_key_; // Sec-WebSocket-Key we made for an h2/h3 client (checked on the 101)
    ParsedResponse response_;
    BodyDecoder decoder_;
    UpstreamTrace trace_; // req_.upstream and the upstream metrics
};

} // namespace wraith::proxy
