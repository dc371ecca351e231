// HTTP/2 connection lifecycle: the nghttp2 session and its callbacks, reading and writing
// through the Transport, flood limits, timeouts, graceful drain and close. Streams (the
// exchanges) are in stream.cc.
#include "worker/http2/connection.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/log.h"
#include "worker/http2/stream.h"
#include "worker/peer.h"
#include "worker/worker.h"

namespace wraith::http2 {

namespace {

constexpr Duration kLingerTimeout{2000};
constexpr double kDrainPingWait = 2.0; // seconds to wait for the drain PING's ack
constexpr uint8_t kDrainPing[8] = {'w', 'r', 'a', 'i', 't', 'h', 'd', 'r'};

Stream* stream_of(nghttp2_session* session, int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
}

} // namespace

Connection::Connection(Worker& worker, std::unique_ptr<Transport> transport,
                       const sockaddr_storage& peer, const ListenConfig& listen,
                       std::string_view already_read)
    : worker_(worker), transport_(std::move(transport)), fd_(transport_->fd()),
      already_read_(already_read) {
    peer_.init(peer, *transport_, worker.next_connection_id());
    peer_.info.site = listen.site;
    peer_.info.alt_svc = worker.alt_svc(listen);
    io_init(io_, on_io, this);
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_init(&drain_timer_, on_drain_timer);
    drain_timer_.data = this;
}

Connection::~Connection() {
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
    ev_timer_stop(worker_.loop(), &drain_timer_);
    close_streams(); // normally done by destroy()
    if (session_)
        nghttp2_session_del(session_); // calls no callbacks
}

// ---- session -------------------------------------------------------------------------------

const nghttp2_session_callbacks* Connection::callbacks() {
    static nghttp2_session_callbacks* cbs = [] {
        nghttp2_session_callbacks* c = nullptr;
        if (nghttp2_session_callbacks_new(&c) != 0)
            return c;
        nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(c, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
        nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
        nghttp2_session_callbacks_set_send_data_callback(c, on_send_data);
        return c;
    }();
    return cbs;
}

bool Connection::create_session() {
    const Http2Config& h2 = worker_.config().http2;
    if (!callbacks())
        return false;
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0)
        return false;
    // Window credit returns when a handler consumes body bytes, not when they arrive.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_settings(opt, 16);       // entries in one SETTINGS frame
    nghttp2_option_set_max_outbound_ack(opt, 1000); // unsent PING/SETTINGS ACKs: flood
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_option_set_max_continuations(opt, h2.max_continuations);
    // A backstop: our own counter (on_frame_recv) answers first, with ENHANCE_YOUR_CALM.
    nghttp2_option_set_stream_reset_rate_limit(opt, 2ull * h2.rapid_reset_burst,
                                               2ull * h2.rapid_reset_limit);
    int rv = nghttp2_session_server_new3(&session_, callbacks(), this, opt, memory_.mem());
    nghttp2_option_del(opt);
    if (rv != 0) {
        session_ = nullptr;
        return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h2.initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, h2.max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(h2.max_header_list_size)},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096},    // bounds the HPACK decoder's memory
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},   // RFC 9218 scheduling, no priority tree
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}, // RFC 8441: WebSockets over HTTP/2
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    // The connection window (RFC 9113 §6.9.2) is not a SETTINGS value: WINDOW_UPDATE on 0.
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(h2.connection_window_size));
    return true;
}

void Connection::start() {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!create_session()) {
        WLOG_ERROR("http2: cannot create a session for %s", peer_.text);
        destroy();
        return;
    }
    arm(TimerMode::header, worker_.config().http.header_timeout);
    if (!already_read_.empty()) {
        std::string input;
        input.swap(already_read_);
        receive(input.data(), input.size());
        if (closed_)
            return;
    }
    if (worker_.draining())
        drain();
    service();
    if (!closed_ && !lingering_ && transport_->buffered() > 0)
        handle_readable(); // TLS records already decrypted
}

// ---- nghttp2 callbacks ---------------------------------------------------------------------

