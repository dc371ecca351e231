#include "modules/proxy/h3_upstream.h"

#include <nghttp3/nghttp3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "common/log.h"
#include "common/loop.h"
#include "common/module.h"
#include "modules/proxy/h2_upstream.h"
#include "modules/proxy/health.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/proxy_worker.h"
#include "modules/proxy/upstream_request.h"
#include "modules/proxy/upstream_tls.h"
#include "modules/proxy/upstream_transport.h"

namespace wraith::proxy {

namespace {

nghttp3_nv nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP3_NV_FLAG_NONE};
}

} // namespace

// ---- one request -------------------------------------------------------------------------

H3Exchange::H3Exchange(const ProxyHandler& handler, ProxyWorker& worker, Request& req,
                       BodyReader& body, ResponseWriter& out)
    : handler_(handler), worker_(worker), req_(req), body_(body), out_(out), loop_(req.loop) {
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_init(&total_timer_, on_total_timer);
    total_timer_.data = this;
}

H3Exchange::~H3Exchange() {
    finished_ = true;
    trace_.finish();
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
    if (holding_)
        worker_.pool().release(handler_.upstream(), server_);
}

std::string H3Exchange::describe() const {
    return handler_.upstream().servers[server_].address;
}

void H3Exchange::start() {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = worker_.pool();
    trace_.begin(req_, worker_.metrics(), up);
    pool.count_request(up);
    tried_.assign(up.servers.size(), false);
    out_.on_abort([this] { client_aborted(); });
    if (!req_.upgrade.empty()) {
        if (req_.extended_connect()) {
            finished_ = true;
            body_.discard();
            return send_error(req_, out_, 501,
                              "proxy: WebSockets to an HTTP/3 upstream (\"" + up.name +
                                  "\") are not supported; use protocol = \"http/1.1\"");
        }
        req_.upgrade = {}; // an HTTP/1.1 Upgrade: served as a plain request
    }
    if (up.total_timeout.count() > 0) {
        ev_timer_set(&total_timer_, static_cast<double>(up.total_timeout.count()) / 1000.0, 0.);
        ev_timer_start(loop_, &total_timer_);
    }
    request_id_ = assign_request_id(handler_, req_);
    if (req_.has_body && handler_.options().buffer_request_body) {
        spooling_ = true;
        const char* tmp = std::getenv("TMPDIR");
        spool_ = std::make_unique<BodySpool>(tmp && *tmp == '/' ? tmp : "/tmp");
        body_.on_data([this] { spool_more(); });
        return spool_more();
    }
    if (req_.has_body)
        body_.on_data([this] {
            if (finished_)
                return;
            if (body_.failed())
                return client_aborted();
            if (session_ && stream_ >= 0)
                session_->resume(stream_);
        });
    pick_and_go();
}

void H3Exchange::spool_more() {
    if (finished_)
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
    spooling_ = false;
    pick_and_go();
}

void H3Exchange::pick_and_go(int chosen) {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = worker_.pool();
    int pick = chosen >= 0 ? chosen : pool.pick(up, req_, tried_);
    if (pick < 0) {
        finished_ = true;
        if (!spool_)
            body_.discard();
        ErrorLog::limited(LogLevel::warn, "proxy: upstream \"%s\" has no server available",
                          up.name.c_str());
        return send_error(req_, out_, 503,
                          "proxy: no server of upstream \"" + up.name + "\" is available");
    }
    if (holding_)
        pool.release(up, server_);
    server_ = static_cast<size_t>(pick);
    pool.acquire(up, server_);
    holding_ = true;
    if (up.fallback_h2 && worker_.h3_sessions().udp_blocked(up, server_))
        return fall_back(); // UDP to this server was blocked a moment ago: TCP at once
    trace_.start_try(server_);
    session_ = worker_.h3_sessions().session_for(up, server_);
    session_->add(this);
}

