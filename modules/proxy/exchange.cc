#include "modules/proxy/exchange.h"

#include "common/strings.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "common/log.h"
#include "common/module.h"
#include "modules/proxy/health.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/proxy_worker.h"
#include "modules/proxy/upstream_request.h"
#include "modules/proxy/upstream_tls.h"
#include "modules/proxy/websocket.h"

namespace wraith::proxy {

namespace {

constexpr size_t kReadBuffer = 64 * 1024; // response bytes read at once (and a head's room)

// Receive buffers are reused through a per-worker free list: allocating (and zero-filling)
// 64 KiB per exchange made glibc return the heap top after each one and fault it back in on
// the next, ~8 page faults per proxied request.
std::vector<char*>& free_read_buffers() {
    static std::vector<char*> list;
    return list;
}

char* take_read_buffer() {
    auto& list = free_read_buffers();
    if (list.empty())
        return new char[kReadBuffer];
    char* b = list.back();
    list.pop_back();
    return b;
}

void give_read_buffer(char* b) {
    auto& list = free_read_buffers();
    if (list.size() < 64)
        list.push_back(b);
    else
        delete[] b;
}
constexpr size_t kBodyPull = 64 * 1024; // request body bytes buffered towards the upstream

void append_header(std::string& o, std::string_view name, std::string_view value) {
    o.append(name);
    o.append(": ");
    o.append(value);
    o.append("\r\n");
}

} // namespace

ProxyExchange::ProxyExchange(const ProxyHandler& handler, ProxyWorker& worker, Request& req,
                             BodyReader& body, ResponseWriter& out)
    : handler_(handler), worker_(worker), req_(req), body_(body), out_(out), loop_(req.loop) {
    io_init(io_, on_io, this);
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_init(&total_timer_, on_total_timer);
    total_timer_.data = this;
}

ProxyExchange::~ProxyExchange() {
    stage_ = Stage::finished;
    trace_.finish();
    if (recv_buf_)
        give_read_buffer(recv_buf_);
    if (loop_)
        ev_timer_stop(loop_, &total_timer_);
    if (dns_wait_)
        worker_.pool().cancel_wait(handler_.upstream(), server_, dns_wait_);
    connector_.reset(); // closes attempts in flight
    close_upstream();
    if (holding_)
        worker_.pool().release(handler_.upstream(), server_);
}

std::string ProxyExchange::describe() const {
    return handler_.upstream().servers[server_].address;
}

void ProxyExchange::start() {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = worker_.pool();
    trace_.begin(req_, worker_.metrics(), up);
    pool.count_request(up);
    tried_.assign(up.servers.size(), false);
    int pick = pool.pick(up, req_, tried_);
    if (pick < 0) {
        // Every server is down, out of service after failures, or at max_conns: say so at
        // once instead of queueing the client.
        stage_ = Stage::finished;
        body_.discard();
        ErrorLog::limited(LogLevel::warn, "proxy: upstream \"%s\" has no server available",
                          up.name.c_str());
        return send_error(req_, out_, 503,
                          "proxy: no server of upstream \"" + up.name + "\" is available");
    }
    server_ = static_cast<size_t>(pick);
    pool.acquire(up, server_);
    holding_ = true;
    out_.on_abort([this] { client_aborted(); });
    if (!req_.upgrade.empty()) {
        const bool websocket = req_.extended_connect() ? iequals(req_.upgrade, "websocket")
                                                       : list_contains(req_.upgrade, "websocket");
        if (req_.extended_connect() && !websocket) {
            stage_ = Stage::finished;
            body_.discard();
            return send_error(req_, out_, 501,
                              "proxy: extended CONNECT for a protocol other than websocket");
        }
        tunnel_ = websocket;
        if (!tunnel_)
            req_.upgrade = {}; // another HTTP/1.1 Upgrade (h2c, ...): a plain request
    }
    if (up.total_timeout.count() > 0 && !tunnel_) {
        // Bounds everything, retries included; a tunnel has tunnel_timeout instead.
        ev_timer_set(&total_timer_, static_cast<double>(up.total_timeout.count()) / 1000.0, 0.);
        ev_timer_start(loop_, &total_timer_);
    }
    // A tunnel's client bytes are read only once the upstream switched (open_tunnel()).
    if (req_.has_body && !tunnel_ && handler_.options().buffer_request_body) {
        body_state_ = BodyState::spooling;
        const char* tmp = std::getenv("TMPDIR");
        spool_ = std::make_unique<BodySpool>(tmp && *tmp == '/' ? tmp : "/tmp");
        body_.on_data([this] { spool_more(); });
        return spool_more();
    }
    if (req_.has_body && !tunnel_) {
        body_state_ = BodyState::streaming;
        body_chunked_ = req_.content_length < 0;
        watch_body();
    }
    send_request();
}

void ProxyExchange::send_request() {
    build_request_head();
    trace_.start_try(server_);
    if (!connect_upstream(true))
        return;
    if (stage_ != Stage::connecting)
        write_ready();
    update_io();
}

void ProxyExchange::spool_more() {
    if (finished())
        return;
    if (body_.failed())
        return client_aborted();
    std::string error;
    BodySpool::Fill step = spool_->fill(body_, error);
    if (step == BodySpool::Fill::more)
        return;
    body_.on_data(nullptr);
    if (step == BodySpool::Fill::failed)
        return fail(500, "proxy: buffer_request_body: " + error);
    body_state_ = BodyState::spooled;
    body_chunked_ = false;
    send_request();
}

void ProxyExchange::watch_body() {
    body_.on_data([this] {
        if (finished())
            return;
        if (body_.failed())
            return client_aborted();
        if (stage_ != Stage::connecting && conn_) {
            write_ready();
            update_io();
        }
    });
}

void ProxyExchange::build_request_head() {
    if (request_id_.empty())
        request_id_ = assign_request_id(handler_, req_);
    UpstreamRequest r;
    build_upstream_request(handler_, req_, server_, tunnel_, r);
    std::string& o = send_buf_;
    o.reserve(1024);
    o.append(r.method);
    o.push_back(' ');
    o.append(r.target);
    o.append(" HTTP/1.1\r\n");
    append_header(o, "host", r.host);
    for (const Header& h : r.fields)
        append_header(o, h.name, h.value);

    if (tunnel_) {
        // RFC 6455 §4.1: the opening handshake; no body framing, the tunnel follows the 101.
        append_header(o, "connection", "upgrade");
        append_header(o, "upgrade", "websocket");
        if (req_.extended_connect()) {
            ws_key_ = websocket_key();
            append_header(o, "sec-websocket-key", ws_key_);
        }
        if (!req_.headers.find("sec-websocket-version"))
            append_header(o, "sec-websocket-version", "13");
        o.append("\r\n");
        return;
    }
    if (spool_)
        append_header(o, "content-length", std::to_string(spool_->size()));
    else if (req_.has_body && !body_chunked_)
        append_header(o, "content-length", std::to_string(req_.content_length));
    else if (req_.has_body)
        append_header(o, "transfer-encoding", "chunked");
    else if (req_.content_length == 0)
        append_header(o, "content-length", "0");
    if (handler_.upstream().keepalive == 0)
        append_header(o, "connection", "close");
    o.append("\r\n");
}

// Writes what is queued, pulling more request body whenever the queue empties.
void ProxyExchange::write_ready() {
    while (!finished() && conn_) {
        if (send_off_ == send_buf_.size()) {
            send_buf_.clear();
            send_off_ = 0;
            pull_body();
            if (send_buf_.empty()) {
                if (stage_ == Stage::tunnel && body_state_ == BodyState::done &&
                    !upstream_write_shut_) {
                    // The client ended its side: so do we, towards the upstream (half-close).
                    upstream_write_shut_ = true;
                    conn_->shutdown_write();
                    maybe_finish_tunnel();
                }
                return;
            }
        }
        ssize_t n = conn_->write(send_buf_.data() + send_off_, send_buf_.size() - send_off_);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                // The upstream's socket is full: stop taking body from the client.
                if (body_state_ == BodyState::streaming && !body_paused_) {
                    body_paused_ = true;
                    body_.pause();
                }
                return;
            }
            if (stage_ == Stage::tunnel) {
                trace_.failed(Failure::reset);
                return close_tunnel("proxy: upstream " + describe() + " stopped reading the " +
                                    "tunnel: " + std::strerror(errno));
            }
            return upstream_closed(errno);
        }
        send_off_ += static_cast<size_t>(n);
        arm_timer();
        if (send_off_ == send_buf_.size() && body_paused_ && body_state_ == BodyState::streaming) {
            body_paused_ = false;
            body_.resume();
        }
    }
}

