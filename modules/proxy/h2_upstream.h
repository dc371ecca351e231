// HTTP/2 to upstream servers ([upstream.NAME] protocol = "h2"; pass = "grpc://", "grpcs://",
// "h2c://"): h2 over TLS (ALPN "h2") or cleartext with prior knowledge (h2c), for gRPC and
// other backends that want HTTP/2 end to end (trailers, many concurrent requests on one
// connection, long-lived streams).
//
// Per worker and server, sessions (connections) are shared by every request to that server:
// a request takes a stream of a session with room below the server's
// SETTINGS_MAX_CONCURRENT_STREAMS, or opens a new session. Backpressure is HTTP/2 flow
// control: a response's DATA is acknowledged (WINDOW_UPDATE) only once the client's writer
// took it, and the request body goes up as the client sends it, deferred while it has none.
// An idle session closes after keepalive_timeout; a GOAWAY from the server lets its streams
// finish and sends new requests to a new session.
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

typedef struct nghttp2_session nghttp2_session;

namespace wraith::proxy {

class H2Session;
class ProxyHandler;
class ProxyWorker;

// One request proxied to an HTTP/2 upstream: one stream. Lives in the request arena.
class H2Exchange {
public:
    H2Exchange(const ProxyHandler& handler, ProxyWorker& worker, Request& req, BodyReader& body,
               ResponseWriter& out);
    ~H2Exchange();
    H2Exchange(const H2Exchange&) = delete;
    H2Exchange& operator=(const H2Exchange&) = delete;

    // `spooled`, `server` and `trace`: an HTTP/3 exchange falling back to HTTP/2
    // (h3_upstream.h) hands over the body it spooled, the server it picked and its tries.
    void start(std::unique_ptr<BodySpool> spooled = nullptr, int server = -1,
               UpstreamTrace* trace = nullptr);

    // From the session, on the loop.
    void session_ready(H2Session& session); // opens the stream now
    // `why` empty: the session stopped taking streams (GOAWAY), another one serves.
    void session_failed(const std::string& why, Failure kind = Failure::connect);
    void on_field(std::string_view name, std::string_view value);
    void on_headers_end(bool end_stream);
    void on_data(const uint8_t* data, size_t len);
    void on_stream_end();
    // `kind`: how the stream's end counts when it came before the response did.
    void on_stream_closed(uint32_t error_code, const std::string& session_error, Failure kind);
    // The request body's next bytes for a DATA frame (nghttp2's data source).
    long read_body(uint8_t* buf, size_t len, uint32_t* flags);

private:
    void pick_and_go(int chosen = -1); // a server (the balancer's, or `chosen`), a session
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
    uint32_t refusals_ = 0;        // REFUSED_STREAM: not processed, sent again (a few times)
    H2Session* session_ = nullptr; // waiting for it, or holding a stream of it
    int32_t stream_ = -1;
    bool finished_ = false;
    bool head_done_ = false;    // the final response head arrived
    bool got_response_ = false; // any response HEADERS (1xx included)
    bool client_blocked_ = false;
    size_t owed_ = 0; // DATA bytes given to a blocked client, not acknowledged yet
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
    UpstreamTrace trace_; // req_.upstream and the upstream metrics
};

} // namespace wraith::proxy