int Connection::on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame,
                                 void* user_data) {
    auto* self = static_cast<Connection*>(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    auto* s = new Stream(*self, frame->hd.stream_id);
    self->link(s);
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
    self->first_request_ = true;
    if (++self->requests_ >= self->worker_.config().http.keepalive_requests)
        self->drain(); // served enough on one connection: GOAWAY, as HTTP/1 says close
    return 0;
}

int Connection::on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    Stream* s = stream_of(session, frame->hd.stream_id);
    if (!s)
        return 0;
    bool ok = s->on_header({reinterpret_cast<const char*>(name), namelen},
                           {reinterpret_cast<const char*>(value), valuelen},
                           frame->headers.cat == NGHTTP2_HCAT_HEADERS);
    return ok ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; // RST_STREAM for this stream only
}

int Connection::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame,
                              void* user_data) {
    auto* self = static_cast<Connection*>(user_data);
    const Http2Config& h2 = self->worker_.config().http2;
    const bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (Stream* s = stream_of(session, frame->hd.stream_id)) {
            if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
                s->on_head_complete(end_stream);
            else if (end_stream)
                s->on_body_end(); // trailers end the body
        }
        break;
    case NGHTTP2_DATA:
        // CVE-2019-9518: empty DATA frames cost us work and the client nothing.
        if (frame->hd.length == 0 && !end_stream &&
            !self->take_token(self->control_tokens_, self->control_stamp_, h2.control_frame_limit,
                              h2.control_frame_limit))
            self->enhance_your_calm("empty DATA frame flood");
        if (end_stream)
            if (Stream* s = stream_of(session, frame->hd.stream_id))
                s->on_body_end();
        break;
    case NGHTTP2_RST_STREAM:
        // CVE-2023-44487: opening and resetting streams makes us start work for nothing.
        if (!self->take_token(self->reset_tokens_, self->reset_stamp_, h2.rapid_reset_limit,
                              h2.rapid_reset_burst))
            self->enhance_your_calm("RST_STREAM flood (rapid reset)");
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            if (std::memcmp(frame->ping.opaque_data, kDrainPing, 8) == 0)
                self->final_goaway();
        } else if (!self->take_token(self->control_tokens_, self->control_stamp_,
                                     h2.control_frame_limit, h2.control_frame_limit)) {
            self->enhance_your_calm("PING flood");
        }
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PRIORITY:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
            !self->take_token(self->control_tokens_, self->control_stamp_, h2.control_frame_limit,
                              h2.control_frame_limit))
            self->enhance_your_calm(frame->hd.type == NGHTTP2_SETTINGS ? "SETTINGS flood"
                                                                       : "PRIORITY flood");
        break;
    default:
        break;
    }
    return 0;
}

int Connection::on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                              const uint8_t* data, size_t len, void*) {
    if (Stream* s = stream_of(session, stream_id)) {
        s->on_body(data, len);
    } else if (nghttp2_session_consume(session, stream_id, len) != 0) {
        nghttp2_session_consume_connection(session, len);
    }
    return 0;
}

int Connection::on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                                void* user_data) {
    auto* self = static_cast<Connection*>(user_data);
    Stream* s = stream_of(session, stream_id);
    if (!s)
        return 0;
    s->on_closed(error_code);
    --self->open_streams_;
    if (!self->in_service_)
        self->worker_.defer(self); // reaped (logged, deleted) from the deferred work
    return 0;
}

int Connection::on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        if (Stream* s = stream_of(session, frame->hd.stream_id))
            s->on_end_stream_sent();
    return 0;
}

int Connection::on_send_data(nghttp2_session*, nghttp2_frame*, const uint8_t* framehd,
                             size_t length, nghttp2_data_source* source, void* user_data) {
    auto* self = static_cast<Connection*>(user_data);
    return static_cast<Stream*>(source->ptr)->write_data(self->out_, framehd, length);
}

// ---- flood limits --------------------------------------------------------------------------

