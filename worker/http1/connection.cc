// HTTP/1.1 connection lifecycle: accepting bytes, parsing heads, timeouts, keep-alive and
// pipelining, tunnels, drain and close. The request body is request_body.cc, the response is
// the exchange's (exchange.cc), and the output queue is written by output.cc.
#include "worker/http1/connection.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/exchange_util.h"
#include "worker/protocols.h"
#include "worker/pipeline.h"
#include "worker/peer.h"
#include "worker/worker.h"

namespace wraith::http1 {

namespace {

constexpr Duration kLingerTimeout{2000};
// A draining worker keeps an idle keep-alive connection this long: a client about to reuse it
// sends its request within it and gets an answer with Connection: close, instead of meeting a
// closed socket (clients that do not retry report that as an error).
constexpr Duration kDrainGrace{2000};

} // namespace

Connection::Connection(Worker& worker, std::unique_ptr<Transport> transport,
                       const sockaddr_storage& peer, const ListenConfig& listen)
    : worker_(worker), listen_(listen), transport_(std::move(transport)),
      fd_(transport_->fd()) {
    peer_.init(peer, *transport_, worker.next_connection_id());
    peer_.info.site = listen.site;
    peer_.info.alt_svc = worker.alt_svc(listen);
    io_init(io_, on_io, this);
    ev_init(&timer_, on_timer);
    timer_.data = this;
}

Connection::~Connection() {
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
    put_read_buffer(); // the transport closes the socket
    give_output();
}

void Connection::put_read_buffer() {
    if (rbuf_) {
        BufferPool& pool = rcap_ == worker_.read_buffers().buffer_size()
                               ? worker_.read_buffers()
                               : worker_.large_read_buffers();
        pool.put(rbuf_);
    }
    rbuf_ = nullptr;
    rcap_ = 0;
}

// A head that fills a normal buffer moves to a large one (max_header_size + room for the
// body's first bytes). Only before the head is parsed: nothing points into the buffer yet.
bool Connection::grow_read_buffer() {
    BufferPool& large = worker_.large_read_buffers();
    if (rcap_ >= large.buffer_size())
        return false;
    char* bigger = large.get();
    if (!bigger)
        return false;
    std::memcpy(bigger, rbuf_, rlen_);
    worker_.read_buffers().put(rbuf_);
    rbuf_ = bigger;
    rcap_ = large.buffer_size();
    return true;
}

void Connection::start() {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    set_io(EV_READ);
    want_buffered_read(); // the request may have come with the end of the TLS handshake
    // The first request gets header_timeout, not the (longer) keep-alive timeout.
    arm(worker_.config().http.header_timeout);
}

// ---- event plumbing ------------------------------------------------------------------------

void Connection::want_buffered_read() {
    if (!read_pending_ && transport_->buffered() > 0) {
        read_pending_ = true;
        worker_.defer(this);
    }
}

void Connection::set_io(int events) {
    if (events == io_events_)
        return;
    io_events_ = events;
    io_set(worker_.loop(), io_, fd_, events);
}

void Connection::arm(Duration d) {
    ev_timer_stop(worker_.loop(), &timer_);
    if (d.count() > 0) {
        ev_timer_set(&timer_, d.count() / 1000.0, 0.);
        ev_timer_start(worker_.loop(), &timer_);
    }
}

void Connection::on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* c = static_cast<Connection*>(w->data);
    if (revents & EV_WRITE)
        c->handle_writable();
    if ((revents & EV_READ) && c->state_ != State::closed)
        c->handle_readable();
}

void Connection::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<Connection*>(w->data)->handle_timeout();
}

