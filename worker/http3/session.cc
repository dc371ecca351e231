#include "worker/http3/session.h"

#include "common/log.h"
#include "worker/http3/stream.h"
#include "worker/quic/connection.h"
#include "worker/quic/mem.h"
#include "worker/worker.h"

namespace wraith::http3 {

namespace {

Stream* stream_of(void* p) {
    return static_cast<Stream*>(p);
}

} // namespace

std::unique_ptr<quic::Application> Session::create(quic::AppConnection& app_conn) {
    auto& conn = static_cast<quic::Connection&>(app_conn);
    return std::make_unique<Session>(conn);
}

Session::Session(quic::Connection& conn) : conn_(conn) {
    ev_init(&goaway_timer_, on_goaway_timer);
    goaway_timer_.data = this;
    ev_init(&body_timer_, on_body_timer);
    body_timer_.data = this;
}

Session::~Session() {
    ev_timer_stop(worker().loop(), &goaway_timer_);
    ev_timer_stop(worker().loop(), &body_timer_);
    while (Stream* s = streams_) {
        streams_ = s->next_;
        delete s;
    }
    if (http_)
        nghttp3_conn_del(http_);
}

int Session::fail(int liberr) {
    conn_.set_application_error(nghttp3_err_infer_quic_app_error_code(liberr));
    return -1;
}

// ---- setup ---------------------------------------------------------------------------------

bool Session::start() {
    if (http_)
        return true;
    // RFC 9114 §6.2: our control stream and the two QPACK streams (RFC 9204 §4.2).
    if (conn_.streams_uni_left() < 3)
        return false;
    const Http3Config& cfg = worker().config().http3;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = cfg.qpack_table_size;
    settings.qpack_blocked_streams = cfg.qpack_blocked_streams;
    settings.max_field_section_size = worker().config().http.max_header_size;
    settings.enable_connect_protocol = 1; // RFC 9220: WebSockets over HTTP/3
    if (int rv = nghttp3_conn_server_new(&http_, callbacks(), &settings, quic::http3_mem(), this);
        rv != 0) {
        WLOG_ERROR("http3: nghttp3_conn_server_new: %s", nghttp3_strerror(rv));
        return false;
    }
    nghttp3_conn_set_max_client_streams_bidi(http_, conn_.local_max_streams_bidi());
    int64_t control = -1, enc = -1, dec = -1;
    if (!conn_.open_uni_stream(&control) || nghttp3_conn_bind_control_stream(http_, control) != 0 ||
        !conn_.open_uni_stream(&enc) || !conn_.open_uni_stream(&dec) ||
        nghttp3_conn_bind_qpack_streams(http_, enc, dec) != 0) {
        WLOG_ERROR("http3: cannot open the control and QPACK streams");
        return false;
    }
    return true;
}

// ---- stream events from the transport ------------------------------------------------------

int Session::recv_stream_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin,
                              size_t* credit) {
    nghttp3_ssize n = nghttp3_conn_read_stream(http_, stream_id, data, len, fin);
    // nghttp3 (0.8, still 1.8) calls a frame type cut short by the end of a request stream a
    // general protocol error; RFC 9114 §7.1 makes a truncated frame H3_FRAME_ERROR.
    if (n == NGHTTP3_ERR_H3_GENERAL_PROTOCOL_ERROR && fin && ngtcp2_is_bidi_stream(stream_id))
        n = NGHTTP3_ERR_H3_FRAME_ERROR;
    if (n < 0) {
        ErrorLog::limited(LogLevel::info, "http3: bad input from %.*s: %s",
                          (int)info().peer_text.size(), info().peer_text.data(),
                          nghttp3_strerror(static_cast<int>(n)));
        return fail(static_cast<int>(n));
    }
    // Framing and QPACK bytes are consumed at once; body bytes when the handler takes them.
    *credit = static_cast<size_t>(n);
    return 0;
}

int Session::acked_stream_data(int64_t stream_id, uint64_t len) {
    return nghttp3_conn_add_ack_offset(http_, stream_id, len);
}