// A token bucket: `burst` tokens, refilled at `rate` per second of loop time.
bool Connection::take_token(double& tokens, double& stamp, uint32_t rate, uint32_t burst) {
    double now = ev_now(worker_.loop());
    if (stamp == 0) {
        tokens = burst;
        stamp = now;
    }
    tokens = std::min<double>(burst, tokens + (now - stamp) * rate);
    stamp = now;
    if (tokens < 1)
        return false;
    tokens -= 1;
    return true;
}

void Connection::enhance_your_calm(const char* what) {
    if (terminating_)
        return;
    ErrorLog::limited(LogLevel::warn, "http2: %s from client %s; GOAWAY(ENHANCE_YOUR_CALM)", what,
                      peer_.text);
    terminate(NGHTTP2_ENHANCE_YOUR_CALM);
}

// GOAWAY with `error_code`; after it is sent nghttp2 wants neither read nor write, and the
// connection closes. Safe inside callbacks (it only queues).
void Connection::terminate(uint32_t error_code) {
    if (terminating_ || !session_)
        return;
    terminating_ = true;
    nghttp2_session_terminate_session(session_, error_code);
    want_flush();
}

// ---- reading -------------------------------------------------------------------------------

bool Connection::receive(const char* data, size_t len) {
    ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), len);
    if (rv >= 0)
        return !terminating_ && !closed_;
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        ErrorLog::limited(LogLevel::info, "http2: client %s sent no connection preface",
                          peer_.text);
        destroy();
        return false;
    }
    uint32_t code = NGHTTP2_PROTOCOL_ERROR;
    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
        code = NGHTTP2_ENHANCE_YOUR_CALM;
    ErrorLog::limited(LogLevel::info, "http2: %s from client %s; closing", nghttp2_strerror(rv),
                      peer_.text);
    terminate(code);
    return false;
}

void Connection::handle_readable() {
    if (lingering_) {
        char sink[4096];
        ssize_t n = transport_->read(sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            destroy();
        return;
    }
    if (terminating_)
        return;
    // nghttp2 takes in everything it is given, so the buffer is only held for this call.
    BufferPool& pool = worker_.read_buffers();
    char* buf = pool.get();
    if (!buf) {
        destroy();
        return;
    }
    const size_t cap = pool.buffer_size();
    bool eof = false;
    for (int i = 0; i < kReadsPerEvent; ++i) {
        ssize_t n = transport_->read(buf, cap);
        if (n > 0) {
            if (!receive(buf, static_cast<size_t>(n)))
                break;
            if (static_cast<size_t>(n) < cap && transport_->buffered() == 0)
                break;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        eof = true; // the peer closed, or an error: nothing more can be sent either
        break;
    }
    pool.put(buf);
    if (eof) {
        destroy();
        return;
    }
    if (timer_mode_ == TimerMode::body)
        arm(TimerMode::body, worker_.config().http.body_timeout); // the client is alive
    service();
}

// ---- sending and housekeeping --------------------------------------------------------------

void Connection::schedule(Stream* s) {
    if (closed_ || lingering_)
        return;
    if (!s->queued_) {
        s->queued_ = true;
        pending_.push_back(s);
    }
    if (!in_service_)
        worker_.defer(this);
}

void Connection::want_flush() {
    flush_pending_ = true;
    if (!in_service_ && !closed_)
        worker_.defer(this);
}

void Connection::service() {
    if (closed_ || lingering_ || in_service_)
        return;
    in_service_ = true;
    for (int round = 0; round < 16; ++round) {
        run_pending();
        if (closed_)
            break;
        flush();
        if (closed_ || lingering_)
            break;
        reap_closed();
        if (pending_.empty() && !flush_pending_)
            break;
    }
    in_service_ = false;
    if (closed_ || lingering_)
        return;
    if (!pending_.empty() || flush_pending_) {
        worker_.defer(this); // a busy round: let the loop breathe, then continue
    } else if (out_.pending() == 0 && !nghttp2_session_want_read(session_) &&
               !nghttp2_session_want_write(session_)) {
        begin_close(); // GOAWAY out and no streams left (RFC 9113 §6.8)
        return;
    }
    update_io();
    update_timer();
}

void Connection::run_pending() {
    // Only the batch present now: a stream queuing itself again runs next round.
    size_t n = pending_.size();
    for (size_t i = 0; i < n; ++i) {
        Stream* s = pending_[i];
        s->queued_ = false;
        s->run_pending();
        if (closed_)
            return;
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(n));
}

void Connection::flush() {
    flush_pending_ = false;
    if (closed_ || lingering_)
        return;
    for (;;) {
        while (out_.pending() < kOutputHigh) {
            const uint8_t* data = nullptr;
            ssize_t n = nghttp2_session_mem_send(session_, &data);
            if (n < 0) {
                ErrorLog::limited(LogLevel::info, "http2: %s with client %s; closing",
                                  nghttp2_strerror(static_cast<int>(n)), peer_.text);
                destroy();
                return;
            }
            if (n == 0)
                break;
            out_.append(data, static_cast<size_t>(n));
        }
        if (out_.pending() == 0)
            break;
        iovec iov{const_cast<char*>(out_.data()), out_.pending()};
        ssize_t w = transport_->write(&iov, 1, false);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!write_blocked_ || timer_mode_ != TimerMode::send)
                    arm(TimerMode::send, worker_.config().http.send_timeout);
                write_blocked_ = true;
                return;
            }
            destroy(); // EPIPE, ECONNRESET: the client is gone
            return;
        }
        out_.consume(static_cast<size_t>(w));
        if (write_blocked_)
            arm(TimerMode::send, worker_.config().http.send_timeout); // progress
    }
    write_blocked_ = false;
}

