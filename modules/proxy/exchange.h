// One proxied request: connects (or reuses a pooled connection), sends the request head and
// streams the body to the upstream, parses the response and streams it to the client. Lives in
// the request arena; its destructor stops every watcher and closes or pools the upstream
// connection, so no fd outlives the exchange.
#pragma once

#include <ev.h>

#include <cstdint>
#include <string>

#include "common/http.h"
#include "modules/proxy/response_parser.h"

namespace wraith::proxy {

class ProxyHandler;

class ProxyExchange {
public:
    ProxyExchange(const ProxyHandler& handler, Request& req, BodyReader& body, ResponseWriter& out);
    ~ProxyExchange();
    ProxyExchange(const ProxyExchange&) = delete;
    ProxyExchange& operator=(const ProxyExchange&) = delete;

    void start();

private:
    enum class BodyState { none, streaming, done };

    void build_request_head();
    bool connect_upstream(bool allow_reuse);
    void connected();
    void write_ready();
    void pull_body();
    void read_ready();
    void process_input();
    bool handle_head(size_t head_len);
    void upstream_closed(int err);
    void complete();
    void fail(int status, const std::string& reason);
    void client_aborted();
    void close_upstream();
    void update_io();
    void arm_timer();
    void timed_out();
    std::string describe() const; // "127.0.0.1:9000" for messages
    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);

    const ProxyHandler& handler_;
    Request& req_;
    BodyReader& body_;
    ResponseWriter& out_;
    struct ev_loop* loop_;
    size_t server_ = 0;
    int fd_ = -1;
    ev_io io_;
    ev_timer timer_;
    int io_events_ = 0;
    bool connecting_ = false;
    bool reused_ = false; // fd_ came from the pool (may be stale: one retry allowed)
    bool retried_ = false;
    bool finished_ = false;       // response ended, failed or aborted: no more client calls
    bool client_blocked_ = false; // the writer said `blocked`: stop reading the upstream
    bool body_paused_ = false;    // we paused the client's body (upstream socket full)
    bool body_chunked_ = false;   // request body re-encoded as chunked
    BodyState body_state_ = BodyState::none;
    uint64_t body_consumed_ = 0;
    std::string send_buf_; // request bytes not yet written to the upstream
    size_t send_off_ = 0;
    std::string recv_buf_; // response bytes not yet processed
    size_t recv_off_ = 0;
    bool head_done_ = false;
    bool got_bytes_ = false;      // the upstream answered something on this connection
    std::string_view request_id_; // X-Request-ID sent upstream and returned (request arena)
    ParsedResponse response_;
    BodyDecoder decoder_;
};

} // namespace wraith::proxy