void Session::stream_open(int64_t stream_id) {
    if (ngtcp2_is_bidi_stream(stream_id) && final_goaway_) {
        // Past our GOAWAY: refuse it (RFC 9114 §5.2); the client retries elsewhere.
        conn_.reset_stream(stream_id, NGHTTP3_H3_REQUEST_REJECTED);
    }
}

int Session::stream_close(int64_t stream_id, uint64_t app_error_code) {
    int rv = nghttp3_conn_close_stream(http_, stream_id, app_error_code);
    if (rv != 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND)
        return fail(rv);
    if (ngtcp2_is_bidi_stream(stream_id))
        conn_.extend_max_streams_bidi(1);
    return 0;
}

int Session::stream_reset(int64_t stream_id, uint64_t) {
    return nghttp3_conn_shutdown_stream_read(http_, stream_id);
}

int Session::stream_stop_sending(int64_t stream_id, uint64_t) {
    return nghttp3_conn_shutdown_stream_read(http_, stream_id);
}

void Session::extend_max_remote_streams_bidi(uint64_t max_streams) {
    nghttp3_conn_set_max_client_streams_bidi(http_, max_streams);
}

int Session::extend_max_stream_data(int64_t stream_id) {
    return nghttp3_conn_unblock_stream(http_, stream_id);
}

// ---- sending -------------------------------------------------------------------------------

int Session::next_data(int64_t* stream_id, bool* fin, ngtcp2_vec* vec, size_t veccnt) {
    static_assert(sizeof(ngtcp2_vec) == sizeof(nghttp3_vec));
    int end = 0;
    nghttp3_ssize n = nghttp3_conn_writev_stream(http_, stream_id, &end,
                                                 reinterpret_cast<nghttp3_vec*>(vec), veccnt);
    if (n < 0)
        return fail(static_cast<int>(n));
    *fin = end != 0;
    return static_cast<int>(n);
}

int Session::data_sent(int64_t stream_id, size_t n) {
    if (int rv = nghttp3_conn_add_write_offset(http_, stream_id, n); rv != 0)
        return fail(rv);
    return 0;
}

void Session::stream_blocked(int64_t stream_id) {
    nghttp3_conn_block_stream(http_, stream_id);
}

void Session::stream_write_shut(int64_t stream_id) {
    nghttp3_conn_shutdown_stream_write(http_, stream_id);
}

// ---- the service pass ----------------------------------------------------------------------

void Session::schedule(Stream* s) {
    if (!s->queued_) {
        s->queued_ = true;
        pending_.push_back(s);
    }
    conn_.wake();
}

void Session::run_pending() {
    // Two vectors trade places so neither gives up its capacity.
    working_.swap(pending_);
    for (Stream* s : working_) {
        s->queued_ = false;
        s->run_pending();
    }
    working_.clear();
}

void Session::after_service() {
    reap_streams();
    update_body_timer();
    maybe_finish_drain();
}

void Session::update_body_timer() {
    bool waiting = false;
    for (Stream* s = streams_; s && !waiting; s = s->next_)
        waiting = s->waiting_for_body();
    const bool seen = body_seen_;
    body_seen_ = false;
    if (!waiting) {
        ev_timer_stop(worker().loop(), &body_timer_);
        return;
    }
    if (ev_is_active(&body_timer_) && !seen)
        return; // still waiting since the timer started: it runs on
    Duration d = worker().config().http.body_timeout;
    ev_timer_stop(worker().loop(), &body_timer_);
    if (d.count() > 0) {
        ev_timer_set(&body_timer_, d.count() / 1000.0, 0.);
        ev_timer_start(worker().loop(), &body_timer_);
    }
}

void Session::on_body_timer(struct ev_loop*, ev_timer* w, int) {
    auto* session = static_cast<Session*>(w->data);
    for (Stream* s = session->streams_; s; s = s->next_)
        if (s->waiting_for_body())
            s->on_body_timeout(); // 408, or a reset once the response started
    session->want_write();
}