// UDP to the server is blocked (fallback = "h2"): the request starts again as an HTTP/2
// exchange to the same server on TCP. Nothing of it went out over QUIC (no stream opened),
// so it is replayed whole; a spooled body goes with it.
void H3Exchange::fall_back() {
    finished_ = true;
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
    if (holding_) {
        worker_.pool().release(handler_.upstream(), server_);
        holding_ = false;
    }
    req_.arena->make<H2Exchange>(handler_, worker_, req_, body_, out_)
        ->start(std::move(spool_), server_, &trace_);
}

void H3Exchange::session_ready(H3Session& session) {
    if (finished_)
        return;
    session_ = &session;
    trace_.connected(false); // a new session timed itself (H3Session)
    UpstreamRequest r;
    build_upstream_request(handler_, req_, server_, false, r);
    std::vector<nghttp3_nv> nva;
    nva.reserve(r.fields.size() + 6);
    nva.push_back(nv(":method", r.method));
    nva.push_back(nv(":scheme", "https"));
    nva.push_back(nv(":authority", r.host));
    nva.push_back(nv(":path", r.target));
    std::string length;
    if (spool_)
        length = std::to_string(spool_->size());
    else if (req_.has_body && req_.content_length >= 0)
        length = std::to_string(req_.content_length);
    else if (!req_.has_body && req_.content_length == 0)
        length = "0";
    if (!length.empty())
        nva.push_back(nv("content-length", length));
    for (const Header& h : r.fields)
        nva.push_back(nv(h.name, h.value));
    const bool body = spool_ ? spool_->size() > 0 : req_.has_body;
    stream_ = session.submit(this, nva.data(), nva.size(), body);
    if (stream_ < 0) {
        session_ = nullptr;
        return fail(502, "proxy: cannot open a stream to upstream " + describe());
    }
    arm_timer();
}

void H3Exchange::session_failed(const std::string& why, bool udp_blocked, Failure kind) {
    session_ = nullptr;
    stream_ = -1;
    if (finished_)
        return;
    if (why.empty()) {
        // The session stopped taking streams (GOAWAY) before ours opened: another session.
        session_ = worker_.h3_sessions().session_for(handler_.upstream(), server_);
        session_->add(this);
        return;
    }
    if (udp_blocked && handler_.upstream().fallback_h2) {
        worker_.h3_sessions().mark_udp_blocked(handler_.upstream(), server_, why);
        trace_.failed(kind); // the HTTP/2 exchange's try is the next one
        return fall_back();
    }
    if (!retry_elsewhere(why, kind))
        fail(502, "proxy: " + why);
}

void H3Exchange::on_field(std::string_view name, std::string_view value) {
    if (finished_)
        return;
    if (name == ":status") {
        status_ = 0;
        for (char c : value)
            status_ = c >= '0' && c <= '9' && status_ < 1000 ? status_ * 10 + (c - '0') : 1000;
        return;
    }
    if (name.empty() || name.front() == ':')
        return;
    Headers& into = head_done_ ? trailers_ : fields_;
    into.add(req_.arena->copy(name), req_.arena->copy(value));
}

void H3Exchange::on_headers_end(bool end_stream) {
    if (finished_)
        return;
    got_response_ = true;
    if (head_done_)
        return; // trailers: passed on at the end of the stream
    if (status_ < 100 || status_ > 599 || status_ == 101) {
        trace_.failed(Failure::protocol);
        return fail(502, "proxy: upstream " + describe() + " sent an HTTP/3 response with status " +
                             std::to_string(status_));
    }
    if (status_ < 200) { // 1xx: the final response follows
        fields_.clear();
        status_ = 0;
        return;
    }
    trace_.response_head(status_);
    const UpstreamConfig& up = handler_.upstream();
    if (std::find(up.fail_statuses.begin(), up.fail_statuses.end(), status_) !=
        up.fail_statuses.end()) {
        // A failure by configuration: another server if the request can go again, else the
        // answer is passed on.
        const int64_t stream = stream_;
        H3Session* session = session_;
        if (retry_elsewhere("upstream " + describe() + " answered " + std::to_string(status_),
                            Failure::status, true)) {
            if (session && stream >= 0)
                session->cancel(stream);
            return;
        }
    }
    head_done_ = true;
    worker_.health().success(Health::key(handler_.upstream().name, describe()));
    auto* head = req_.arena->make<ResponseHead>();
    head->status = status_;
    build_client_head(handler_, req_, server_,
                      worker_.pool().sticky_id(handler_.upstream(), server_), request_id_, fields_,
                      *head);
    std::string_view length = fields_.get("content-length");
    if (!length.empty() && length.size() <= 18 &&
        std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; }))
        head->content_length = std::stoll(std::string(length));
    if (end_stream)
        trace_.response_end();
    out_.send_headers(*head, end_stream);
    if (end_stream)
        return finish_ok();
    arm_timer();
}