void Connection::reap_closed() {
    for (Stream *s = streams_, *next; s; s = next) {
        next = s->next_;
        if (!s->closed())
            continue;
        if (s->queued_) {
            std::erase(pending_, s);
            s->queued_ = false;
        }
        unlink(s);
        s->finish_stream(); // abort callbacks, log phase, access log
        delete s;    // the arena's cleanups close the handler's files
        if (closed_)
            return;
    }
}

void Connection::set_io_events(int events) {
    if (events == io_events_)
        return;
    io_events_ = events;
    io_set(worker_.loop(), io_, fd_, events);
}

void Connection::update_io() {
    int events = 0;
    // Not reading while our output is backed up: a client that does not read gets nothing
    // more parsed (and its PINGs unanswered) until it does.
    if (!terminating_ && out_.pending() < kOutputHigh && nghttp2_session_want_read(session_))
        events |= EV_READ;
    if (write_blocked_)
        events |= EV_WRITE | transport_->wait_events(false);
    set_io_events(events);
}

void Connection::arm(TimerMode mode, Duration d) {
    ev_timer_stop(worker_.loop(), &timer_);
    timer_mode_ = mode;
    if (mode != TimerMode::none && d.count() > 0) {
        ev_timer_set(&timer_, d.count() / 1000.0, 0.);
        ev_timer_start(worker_.loop(), &timer_);
    }
}

void Connection::update_timer() {
    const HttpConfig& http = worker_.config().http;
    if (write_blocked_) {
        if (timer_mode_ != TimerMode::send)
            arm(TimerMode::send, http.send_timeout);
    } else if (streams_) {
        // A stream waiting for request body bytes gets http.body_timeout (restarted by every
        // read); otherwise the handlers own the timing (upstream timeouts).
        bool waiting = false;
        for (Stream* s = streams_; s && !waiting; s = s->next_)
            waiting = s->waiting_for_body();
        if (waiting && timer_mode_ != TimerMode::body)
            arm(TimerMode::body, http.body_timeout);
        else if (!waiting && timer_mode_ != TimerMode::none)
            arm(TimerMode::none, {});
    } else if (!first_request_) {
        if (timer_mode_ != TimerMode::header)
            arm(TimerMode::header, http.header_timeout);
    } else if (timer_mode_ != TimerMode::idle) {
        arm(TimerMode::idle, http.keepalive_timeout);
        out_.release(); // an idle connection keeps no output memory
        memory_.release_idle();
    }
}

void Connection::on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* c = static_cast<Connection*>(w->data);
    if (revents & EV_WRITE)
        c->service();
    if ((revents & EV_READ) && !c->closed_)
        c->handle_readable();
}