void ProxyExchange::pull_body() {
    if (body_state_ == BodyState::spooled) {
        std::string error;
        size_t before = send_buf_.size();
        if (!spool_->read(spool_sent_, kBodyPull, send_buf_, error))
            return fail(500, "proxy: " + error);
        spool_sent_ += send_buf_.size() - before;
        if (spool_sent_ >= spool_->size())
            body_state_ = BodyState::done;
        return;
    }
    if (body_state_ != BodyState::streaming)
        return;
    if (body_.failed())
        return client_aborted();
    std::string_view data = body_.peek();
    if (data.size() > kBodyPull)
        data = data.substr(0, kBodyPull);
    if (!data.empty()) {
        if (body_chunked_) {
            char size[24];
            int w = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
            send_buf_.append(size, static_cast<size_t>(w));
        }
        send_buf_.append(data);
        if (body_chunked_)
            send_buf_.append("\r\n");
        body_.consume(data.size());
        body_consumed_ += data.size();
    }
    if (body_.finished() && body_.peek().empty()) {
        if (body_chunked_)
            send_buf_.append("0\r\n\r\n");
        body_state_ = BodyState::done;
        body_.on_data(nullptr);
    }
}

void ProxyExchange::read_ready() {
    while (!finished() && conn_ && !client_blocked_) {
        if (!recv_buf_)
            recv_buf_ = take_read_buffer();
        if (recv_off_ == recv_len_) {
            recv_off_ = recv_len_ = 0;
        } else if (recv_off_ > 0) {
            std::memmove(recv_buf_, recv_buf_ + recv_off_, recv_len_ - recv_off_);
            recv_len_ -= recv_off_;
            recv_off_ = 0;
        }
        const size_t room = kReadBuffer - recv_len_;
        if (room == 0) // an unfinished head this long was refused in process_input()
            return fail_upstream(Failure::protocol, 502,
                                 "proxy: upstream " + describe() + " sent a response head over " +
                                     std::to_string(kMaxResponseHead / 1024) + " KiB");
        ssize_t n = conn_->read(recv_buf_ + recv_len_, room);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return drop_drained_buffer();
            return upstream_closed(errno);
        }
        recv_len_ += static_cast<size_t>(n);
        if (n == 0)
            return upstream_closed(0);
        got_bytes_ = true;
        arm_timer();
        process_input();
        // One read per event when the body is large keeps other connections served fairly.
        if (static_cast<size_t>(n) < room)
            return drop_drained_buffer();
    }
}