void H3Exchange::on_data(const uint8_t* data, size_t len) {
    if (finished_ || !head_done_) {
        if (session_ && stream_ >= 0)
            session_->consume(stream_, len);
        return;
    }
    auto r = out_.send_body({reinterpret_cast<const char*>(data), len}, false);
    if (r == ResponseWriter::Result::closed)
        return client_aborted();
    if (r == ResponseWriter::Result::blocked) {
        // The client is full: this window's credit waits until it drains (backpressure).
        owed_ += len;
        if (!client_blocked_) {
            client_blocked_ = true;
            out_.on_writable([this] {
                client_blocked_ = false;
                if (session_ && stream_ >= 0 && owed_)
                    session_->consume(stream_, owed_);
                owed_ = 0;
                arm_timer();
            });
        }
    } else {
        session_->consume(stream_, len);
    }
    arm_timer();
}

void H3Exchange::on_stream_end() {
    if (finished_)
        return;
    if (!head_done_) {
        trace_.failed(Failure::protocol);
        return fail(502, "proxy: upstream " + describe() + " ended the stream without a response");
    }
    trace_.response_end();
    Headers* pass = nullptr;
    for (const Header& h : trailers_) {
        if (!trailer_allowed(h.name))
            continue;
        if (!pass)
            pass = req_.arena->make<Headers>();
        pass->add(h.name, h.value);
    }
    if (pass)
        out_.send_trailers(*pass);
    else
        out_.send_body({}, true);
    finish_ok();
}

void H3Exchange::finish_ok() {
    finished_ = true;
    trace_.finish();
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    if (!session_ || stream_ < 0)
        return;
    // The response is whole. A request body sent whole finishes on its own (the session
    // keeps its unacknowledged bytes); one the server did not wait for is cut off (RFC 9114
    // §4.1: a complete response may come before the request ended).
    const bool sent = spool_ ? spool_sent_ >= spool_->size() : !req_.has_body || body_done_;
    if (sent)
        session_->release(stream_);
    else
        session_->cancel(stream_);
    if (req_.has_body && !spool_ && !body_done_) {
        body_.on_data(nullptr);
        body_.discard(); // the client's connection stays usable
    }
    session_ = nullptr;
    stream_ = -1;
}

void H3Exchange::on_stream_closed(uint64_t app_error, const std::string& session_error,
                                  Failure kind) {
    session_ = nullptr;
    stream_ = -1;
    if (finished_)
        return;
    char code[24];
    std::snprintf(code, sizeof code, "0x%llx", static_cast<unsigned long long>(app_error));
    std::string why = !session_error.empty() ? session_error
                                             : "upstream " + describe() +
                                                   " reset the stream (HTTP/3 error " + code + ")";
    if (!head_done_) {
        // RFC 9114 §4.1.1: H3_REQUEST_REJECTED means not processed, safe to send again.
        if (app_error == NGHTTP3_H3_REQUEST_REJECTED && session_error.empty() && !got_response_ &&
            (body_consumed_ == 0 || spool_) && refusals_ < 3) {
            ++refusals_;
            spool_sent_ = 0;
            trace_.failed(Failure::reset);
            trace_.start_try(server_); // a stream of another connection
            session_ = worker_.h3_sessions().session_for(handler_.upstream(), server_);
            session_->add(this);
            return;
        }
        if (app_error == NGHTTP3_H3_NO_ERROR && session_error.empty()) {
            why = "upstream " + describe() + " ended the stream without a response";
            kind = Failure::protocol;
        }
        if (!retry_elsewhere(why, kind))
            fail(502, "proxy: " + why);
        return;
    }
    trace_.failed(kind);
    fail(502, "proxy: " + why);
}