void Session::reap_streams() {
    for (Stream* s : closed_streams_) {
        s->finish_stream(); // abort callbacks, log phase, access log
        if (s->prev_)
            s->prev_->next_ = s->next_;
        else
            streams_ = s->next_;
        if (s->next_)
            s->next_->prev_ = s->prev_;
        delete s;
    }
    closed_streams_.clear();
}

void Session::abort() {
    ev_timer_stop(worker().loop(), &goaway_timer_);
    ev_timer_stop(worker().loop(), &body_timer_);
    // Streams still open end now: handlers see an abort, logs a 499.
    for (Stream* s = streams_; s; s = s->next_)
        if (!s->closed())
            s->on_closed();
    for (Stream* s = streams_; s; s = s->next_)
        s->finish_stream();
}

// ---- for streams ---------------------------------------------------------------------------

void Session::want_write() {
    conn_.want_write();
}

void Session::consumed(int64_t stream_id, size_t n) {
    conn_.consumed(stream_id, n);
}

void Session::reset_stream(int64_t stream_id, uint64_t app_error_code) {
    conn_.reset_stream(stream_id, app_error_code);
}

bool Session::early_data_allowed() const {
    return conn_.early_data_allowed();
}

// ---- drain ---------------------------------------------------------------------------------

void Session::drain() {
    if (draining_)
        return;
    draining_ = true;
    start_goaway();
}

void Session::start_goaway() {
    // RFC 9114 §5.2, in two steps as for HTTP/2: a GOAWAY that announces the end but refuses
    // nothing, then (two PTOs later, when requests already on the wire arrived) the GOAWAY with
    // the first stream id we will not serve; streams below it finish.
    nghttp3_conn_submit_shutdown_notice(http_);
    want_write();
    double pto = static_cast<double>(conn_.pto()) / NGTCP2_SECONDS;
    ev_timer_set(&goaway_timer_, std::max(0.05, 2 * pto), 0.);
    ev_timer_start(worker().loop(), &goaway_timer_);
}

void Session::on_goaway_timer(struct ev_loop*, ev_timer* w, int) {
    auto* s = static_cast<Session*>(w->data);
    if (s->conn_.closing())
        return;
    if (s->final_goaway_) {
        // The quiet period of maybe_finish_drain() is over.
        s->close_when_idle_ = true;
        s->maybe_finish_drain();
        return;
    }
    s->final_goaway_ = true;
    nghttp3_conn_shutdown(s->http_);
    s->want_write();
    s->maybe_finish_drain();
}

void Session::maybe_finish_drain() {
    if (!draining_ || !final_goaway_ || conn_.closing())
        return;
    if (streams_ != nullptr) {
        // A stream below the GOAWAY id still arrived: the quiet period starts again after it.
        close_when_idle_ = false;
        ev_timer_stop(worker().loop(), &goaway_timer_);
        return;
    }
    if (close_when_idle_) {
        conn_.close_application(NGHTTP3_H3_NO_ERROR);
        return;
    }
    // The last stream just ended, its final bytes from the client (the FIN closing a tunnel)
    // perhaps not acknowledged yet: ngtcp2 delays that ACK (RFC 9000 §13.2.1), and
    // CONNECTION_CLOSE carries none, so closing now would cut the client's stream short on its
    // side. Our ACK delay plus one PTO lets the ACK go out and reach the client first; a client
    // done with the connection usually closes it itself in that time.
    if (!ev_is_active(&goaway_timer_)) {
        const ngtcp2_duration wait = conn_.local_max_ack_delay() + conn_.pto();
        ev_timer_set(&goaway_timer_, static_cast<double>(wait) / NGTCP2_SECONDS, 0.);
        ev_timer_start(worker().loop(), &goaway_timer_);
    }
}

// ---- nghttp3 callbacks ---------------------------------------------------------------------