// Everything read was passed on: the buffer goes back to the pool until the upstream has
// more, so an exchange waiting on its client or the upstream holds no 64 KiB.
void ProxyExchange::drop_drained_buffer() {
    if (recv_buf_ && recv_off_ == recv_len_) {
        give_read_buffer(recv_buf_);
        recv_buf_ = nullptr;
        recv_off_ = recv_len_ = 0;
    }
}

void ProxyExchange::process_input() {
    while (!finished() && !client_blocked_) {
        std::string_view in(recv_buf_ + recv_off_, recv_len_ - recv_off_);
        if (stage_ == Stage::tunnel) {
            // Tunnel: the upstream's bytes are the response body, as they come.
            if (in.empty())
                return;
            recv_off_ += in.size();
            ResponseWriter::Result w = out_.send_body(in, false);
            if (w == ResponseWriter::Result::closed)
                return client_aborted();
            if (w == ResponseWriter::Result::blocked)
                wait_for_client();
            return;
        }
        if (!head_done()) {
            size_t head_len = response_head_length(in);
            if (head_len == 0) {
                if (in.size() > kMaxResponseHead)
                    fail_upstream(Failure::protocol, 502,
                                  "proxy: upstream " + describe() + " sent a response head over " +
                                      std::to_string(kMaxResponseHead / 1024) + " KiB");
                return;
            }
            if (head_len > kMaxResponseHead)
                return fail_upstream(Failure::protocol, 502,
                                     "proxy: upstream " + describe() +
                                         " sent a response head over " +
                                         std::to_string(kMaxResponseHead / 1024) + " KiB");
            if (!handle_head(head_len))
                return;
            continue;
        }
        size_t consumed = 0;
        std::string_view payload;
        BodyDecoder::Result r = decoder_.next(in, consumed, payload);
        recv_off_ += consumed;
        switch (r) {
        case BodyDecoder::Result::need_more:
            return;
        case BodyDecoder::Result::error:
            return fail_upstream(Failure::protocol, 502,
                                 "proxy: upstream " + describe() +
                                     " sent a malformed body: " + decoder_.error());
        case BodyDecoder::Result::done:
            trace_.response_end();
            send_last({});
            return complete();
        case BodyDecoder::Result::data: {
            bool last = decoder_.done();
            if (payload.empty() && !last)
                continue;
            if (last) {
                trace_.response_end();
                send_last(payload);
                return complete();
            }
            ResponseWriter::Result w = out_.send_body(payload, false);
            if (w == ResponseWriter::Result::closed)
                return client_aborted();
            if (w == ResponseWriter::Result::blocked)
                return wait_for_client();
            break;
        }
        }
    }
}

