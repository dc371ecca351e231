// HTTP/3 to upstream servers ([upstream.NAME] protocol = "h3"; pass = "h3://"): a request
// travels QUIC end to end. Like HTTP/2 upstreams (h2_upstream.h), per worker and server one
// connection (H3Session, h3_session.h) carries the requests of this worker as streams within
// the server's limit; backpressure is QUIC flow control (a response's stream credit returns
// only once the client's writer took its bytes) and the request body goes up as the client
// sends it. With fallback = "h2", a server whose QUIC handshake gets no answer within
// connect_timeout (UDP blocked) is asked over HTTP/2 on TLS instead (an H3Exchange).
#pragma once

#include <ev.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/connector.h"
#include "common/http.h"
#include "modules/proxy/spool.h"
#include "modules/proxy/upstream_config.h"
#include "modules/proxy/upstream_trace.h"

namespace wraith::proxy {

class H3Session;
class ProxyHandler;
class ProxyWorker;

// One request proxied to an HTTP/3 upstream: one request stream. Lives in the request arena.
class H3Exchange {
public:
    H3Exchange(const ProxyHandler& handler, ProxyWorker& worker, Request& req, BodyReader& body,
               ResponseWriter& out);
    ~H3Exchange();
    H3Exchange(const H3Exchange&) = delete;
    H3Exchange& operator=(const H3Exchange&) = delete;

    void start();

    // From the session, on the loop.
    void session_ready(H3Session& session); // opens the stream now
    // `why` empty: the session stopped taking streams (GOAWAY), another one serves.
    // `udp_blocked`: the QUIC handshake got no answer (fallback = "h2" applies). `kind`: how
    // the failure counts.
    void session_failed(const std::string& why, bool udp_blocked, Failure kind = Failure::connect);
    void on_field(std::string_view name, std::string_view value);
    void on_headers_end(bool end_stream);
    void on_data(const uint8_t* data, size_t len);
    void on_stream_end();
    // `kind`: how the stream's end counts when it came before the response did.
    void on_stream_closed(uint64_t app_error, const std::string& session_error, Failure kind);
    // Appends up to `max` bytes of the request body to `into`; *eof after the last. False:
    // the client's body failed (the exchange is ending).
    bool pull_body(std::string& into, size_t max, bool* eof);

private:
    void pick_and_go(int chosen = -1); // a server (the balancer's, or `chosen`), a session
    void fall_back();                  // the request goes over HTTP/2 on TCP instead
    void spool_more();
    // The try failed (`kind`): another server when the request can go again. `answered`: a
    // status of fail_statuses.
    bool retry_elsewhere(const std::string& why, Failure kind, bool answered = false);
    void fail(int status, const std::string& reason);
    void finish_ok();
    void client_aborted();
    void detach(); // leaves the session (cancels an open stream)
    void arm_timer();
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_total_timer(struct ev_loop* loop, ev_timer* w, int revents);
    std::string describe() const;

    const ProxyHandler& handler_;
    ProxyWorker& worker_;
    Request& req_;
    BodyReader& body_;
    ResponseWriter& out_;
    struct ev_loop* loop_;
    size_t server_ = 0;
    bool holding_ = false;
    std::vector<bool> tried_;
    uint32_t tries_ = 0;
    uint32_t refusals_ = 0;        // H3_REQUEST_REJECTED: not processed, sent again (a few)
    H3Session* session_ = nullptr; // waiting for it, or holding a stream of it
    int64_t stream_ = -1;
    bool finished_ = false;
    bool head_done_ = false;    // the final response head arrived
    bool got_response_ = false; // any response HEADERS (1xx included)
    bool client_blocked_ = false;
    size_t owed_ = 0; // DATA bytes given to a blocked client, not credited back yet
    uint64_t body_consumed_ = 0;
    bool body_done_ = false;
    std::unique_ptr<BodySpool> spool_;
    uint64_t spool_sent_ = 0;
    bool spooling_ = false;
    std::string_view request_id_;
    int status_ = 0;
    Headers fields_;   // the head being received (arena copies)
    Headers trailers_; // trailer fields (arena copies)
    ev_timer timer_;
    ev_timer total_timer_;
    UpstreamTrace trace_; // req_.upstream and the upstream metrics (to HTTP/2 on fallback)
};

} // namespace wraith::proxy