int Session::h3_acked_stream_data(nghttp3_conn*, int64_t, uint64_t len, void*, void* stream_user) {
    if (Stream* s = stream_of(stream_user))
        s->on_acked(len);
    return 0;
}

int Session::h3_stream_close(nghttp3_conn*, int64_t, uint64_t, void* user, void* stream_user) {
    auto* session = static_cast<Session*>(user);
    if (Stream* s = stream_of(stream_user)) {
        s->on_closed();
        session->closed_streams_.push_back(s);
        session->conn_.wake();
    }
    return 0;
}

int Session::h3_recv_data(nghttp3_conn*, int64_t, const uint8_t* data, size_t len, void* user,
                          void* stream_user) {
    if (Stream* s = stream_of(stream_user)) {
        static_cast<Session*>(user)->body_seen_ = true;
        s->on_body(data, len);
    }
    return 0;
}

int Session::h3_deferred_consume(nghttp3_conn*, int64_t stream_id, size_t consumed, void* user,
                                 void*) {
    static_cast<Session*>(user)->conn_.consumed(stream_id, consumed);
    return 0;
}

int Session::h3_begin_headers(nghttp3_conn* h3, int64_t stream_id, void* user, void*) {
    auto* session = static_cast<Session*>(user);
    auto* s = new Stream(*session, stream_id);
    s->next_ = session->streams_;
    if (session->streams_)
        session->streams_->prev_ = s;
    session->streams_ = s;
    nghttp3_conn_set_stream_user_data(h3, stream_id, s);
    return 0;
}

int Session::h3_recv_header(nghttp3_conn*, int64_t, int32_t token, nghttp3_rcbuf* name,
                            nghttp3_rcbuf* value, uint8_t, void*, void* stream_user) {
    if (Stream* s = stream_of(stream_user)) {
        nghttp3_vec n = nghttp3_rcbuf_get_buf(name);
        nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
        s->on_header(token, {reinterpret_cast<const char*>(n.base), n.len},
                     {reinterpret_cast<const char*>(v.base), v.len},
                     nghttp3_rcbuf_is_static(name) != 0);
    }
    return 0;
}

int Session::h3_end_headers(nghttp3_conn*, int64_t, int fin, void* user, void* stream_user) {
    auto* session = static_cast<Session*>(user);
    if (Stream* s = stream_of(stream_user))
        s->on_head_complete(fin != 0, !session->conn_.handshake_done());
    return 0;
}

int Session::h3_end_stream(nghttp3_conn*, int64_t, void*, void* stream_user) {
    if (Stream* s = stream_of(stream_user))
        s->on_body_end();
    return 0;
}

int Session::h3_stop_sending(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code, void* user,
                             void*) {
    static_cast<Session*>(user)->conn_.shutdown_stream_read(stream_id, app_error_code);
    return 0;
}

int Session::h3_reset_stream(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code, void* user,
                             void* stream_user) {
    // nghttp3 wants the stream reset with this code: the peer stopped reading (STOP_SENDING)
    // or the request was malformed (H3_MESSAGE_ERROR, RFC 9114 §4.1.2).
    auto* session = static_cast<Session*>(user);
    if (Stream* s = stream_of(stream_user))
        s->reset_with(app_error_code);
    else
        session->conn_.shutdown_stream_write(stream_id, app_error_code);
    return 0;
}

const nghttp3_callbacks* Session::callbacks() {
    static const nghttp3_callbacks cb = [] {
        nghttp3_callbacks c{};
        c.acked_stream_data = h3_acked_stream_data;
        c.stream_close = h3_stream_close;
        c.recv_data = h3_recv_data;
        c.deferred_consume = h3_deferred_consume;
        c.begin_headers = h3_begin_headers;
        c.recv_header = h3_recv_header;
        c.end_headers = h3_end_headers;
        c.stop_sending = h3_stop_sending;
        c.end_stream = h3_end_stream;
        c.reset_stream = h3_reset_stream;
        return c;
    }();
    return &cb;
}

} // namespace wraith::http3