// The end of the upstream's body, with the trailer fields of a chunked one passed on where
// the client's protocol carries them (HTTP/1.1 chunked, HTTP/2, HTTP/3), minus those that
// must not be trailers (RFC 9110 §6.5.1: framing, routing, content metadata, hop-by-hop).
void ProxyExchange::send_last(std::string_view payload) {
    const Headers& trailers = decoder_.trailers();
    auto allowed = trailer_allowed;
    if (trailers.size() == 0 || std::none_of(trailers.begin(), trailers.end(),
                                             [&](const Header& h) { return allowed(h.name); })) {
        out_.send_body(payload, true);
        return;
    }
    if (!payload.empty())
        out_.send_body(payload, false);
    auto* pass = req_.arena->make<Headers>(); // values point into decoder_, which outlives it
    for (const Header& h : trailers)
        if (allowed(h.name))
            pass->add(h.name, h.value);
    out_.send_trailers(*pass);
}

// The client's writer is full: stop reading the upstream until it drained.
void ProxyExchange::wait_for_client() {
    client_blocked_ = true;
    out_.on_writable([this] {
        if (finished())
            return;
        client_blocked_ = false;
        process_input();
        // TLS records read ahead while the client was full: no socket event will tell.
        if (!finished() && !client_blocked_ && conn_ && conn_->buffered())
            read_ready();
        update_io();
        arm_timer();
    });
    update_io();
    arm_timer();
}