void Connection::handle_timeout() {
    switch (state_) {
    case State::idle:
        if (draining_)
            return begin_close(true); // the drain's grace period is over
        return begin_close(false);
    case State::head:
        ErrorLog::limited(LogLevel::info, "client %s timed out sending a request head",
                          peer_.text);
        return reject(408, "request head timeout");
    case State::exchange:
        if (queued_mem() > 0 || seg_head_ < segs_.size()) {
            ErrorLog::limited(LogLevel::info, "client %s timed out reading the response",
                              peer_.text);
        } else {
            ErrorLog::limited(LogLevel::info, "client %s timed out sending the request body",
                              peer_.text);
            if (!ex_->headers_sent() && !body_discarding_) {
                body_failed_ = true;
                keep_alive_ = false;
                if (ex_->data_cb)
                    ex_->data_cb();
                if (state_ == State::exchange && !ex_->headers_sent()) {
                    send_error(ex_->request(), *ex_, 408, {});
                    return;
                }
            }
        }
        return abort_exchange();
    case State::lingering:
    case State::closed:
        return destroy();
    }
}

// ---- reading -------------------------------------------------------------------------------

bool Connection::ensure_read_buffer() {
    if (!rbuf_) {
        rbuf_ = worker_.read_buffers().get();
        if (!rbuf_)
            return false;
        rcap_ = worker_.read_buffers().buffer_size();
    }
    return true;
}

