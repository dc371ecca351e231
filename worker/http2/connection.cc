// HTTP/2 connection lifecycle: the session's owner, reading and writing through the
// Transport, timeouts, graceful drain and close. The protocol is the session's
// (session.cc, session_send.cc); streams (the exchanges) are in stream.cc.
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

SessionLimits limits_of(const Worker& worker) {
    const Http2Config& h2 = worker.config().http2;
    SessionLimits l;
    l.max_concurrent_streams = h2.max_concurrent_streams;
    l.initial_window_size = h2.initial_window_size;
    l.connection_window_size = h2.connection_window_size;
    l.max_frame_size = h2.max_frame_size;
    l.max_header_list_size = static_cast<uint32_t>(h2.max_header_list_size);
    l.max_continuations = h2.max_continuations;
    l.rapid_reset_limit = h2.rapid_reset_limit;
    l.rapid_reset_burst = h2.rapid_reset_burst;
    l.control_frame_limit = h2.control_frame_limit;
    return l;
}

} // namespace

Connection::Connection(Worker& worker, std::unique_ptr<Transport> transport,
                       const sockaddr_storage& peer, const ListenConfig& listen,
                       std::string_view already_read)
    : worker_(worker), transport_(std::move(transport)), fd_(transport_->fd()),
      already_read_(already_read), session_(*this, out_, limits_of(worker)) {
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
}

void Connection::start() {
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    session_.start();
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

// ---- session owner -------------------------------------------------------------------------

StreamState* Connection::open_stream(int32_t id) {
    auto* s = new Stream(*this, id);
    link(s);
    first_request_ = true;
    if (++requests_ >= worker_.config().http.keepalive_requests)
        drain(); // served enough on one connection: GOAWAY, as HTTP/1 says close
    return s;
}

void Connection::stream_closed(StreamState*) {
    --open_streams_;
    if (!in_service_)
        worker_.defer(this); // reaped (logged, deleted) from the deferred work
}

void Connection::ping_acked(const uint8_t opaque[8]) {
    if (std::memcmp(opaque, kDrainPing, 8) == 0)
        final_goaway();
}

void Connection::connection_error(uint32_t error, const char* why) {
    terminating_ = true;
    if (error == kEnhanceYourCalm)
        ErrorLog::limited(LogLevel::warn, "http2: %s from client %s; GOAWAY(ENHANCE_YOUR_CALM)",
                          why ? why : "flood", peer_.text);
    else if (why)
        ErrorLog::limited(LogLevel::info, "http2: %s from client %s; closing", why, peer_.text);
    want_flush();
}

// GOAWAY with `error_code`; once it is written the connection closes. Safe anywhere (it only
// queues).
void Connection::terminate(uint32_t error_code) {
    if (terminating_)
        return;
    session_.terminate(error_code);
}

// ---- reading -------------------------------------------------------------------------------

bool Connection::receive(const char* data, size_t len) {
    session_.receive(reinterpret_cast<const uint8_t*>(data), len, ev_now(worker_.loop()));
    return !terminating_ && !closed_;
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
    // The session takes in everything it is given (a split frame is kept by the session), so
    // the buffer is only held for this call.
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
    } else if (out_.pending() == 0 && session_.finished()) {
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
        session_.produce(kOutputHigh);
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
        delete s;           // the arena's cleanups close the handler's files
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
    if (!terminating_ && out_.pending() < kOutputHigh && !session_.finished())
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
        session_.release_idle();
        std::vector<Stream*>().swap(pending_);
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
        terminate(kNoError);
        return service();
    case TimerMode::idle:
        terminate(kNoError);
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
    if (draining_ || closed_ || lingering_ || terminating_)
        return;
    draining_ = true;
    session_.shutdown_notice(kDrainPing);
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
    session_.final_goaway();
    want_flush();
}

void Connection::close_now() {
    if (closed_)
        return;
    if (!lingering_ && !terminating_) {
        // One attempt to tell the client; we do not wait for it.
        session_.terminate(kNoError);
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
    session_.forget_streams();
    while (Stream* s = streams_) {
        unlink(s);
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