// Parses the head at the start of the unprocessed input; false when the exchange ended.
bool ProxyExchange::handle_head(size_t head_len) {
    // The head's views must live until the exchange ends: copy it into the arena.
    char* head = static_cast<char*>(req_.arena->alloc(head_len, 1));
    std::memcpy(head, recv_buf_ + recv_off_, head_len);
    recv_off_ += head_len;
    const char* error = "";
    if (parse_response_head(head, head_len, req_.method_id == Method::head, response_, error) !=
        HeadStatus::done) {
        fail_upstream(Failure::protocol, 502,
                      "proxy: upstream " + describe() + " sent a malformed response: " + error);
        return false;
    }
    if (response_.status < 200 && response_.status != 101)
        return true; // 1xx: RFC 9110 §15.2, the final response follows
    trace_.response_head(response_.status);
    if (response_.status == 101) {
        if (tunnel_)
            return open_tunnel();
        fail_upstream(Failure::protocol, 502,
                      "proxy: upstream " + describe() + " switched protocols unasked");
        return false;
    }
    const UpstreamConfig& up = handler_.upstream();
    if (std::find(up.fail_statuses.begin(), up.fail_statuses.end(), response_.status) !=
        up.fail_statuses.end()) {
        // A failure by configuration: another server, if the request can go again; else the
        // answer is passed on (as NGINX passes the last one).
        std::string why =
            "upstream " + describe() + " answered " + std::to_string(response_.status);
        if (retry_elsewhere(why, Failure::status, true))
            return false;
    }
    stage_ = Stage::response;
    worker_.health().success(
        Health::key(handler_.upstream().name, handler_.upstream().servers[server_].address));

    auto* head_out = req_.arena->make<ResponseHead>();
    head_out->status = response_.status;
    build_client_head(handler_, req_, server_,
                      worker_.pool().sticky_id(handler_.upstream(), server_), request_id_,
                      response_.headers, *head_out);
    if (response_.framing == Framing::length ||
        (response_.framing == Framing::none && response_.has_content_length))
        head_out->content_length = static_cast<int64_t>(response_.content_length);
    decoder_.start(response_.framing, response_.content_length);
    if (response_.framing == Framing::none || decoder_.done()) {
        trace_.response_end();
        out_.send_headers(*head_out, true);
        complete();
        return false;
    }
    out_.send_headers(*head_out, false);
    return true;
}

// RFC 6455 §4.1: the 101 must name websocket in Upgrade and upgrade in Connection; for a key
// we made (h2/h3 clients), its Sec-WebSocket-Accept must match. An HTTP/1.1 client made its
// own key and checks the answer itself, so the accept value goes to it untouched.
bool ProxyExchange::open_tunnel() {
    const Headers& h = response_.headers;
    if (!field_lists(h, "upgrade", "websocket") || !field_lists(h, "connection", "upgrade")) {
        fail_upstream(Failure::protocol, 502,
                      "proxy: upstream " + describe() +
                          " answered 101 without Upgrade: websocket and Connection: upgrade");
        return false;
    }
    const bool h1 = !req_.extended_connect();
    if (!h1 && (h.count("sec-websocket-accept") != 1 ||
                h.get("sec-websocket-accept") != websocket_accept(ws_key_))) {
        fail_upstream(Failure::protocol, 502,
                      "proxy: upstream " + describe() + " answered 101 with a wrong " +
                          "Sec-WebSocket-Accept");
        return false;
    }
    stage_ = Stage::tunnel;

    auto* head_out = req_.arena->make<ResponseHead>();
    // RFC 8441 §5: the h2/h3 client's success is a 2xx; no accept value travels there.
    head_out->status = h1 ? 101 : 200;
    build_client_head(handler_, req_, server_,
                      worker_.pool().sticky_id(handler_.upstream(), server_), request_id_, h,
                      *head_out);
    if (!h1)
        head_out->headers.remove("sec-websocket-accept");
    else
        head_out->headers.add("upgrade", "websocket");
    head_out->content_length = -1;
    out_.send_headers(*head_out, false);
    if (!out_.headers_sent()) {
        client_aborted();
        return false;
    }
    // The client's side: from now on its body is the tunnel's client-to-server stream.
    body_state_ = BodyState::streaming;
    body_chunked_ = false;
    watch_body();
    write_ready(); // bytes the client sent right behind its request
    arm_timer();
    return !finished();
}

void ProxyExchange::maybe_finish_tunnel() {
    if (finished() || !upstream_eof_ || !upstream_write_shut_)
        return;
    // Both directions ended: the upstream connection is spent (never pooled).
    stage_ = Stage::finished;
    trace_.finish();
    body_.on_data(nullptr);
    close_upstream();
}