bool H3Exchange::pull_body(std::string& into, size_t max, bool* eof) {
    *eof = false;
    if (spool_) {
        std::string error;
        if (!spool_->read(spool_sent_, max, into, error))
            return false;
        spool_sent_ += into.size();
        *eof = spool_sent_ >= spool_->size();
        return true;
    }
    if (finished_ || body_.failed())
        return false;
    std::string_view data = body_.peek();
    size_t n = std::min(max, data.size());
    if (n) {
        into.append(data.data(), n);
        body_.consume(n);
        body_consumed_ += n;
    }
    if (body_.finished() && body_.peek().empty()) {
        *eof = true;
        body_done_ = true;
        body_.on_data(nullptr);
    }
    return true;
}

bool H3Exchange::retry_elsewhere(const std::string& why, Failure kind, bool answered) {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = worker_.pool();
    trace_.failed(kind);
    pool.note_failure(up, server_, why);
    if (finished_ || out_.headers_sent() || (got_response_ && !answered) ||
        (body_consumed_ > 0 && !spool_))
        return false;
    int next = pool.retry_server(up, req_, server_, tried_, &tries_, why);
    if (next < 0)
        return false;
    spool_sent_ = 0;
    fields_.clear();
    status_ = 0;
    got_response_ = false;
    session_ = nullptr; // the old stream, if any, is the caller's to cancel
    stream_ = -1;
    pick_and_go(next);
    return true;
}

void H3Exchange::fail(int status, const std::string& reason) {
    if (finished_)
        return;
    finished_ = true;
    trace_.finish();
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
    if (req_.has_body && !spool_) {
        body_.on_data(nullptr);
        if (!out_.headers_sent() && !body_done_)
            body_.discard();
    }
    fail_response(req_, out_, status, reason);
}

void H3Exchange::client_aborted() {
    finished_ = true;
    trace_.finish();
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
}

void H3Exchange::detach() {
    if (!session_)
        return;
    if (stream_ >= 0)
        session_->cancel(stream_);
    else
        session_->remove(this);
    session_ = nullptr;
    stream_ = -1;
}

void H3Exchange::arm_timer() {
    ev_timer_stop(loop_, &timer_);
    if (finished_ || stream_ < 0 || client_blocked_)
        return;
    const UpstreamConfig& up = handler_.upstream();
    Duration d =
        !head_done_ && up.first_byte_timeout.count() > 0 ? up.first_byte_timeout : up.read_timeout;
    ev_timer_set(&timer_, static_cast<double>(d.count()) / 1000.0, 0.);
    ev_timer_start(loop_, &timer_);
}

void H3Exchange::on_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<H3Exchange*>(w->data);
    if (self->finished_)
        return;
    std::string why = "upstream " + self->describe() + " timed out " +
                      (self->head_done_ ? "in the middle of the body" : "before responding");
    if (self->session_ && self->stream_ >= 0)
        self->session_->cancel(self->stream_);
    self->session_ = nullptr;
    self->stream_ = -1;
    if (!self->head_done_ && self->retry_elsewhere(why, Failure::timeout))
        return;
    self->trace_.failed(Failure::timeout);
    self->fail(504, "proxy: " + why);
}

void H3Exchange::on_total_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<H3Exchange*>(w->data);
    if (self->finished_)
        return;
    const UpstreamConfig& up = self->handler_.upstream();
    self->trace_.failed(Failure::timeout);
    self->fail(504, "proxy: upstream \"" + up.name + "\" (" + self->describe() +
                        ") did not finish within total_timeout (" +
                        std::to_string(up.total_timeout.count()) + " ms)");
}

} // namespace wraith::proxy