bool Connection::fill() {
    ssize_t n;
    if (!rbuf_) {
        // An idle connection has no buffer. Most wake-ups of idle keep-alive connections are
        // the client closing: read onto the stack first, so that costs no pooled buffer.
        char first[2048];
        n = transport_->read(first, sizeof(first));
        if (n > 0) {
            if (!ensure_read_buffer()) {
                begin_close(false);
                return false;
            }
            std::memcpy(rbuf_, first, n);
            rlen_ = n;
            return true;
        }
    } else {
        if (rlen_ == rcap_)
            return true; // full: the caller decides (431, or wait for the body to be consumed)
        n = transport_->read(rbuf_ + rlen_, rcap_ - rlen_);
        if (n > 0) {
            rlen_ += n;
            return true;
        }
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    // EOF or error.
    if (state_ == State::exchange && tunnel_ && n == 0 && !body_done_) {
        tunnel_client_done();
    } else if (state_ == State::exchange && !body_done_) {
        body_failed_ = true;
        if (ex_->data_cb)
            ex_->data_cb();
        abort_exchange();
    } else if (state_ == State::exchange) {
        // The client half-closed after its request: finish the response, then close.
        keep_alive_ = false;
        set_io(io_events_ & ~EV_READ);
        return false;
    } else if (state_ == State::head) {
        ErrorLog::limited(LogLevel::info, "client %s closed the connection mid-request",
                          peer_.text);
        destroy();
    } else {
        destroy();
    }
    return false;
}

void Connection::handle_readable() {
    switch (state_) {
    case State::idle:
    case State::head: {
        if (!fill())
            return;
        if (rlen_ == 0)
            return;
        want_buffered_read();
        if (state_ == State::idle) {
            state_ = State::head;
            scan_pos_ = 0;
            line_seen_ = false;
            arm(worker_.config().http.header_timeout);
        }
        parse_head();
        return;
    }
    case State::exchange:
        if (!body_wants_data()) {
            // Pipelined bytes of the next request, or a body nobody asked for yet: leave them
            // in the socket until they are wanted.
            set_io(io_events_ & ~EV_READ);
            return;
        }
        if (!fill())
            return;
        decode_body();
        return;
    case State::lingering: {
        char sink[4096];
        ssize_t n = transport_->read(sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            destroy();
        return;
    }
    case State::closed:
        return;
    }
}

// The parser is stateless, so calling it on every read would rescan the whole head each
// time: a client dribbling one byte per packet would cost O(n²). It runs only when the head
// may be complete (an empty line arrived), when the request line just completed (to reject a
// bad one early), or when a size limit may have been crossed.
bool Connection::head_worth_parsing() {
    const HttpConfig& http = worker_.config().http;
    size_t from = scan_pos_ > 2 ? scan_pos_ - 2 : 0;
    std::string_view fresh(rbuf_ + from, rlen_ - from);
    scan_pos_ = rlen_;
    if (fresh.find("\n\r\n") != std::string_view::npos ||
        fresh.find("\n\n") != std::string_view::npos)
        return true;
    if (!line_seen_ && fresh.find('\n') != std::string_view::npos) {
        line_seen_ = true;
        return true;
    }
    return (!line_seen_ && rlen_ > http.max_request_target) || rlen_ > http.max_header_size ||
           rlen_ == rcap_;
}

void Connection::parse_head() {
    // h2c with prior knowledge (RFC 9113 §3.3): the client preface instead of a request. The
    // socket and the bytes read so far move to an HTTP/2 connection; this one goes away.
    static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t seen = std::min<size_t>(rlen_, kPreface.size());
    if (requests_ == 0 && std::string_view(rbuf_, seen) == kPreface.substr(0, seen) &&
        std::find(listen_.protocols.begin(), listen_.protocols.end(), "h2c") !=
            listen_.protocols.end()) {
        if (rlen_ < kPreface.size())
            return; // wait for the rest of the preface
        state_ = State::closed;
        set_io(0);
        ev_timer_stop(worker_.loop(), &timer_);
        ex_.reset();
        worker_.remove_connection(this);
        worker_.defer(this); // deleted later; the new connection copies the bytes at start
        start_protocol(worker_, std::move(transport_), peer_.info.peer.storage(), listen_, "h2c",
                       {rbuf_, rlen_});
        return;
    }
    if (!head_worth_parsing())
        return;
    const HttpConfig& http = worker_.config().http;
    Limits limits{http.max_request_target, http.max_header_size, http.max_headers};
    ParseError err;
    RequestHead head;
    if (!ex_)
        ex_ = std::make_unique<Exchange>(*this); // the head's fields go into its request
    Headers& fields = ex_->request().headers;
    fields.clear();
    Status st = parse_request(rbuf_, rlen_, limits, head, fields, err);
    if (st == Status::error)
        return reject(err.status, err.reason);
    if (st == Status::incomplete) {
        if (rlen_ == rcap_ && !grow_read_buffer())
            return reject(431, "request head larger than the read buffer");
        return;
    }
    start_exchange(head);
}

void Connection::reject(int status, const char* reason) {
    ErrorLog::limited(LogLevel::info, "%d %s, client: %s", status, reason, peer_.text);
    // The head may be half-parsed: answer on a fresh, minimal request and close.
    ex_ = std::make_unique<Exchange>(*this);
    Request& req = ex_->request();
    // The access log shows the raw request line (as NGINX does): empty method, target = line.
    std::string_view line(rbuf_ ? rbuf_ : "", rbuf_ ? rlen_ : 0);
    line = line.substr(0, std::min(line.find_first_of("\r\n"), size_t{512}));
    req.target = req.arena->copy(line);
    ex_->begin_request(11);
    state_ = State::exchange;
    keep_alive_ = false;
    tunnel_ = tunnel_write_shut_ = false;
    body_done_ = true;
    body_received_ = 0;
    rlen_ = 0; // nothing after a malformed head can be trusted
    set_io(0);
    in_dispatch_ = true;
    send_error(req, *ex_, status, {});
    in_dispatch_ = false;
    if (flush_pending_)
        flush();
}

void Connection::start_exchange(const RequestHead& head) {
    const HttpConfig& http = worker_.config().http;
    state_ = State::exchange;
    ++requests_;
    Request& req = ex_->request();
    req.method = head.method;
    req.method_id = method_from(head.method);
    req.scheme = "http";
    req.target = head.target;
    req.path = head.path;
    req.query = head.query;
    req.authority = head.authority;
    // RFC 9110 §7.8: a request with a body must be read whole before a switch; tunnels are
    // offered only to requests without one (WebSocket handshakes have none).
    req.upgrade =
        head.upgrade && (head.framing == BodyFraming::none ||
                         (head.framing == BodyFraming::content_length && head.content_length == 0))
            ? req.headers.get("upgrade")
            : std::string_view{};

    // Host without port, lower-case (the buffer is ours to edit).
    std::string_view host = head.authority;
    if (!host.empty() && host.front() == '[') {
        size_t close = host.find(']');
        host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
    } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
        host = host.substr(0, colon);
    }
    char* host_bytes = const_cast<char*>(host.data()); // points into rbuf_
    for (size_t i = 0; i < host.size(); ++i)
        if (host_bytes[i] >= 'A' && host_bytes[i] <= 'Z')
            host_bytes[i] = static_cast<char>(host_bytes[i] + 32);
    req.host = host;

    keep_alive_ = head.keep_alive && !draining_ && !worker_.draining() &&
                  requests_ < http.keepalive_requests;
    tunnel_ = tunnel_write_shut_ = false;
    body_received_ = 0;

    // Body framing.
    head_end_ = head.head_size;
    bdata_ = bdata_end_ = braw_ = head_end_;
    framing_ = head.framing;
    body_failed_ = body_paused_ = body_discarding_ = false;
    expect_continue_ = head.expect_continue;
    continue_sent_ = false;
    switch (framing_) {
    case BodyFraming::none:
        body_done_ = true;
        req.content_length = -1;
        req.has_body = false;
        break;
    case BodyFraming::content_length:
        body_left_ = head.content_length;
        body_done_ = body_left_ == 0;
        req.content_length = static_cast<int64_t>(head.content_length);
        req.has_body = body_left_ > 0;
        break;
    case BodyFraming::chunked:
        body_done_ = false;
        req.content_length = -1;
        req.has_body = true;
        break;
    }
    ex_->begin_request(head.version_minor == 0 ? 10 : 11);
    ev_timer_stop(worker_.loop(), &timer_);

    in_dispatch_ = true;
    if (framing_ == BodyFraming::content_length && head.content_length > http.client_max_body_size) {
        keep_alive_ = false;
        body_done_ = true; // never read it
        send_error(req, *ex_, 413, "request body larger than client_max_body_size");
    } else {
        if (!body_done_)
            decode_body();
        if (state_ == State::exchange) {
            update_read_interest();
            ex_->start(*this, 0, nullptr);
        }
    }
    in_dispatch_ = false;
    if (flush_pending_ && state_ == State::exchange)
        flush();
}

void Connection::response_done() {
    if (!body_done_ && keep_alive_ && !tunnel_) {
        // Read and drop the unread request body to keep the connection; large ones close.
        uint64_t left = framing_ == BodyFraming::content_length ? body_left_ : 0;
        if (left > kMaxDiscard || (expect_continue_ && !continue_sent_))
            keep_alive_ = false;
        else
            discard();
    }
    flush();
}

// ---- tunnels (after 101 Switching Protocols) ----------------------------------------------

void Connection::start_tunnel() {
    tunnel_ = true;
    keep_alive_ = false;
    body_done_ = false;
    body_failed_ = false;
    body_paused_ = false;
    body_discarding_ = false;
    expect_continue_ = false;
    ex_->request().has_body = true;
    // Bytes the client sent right behind its head belong to the tunnel.
    decode_body(false);
    update_read_interest();
}

void Connection::tunnel_client_done() {
    body_done_ = true;
    set_io(io_events_ & ~EV_READ);
    if (ex_->data_cb) {
        Callback cb = ex_->data_cb; // the callback may replace itself
        cb();
    }
    if (state_ == State::exchange)
        maybe_finish_tunnel();
}

void Connection::maybe_finish_tunnel() {
    if (state_ == State::exchange && ex_->ended() && tunnel_write_shut_ && finished())
        worker_.defer(this);
}

void Connection::run_deferred() {
    if (state_ == State::closed) {
        delete this;
        return;
    }
    bool read_pending = read_pending_;
    read_pending_ = false;
    if (read_pending && (state_ == State::idle || state_ == State::head)) {
        // The transport held bytes no socket event announces (TLS read-ahead): go on with
        // the next request head.
        handle_readable();
        return;
    }
    if (state_ != State::exchange)
        return;
    if (read_pending && body_wants_data()) {
        handle_readable();
        if (state_ != State::exchange)
            return;
    }
    if (flush_pending_)
        flush();
    if (state_ != State::exchange)
        return;
    bool all_sent = seg_head_ == segs_.size();
    // A tunnel is over only when both directions are: the handler ended its side (and it is
    // out) and the client's side was read to its end.
    const bool ended = ex_->ended();
    bool over = tunnel_ ? ended && all_sent && tunnel_write_shut_ && finished()
                        : ended && all_sent && (body_done_ || !keep_alive_);
    if (over) {
        complete_exchange();
    } else if (writable_fire_) {
        writable_fire_ = false;
        ex_->fire_writable();
    }
}

void Connection::complete_exchange() {
    ex_->data_cb = nullptr;
    ex_->finish(true, body_received_); // bad requests are logged too, as NGINX does
    ex_.reset(); // its arena (handler state) goes with it
    if (!keep_alive_) {
        begin_close(true);
        return;
    }
    // Keep-alive: shift pipelined bytes to the front and look for the next request.
    size_t next = braw_;
    size_t left = rlen_ > next ? rlen_ - next : 0;
    if (left && next)
        std::memmove(rbuf_, rbuf_ + next, left);
    rlen_ = left;
    head_end_ = bdata_ = bdata_end_ = braw_ = 0;
    if (rlen_ > 0) {
        state_ = State::head;
        scan_pos_ = 0;
        line_seen_ = false;
        arm(worker_.config().http.header_timeout);
        set_io(EV_READ);
        parse_head();
        return;
    }
    state_ = State::idle;
    set_io(EV_READ);
    want_buffered_read(); // a next request the TLS layer already read
    // Nothing buffered: the read and output buffers go back until the next request, so an
    // idle keep-alive connection holds only this object.
    put_read_buffer();
    give_output();
    if (draining_ || worker_.draining()) {
        // The drain began after this response's head promised keep-alive: the client may
        // reuse the connection any moment. Wait the grace period (see kDrainGrace).
        draining_ = true;
        arm(kDrainGrace);
        return;
    }
    arm(worker_.config().http.keepalive_timeout);
}

void Connection::abort_exchange() {
    if (state_ != State::exchange)
        return;
    ex_->data_cb = nullptr;
    state_ = State::closed; // the exchange is freed with the connection (deferred)
    ex_->abort_and_finish(body_received_);
    set_io(0);
    ev_timer_stop(worker_.loop(), &timer_);
    worker_.remove_connection(this);
    worker_.defer(this);
}

void Connection::begin_close(bool lingering) {
    if (state_ == State::closed)
        return;
    if (lingering && fd_ >= 0) {
        // Lingering close: stop sending, read and drop what the client still sends, so our
        // last response is not destroyed by a TCP reset (RFC 9112 §9.6).
        if (!tunnel_write_shut_)
            transport_->shutdown_write();
        state_ = State::lingering;
        set_io(EV_READ);
        arm(kLingerTimeout);
        return;
    }
    destroy();
}

void Connection::destroy() {
    if (state_ == State::closed)
        return;
    if (state_ == State::exchange) {
        abort_exchange();
        return;
    }
    state_ = State::closed;
    set_io(0);
    ev_timer_stop(worker_.loop(), &timer_);
    worker_.remove_connection(this);
    worker_.defer(this);
}

void Connection::drain() {
    draining_ = true;
    // An idle keep-alive connection stays open for the grace period: a request that arrives
    // meanwhile is answered with Connection: close (see kDrainGrace). The rest finish their
    // exchange first and then close, their response saying so.
    if (state_ == State::idle)
        arm(kDrainGrace);
}

void Connection::close_now() {
    if (state_ == State::exchange)
        abort_exchange();
    else
        destroy();
}

} // namespace wraith::http1