void ProxyExchange::close_tunnel(const std::string& reason) {
    if (finished())
        return;
    stage_ = Stage::finished;
    trace_.finish();
    ErrorLog::limited(LogLevel::info, "%s; closing the client's side, client: %.*s", reason.c_str(),
                      req_.conn ? (int)req_.conn->peer_text.size() : 0,
                      req_.conn ? req_.conn->peer_text.data() : "");
    close_upstream();
    if (body_state_ == BodyState::streaming)
        body_.on_data(nullptr);
    out_.reset();
}

void ProxyExchange::upstream_closed(int err) {
    if (finished())
        return;
    std::string why = err ? std::strerror(err) : "connection closed";
    if (err == EPROTO && conn_ && !conn_->error().empty())
        why = "TLS error: " + conn_->error();
    if (stage_ == Stage::tunnel) {
        if (err != 0) {
            trace_.failed(Failure::reset);
            return close_tunnel("proxy: upstream " + describe() + " tunnel: " + why);
        }
        // The upstream ended its side: end the client's stream (FIN, END_STREAM), let the
        // client's side run on until it ends too.
        upstream_eof_ = true;
        trace_.response_end();
        if (out_.send_body({}, true) == ResponseWriter::Result::closed)
            return client_aborted();
        return maybe_finish_tunnel();
    }
    if (!head_done()) {
        // A pooled connection the upstream closed meanwhile: try once on a fresh one, as long
        // as no request body was taken from the client (it could not be sent again).
        if (reused_ && !got_bytes_ && !retried_ && (body_consumed_ == 0 || spool_)) {
            retried_ = true;
            close_upstream();
            trace_.failed(Failure::reset);
            trace_.start_try(server_); // the same server, a new connection
            restart_request();
            if (!connect_upstream(false))
                return;
            if (stage_ != Stage::connecting)
                write_ready();
            update_io();
            return;
        }
        std::string what =
            "upstream " + describe() + ": " + why + " before a complete response head";
        if (!retry_elsewhere(what, Failure::reset))
            fail(502, "proxy: " + what);
        return;
    }
    if (err == 0 && decoder_.framing() == Framing::close) {
        close_upstream(); // the end of a close-delimited body
        trace_.response_end();
        out_.send_body({}, true);
        return complete();
    }
    fail_upstream(Failure::reset, 502,
                  "proxy: upstream " + describe() + ": " + why + " in the middle of the body");
}

// The response went out whole: pool the connection when both sides allow another request.
void ProxyExchange::complete() {
    stage_ = Stage::finished;
    trace_.finish();
    bool reusable = conn_ && response_.keep_alive && body_state_ != BodyState::streaming &&
                    send_off_ == send_buf_.size() && recv_off_ == recv_len_ && !tunnel_ &&
                    !conn_->buffered() &&
                    ++conn_->requests < handler_.upstream().keepalive_requests;
    if (body_state_ == BodyState::streaming) {
        body_.on_data(nullptr);
        body_.discard(); // the upstream answered early; the client's connection stays usable
    }
    if (reusable) {
        io_stop(loop_, io_);
        ev_timer_stop(loop_, &timer_);
        io_events_ = 0;
        worker_.pool().put(loop_, handler_.upstream(), server_, std::move(conn_));
    }
    close_upstream();
}

void ProxyExchange::fail(int status, const std::string& reason) {
    if (finished())
        return;
    stage_ = Stage::finished;
    trace_.finish();
    close_upstream();
    if (body_state_ == BodyState::streaming) {
        body_.on_data(nullptr);
        if (!out_.headers_sent())
            body_.discard();
    }
    fail_response(req_, out_, status, reason);
}

void ProxyExchange::client_aborted() {
    stage_ = Stage::finished;
    trace_.finish();
    close_upstream();
}

void ProxyExchange::close_upstream() {
    if (loop_) {
        io_stop(loop_, io_);
        ev_timer_stop(loop_, &timer_);
    }
    io_events_ = 0;
    conn_.reset();
}

