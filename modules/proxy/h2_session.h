// HTTP/2 upstream connections (protocol = "h2"; pass = h2c://, grpc://, grpcs://): a session
// per server of an upstream, shared by every request of this worker to that server, streams
// opened within the server's limit, flow control as backpressure, GOAWAY and REFUSED_STREAM
// handled. The requests riding them are H2Exchanges (h2_upstream.h).
#pragma once

#include <ev.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/connector.h"
#include "common/loop.h"
#include "modules/proxy/upstream_config.h"
#include "modules/proxy/upstream_metrics.h"
#include "modules/proxy/upstream_transport.h"

namespace wraith::proxy {

class H2Exchange;
class H2Sessions;
class UpstreamPool;

// One connection to one server of an HTTP/2 upstream, its streams shared by the requests of
// this worker (H2Exchange, h2_upstream.h).
class H2Session {
public:
    H2Session(H2Sessions& owner, UpstreamPool& pool, struct ev_loop* loop, const UpstreamConfig& up,
              size_t server);

    ~H2Session();

    const UpstreamConfig& upstream() const { return up_; }
    size_t server() const { return server_; }
    bool usable() const { return state_ != State::dead && !goaway_; }
    bool has_room() const;
    bool tls() const { return up_.tls != nullptr; }
    void start();

    // A request for a stream: served at once when the session is ready, else when it is.
    void add(H2Exchange* x);
    void remove(H2Exchange* x);

    // Opens a stream for `x` with the request fields `nva`; -1 when nghttp2 refused.
    int32_t submit(H2Exchange* x, const std::vector<nghttp2_nv>& nva, bool body);
    void resume(int32_t id);
    void consume(int32_t id, size_t n);

    // The request is over on our side (client gone, timeout): RST_STREAM(CANCEL).
    void cancel(int32_t id);

private:
    // settling: the session is up, but requests wait for the server's first SETTINGS (its
    // stream limit), so a burst is not refused by a server that allows few streams.
    enum class State { connecting, handshaking, settling, ready, dead };
    void connect(const std::vector<sockaddr_storage>& addrs);
    void handshake();
    bool live() const { return state_ == State::settling || state_ == State::ready; }
    bool start_http2();
    void watch(int events);
    static void on_io(struct ev_loop*, ev_io* w, int revents);
    static void on_timer(struct ev_loop*, ev_timer* w, int);
    void read_ready();
    void schedule_flush();

    // Writes what nghttp2 has to send; keeps a refused remainder for the next EV_WRITE.
    void flush();
    void serve_waiting();
    bool has_room_for_open() const;
    void maybe_idle();

    // The session is over: every request on it or waiting for it hears why (empty: a quiet
    // close with nothing in flight) and `kind` (connect, whatever it is, for a session that
    // never got ready), and the session is destroyed after this callback.
    void die(const std::string& why, Failure kind = Failure::reset);
    static H2Exchange* exchange_of(nghttp2_session* s, int32_t id);

    static int on_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*);
    static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* user);

    static int on_data_chunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                             size_t len, void*);
    static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* user);

    H2Sessions& owner_; // destroys this session once it ended
    UpstreamPool& pool_;
    const UpstreamConfig& up_;
    size_t server_;
    struct ev_loop* loop_;
    State state_ = State::connecting;
    Connector connector_;
    uint64_t dns_wait_ = 0;
    std::unique_ptr<UpstreamTransport> conn_;
    nghttp2_session* h2_ = nullptr;
    OrderedIo io_; // common/loop.h: served in readiness order
    int io_events_ = 0;
    ev_timer timer_;          // the connect deadline, then the idle timeout
    uint64_t started_us_ = 0; // monotonic: start() (wraith_upstream_connect_seconds)
    std::vector<H2Exchange*> waiting_;
    std::unordered_map<int32_t, H2Exchange*> open_; // null: cancelled, its frames dropped
    std::string pending_;
    size_t pending_off_ = 0;
    bool goaway_ = false; // the server's GOAWAY, or keepalive_requests reached
    uint32_t streams_opened_ = 0;
    bool settled_ = false; // the server's SETTINGS arrived
    bool in_io_ = false;   // inside nghttp2: writes wait for the end of the callback
};

// This worker's sessions to each server of each HTTP/2 upstream (part of ProxyWorker).
class H2Sessions {
public:
    H2Sessions(struct ev_loop* loop, UpstreamPool& pool, UpstreamMetrics& metrics);
    ~H2Sessions();
    H2Sessions(const H2Sessions&) = delete;
    H2Sessions& operator=(const H2Sessions&) = delete;

    // A session with room for one more stream to server `server` of `up`, or a new one.
    H2Session* session_for(const UpstreamConfig& up, size_t server);
    // A session that ended is destroyed here, outside its own callbacks.
    void closed(H2Session* s);
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
    std::vector<std::pair<Key, std::unique_ptr<H2Session>>> sessions_;
    std::vector<std::unique_ptr<H2Session>> dead_;
    ev_prepare reaper_{};
};

} // namespace wraith::proxy