void Connection::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<Connection*>(w->data)->handle_timeout();
}

void Connection::handle_timeout() {
    TimerMode mode = timer_mode_;
    timer_mode_ = TimerMode::none;
    switch (mode) {
    case TimerMode::header:
        ErrorLog::limited(LogLevel::info, "http2: client %s sent no request in time", peer_.text);
        terminate(NGHTTP2_NO_ERROR);
        return service();
    case TimerMode::idle:
        terminate(NGHTTP2_NO_ERROR);
        return service();
    case TimerMode::send:
        ErrorLog::limited(LogLevel::info, "http2: client %s timed out reading the response",
                          peer_.text);
        return destroy();
    case TimerMode::body:
        for (Stream* s = streams_; s; s = s->next_)
            if (s->waiting_for_body())
                s->on_body_timeout();
        return service();
    case TimerMode::linger:
    case TimerMode::none:
        return destroy();
    }
}

// ---- drain and close -----------------------------------------------------------------------

// RFC 9113 §6.8 graceful shutdown: a GOAWAY with the maximum stream id warns the client, a
// PING round trip makes sure every stream it opened before seeing it has arrived, then the
// real GOAWAY names the last stream we will serve.
void Connection::drain() {
    if (draining_ || closed_ || lingering_ || !session_)
        return;
    draining_ = true;
    nghttp2_submit_shutdown_notice(session_);
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, kDrainPing);
    ev_timer_set(&drain_timer_, kDrainPingWait, 0.);
    ev_timer_start(worker_.loop(), &drain_timer_);
    want_flush();
}

void Connection::on_drain_timer(struct ev_loop*, ev_timer* w, int) {
    auto* c = static_cast<Connection*>(w->data);
    c->final_goaway();
    c->service();
}

void Connection::final_goaway() {
    if (final_goaway_ || terminating_ || closed_ || lingering_)
        return;
    final_goaway_ = true;
    ev_timer_stop(worker_.loop(), &drain_timer_);
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                          nullptr, 0);
    want_flush();
}

void Connection::close_now() {
    if (closed_)
        return;
    if (session_ && !lingering_ && !terminating_) {
        // One attempt to tell the client; we do not wait for it.
        terminating_ = true;
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        flush();
    }
    destroy();
}

// Everything is said: stop sending, read and drop until the client closes, so a last frame is
// not lost to a TCP reset (as HTTP/1's lingering close).
void Connection::begin_close() {
    if (closed_ || lingering_)
        return;
    close_streams();
    lingering_ = true;
    transport_->shutdown_write();
    set_io_events(EV_READ);
    arm(TimerMode::linger, kLingerTimeout);
    ev_timer_stop(worker_.loop(), &drain_timer_);
}

void Connection::close_streams() {
    pending_.clear();
    while (Stream* s = streams_) {
        unlink(s);
        if (session_)
            nghttp2_session_set_stream_user_data(session_, s->id(), nullptr);
        s->finish_stream();
        delete s;
    }
    pending_.clear(); // abort callbacks may have queued work for streams now gone
}

void Connection::destroy() {
    if (closed_)
        return;
    closed_ = true;
    close_streams();
    set_io_events(0);
    ev_timer_stop(worker_.loop(), &timer_);
    ev_timer_stop(worker_.loop(), &drain_timer_);
    worker_.remove_connection(this);
    worker_.defer(this);
}

void Connection::run_deferred() {
    if (closed_) {
        delete this;
        return;
    }
    service();
}

void Connection::link(Stream* s) {
    s->next_ = streams_;
    if (streams_)
        streams_->prev_ = s;
    streams_ = s;
    ++open_streams_;
}

void Connection::unlink(Stream* s) {
    if (s->prev_)
        s->prev_->next_ = s->next_;
    else
        streams_ = s->next_;
    if (s->next_)
        s->next_->prev_ = s->prev_;
    s->prev_ = s->next_ = nullptr;
    if (!s->closed())
        --open_streams_;
}

} // namespace wraith::http2