void ProxyExchange::update_io() {
    if (finished() || !conn_)
        return;
    int events = 0;
    if (stage_ == Stage::connecting)
        events = conn_->wait_events(true); // what the handshake waits for
    if (stage_ != Stage::connecting && send_off_ < send_buf_.size())
        events |= conn_->wait_events(false);
    if (stage_ != Stage::connecting && !client_blocked_ && !upstream_eof_)
        events |= conn_->wait_events(true);
    if (events != io_events_) {
        io_set(loop_, io_, conn_->fd(), events);
        io_events_ = events;
    }
    if (!ev_is_active(&timer_))
        arm_timer();
}

void ProxyExchange::arm_timer() {
    if (finished() || !conn_)
        return;
    const UpstreamConfig& up = handler_.upstream();
    Duration d{0};
    if (stage_ == Stage::tunnel)
        d = handler_.tunnel_timeout(); // idle in both directions; any byte restarts it
    else if (stage_ ==
             Stage::connecting) // what is left of it: the handshake shares the connect's time
        d = Duration{std::max<int64_t>(
            1, static_cast<int64_t>((connect_deadline_ - ev_now(loop_)) * 1000.0))};
    else if (send_off_ < send_buf_.size())
        d = up.send_timeout;
    else if (client_blocked_ || (body_state_ == BodyState::streaming && !got_bytes_))
        d = Duration{0}; // waiting on the client, whose own timeouts apply
    else if (!got_bytes_ && up.first_byte_timeout.count() > 0)
        d = up.first_byte_timeout;
    else
        d = up.read_timeout;
    ev_timer_stop(loop_, &timer_);
    if (d.count() > 0) {
        ev_timer_set(&timer_, static_cast<double>(d.count()) / 1000.0, 0.0);
        ev_timer_start(loop_, &timer_);
    }
}

void ProxyExchange::timed_out() {
    if (finished())
        return;
    if (stage_ == Stage::tunnel)
        return close_tunnel("proxy: tunnel to " + describe() + " idle for " +
                            std::to_string(handler_.tunnel_timeout().count()) + " ms");
    if (stage_ == Stage::connecting) {
        std::string why = conn_ && conn_->tls()
                              ? "TLS handshake with upstream \"" + handler_.upstream().name +
                                    "\" server " + describe() + " timed out"
                              : "connect to " + describe() + " timed out";
        if (!retry_elsewhere(why, Failure::connect))
            fail(504, "proxy: " + why);
        return;
    }
    if (!head_done() && !got_bytes_ && send_off_ == send_buf_.size()) {
        std::string why = "upstream " + describe() + " timed out before responding";
        if (!retry_elsewhere(why, Failure::timeout))
            fail(504, "proxy: " + why);
        return;
    }
    if (send_off_ < send_buf_.size())
        return fail_upstream(Failure::timeout, 504,
                             "proxy: sending to upstream " + describe() + " timed out");
    fail_upstream(Failure::timeout, 504,
                  "proxy: upstream " + describe() + " timed out " +
                      (head_done() ? "in the middle of the body" : "before responding"));
}

void ProxyExchange::on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* self = static_cast<ProxyExchange*>(w->data);
    if (self->stage_ == Stage::connecting) {
        if (self->handshake_step())
            self->write_ready();
        self->update_io();
        return;
    }
    // TLS may wait for the other direction than the operation's own (a handshake message).
    if (self->conn_ && (revents & self->conn_->wait_events(false)))
        self->write_ready();
    if (self->conn_ && (revents & self->conn_->wait_events(true)) && !self->finished())
        self->read_ready();
    self->update_io();
}

void ProxyExchange::on_total_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<ProxyExchange*>(w->data);
    if (self->finished() || self->stage_ == Stage::tunnel)
        return;
    const UpstreamConfig& up = self->handler_.upstream();
    self->fail_upstream(Failure::timeout, 504,
                        "proxy: upstream \"" + up.name + "\" (" + self->describe() +
                            ") did not finish within total_timeout (" +
                            std::to_string(up.total_timeout.count()) + " ms)");
}

void ProxyExchange::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<ProxyExchange*>(w->data)->timed_out();
}

} // namespace wraith::proxy
