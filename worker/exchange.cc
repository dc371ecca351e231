#include "worker/exchange.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <unistd.h>

#include "common/log.h"
#include "common/strings.h"
#include "worker/exchange_util.h"
#include "worker/worker.h"

namespace wraith {

// ---- Exchange ------------------------------------------------------------------------------

Exchange::Exchange(Worker& worker, const ConnectionInfo& conn, BufferPool* arena_blocks)
    : worker_(worker), arena_(arena_blocks) {
    req_.conn = &conn;
    req_.arena = &arena_;
}

// The arena runs the handler's cleanups (closes its files).
Exchange::~Exchange() {
    if (started_)
        worker_.count_exchange(req_.version, -1);
}

void Exchange::begin_request(int version) {
    req_.version = version;
    req_.loop = worker_.loop();
    head_request_ = req_.method_id == Method::head;
    if (!req_.upgrade.empty())
        tunnel_ = Tunnel::requested;
    stamp_start(req_.start, req_.start_mono_us);
    if (!started_)
        worker_.count_exchange(version, +1);
    started_ = true;
}

void Exchange::start(BodyReader& body, int head_error, const char* why) {
    if (head_error)
        return send_error(req_, *this, head_error, why);
    if (req_.content_length > 0 &&
        static_cast<uint64_t>(req_.content_length) > worker_.config().http.client_max_body_size)
        return send_error(req_, *this, 413, "request body larger than client_max_body_size");
    run_exchange(worker_, req_, body, *this);
}

void Exchange::send_informational(int status, const Headers& headers) {
    if (response_ != Response::none || !open() || status < 100 || status > 199 || status == 101)
        return;
    submit_informational(status, headers);
}

void Exchange::send_headers(ResponseHead& head, bool end_stream) {
    if (response_ != Response::none || !open())
        return;
    response_ = Response::head_sent;
    status_ = head.status;
    const bool has_body = status_has_body(head.status);
    body_expected_ = has_body ? head.content_length : 0;
    body_allowed_ = has_body && !head_request_;
    // The tunnel opens with the answer that accepts it: 101 on HTTP/1.1 (RFC 9110 §15.2.2), a
    // 2xx to an extended CONNECT on HTTP/2 and 3 (RFC 8441 §5, RFC 9220 §3). Its bytes have
    // no length.
    if (tunnel_ == Tunnel::requested && !end_stream &&
        (req_.version < 20 ? head.status == 101 : head.status >= 200 && head.status < 300)) {
        tunnel_ = Tunnel::open;
        body_expected_ = -1;
        body_allowed_ = true;
    }
    if (!submit_head(head, end_stream))
        return;
    if (end_stream)
        end_response();
    else
        kick();
}

ResponseWriter::Result Exchange::writer_state() {
    if (!open())
        return Result::closed;
    if (response_ != Response::ended && congested()) {
        writable_wanted_ = true;
        return Result::blocked;
    }
    return Result::ok;
}

ResponseWriter::Result Exchange::send_body(std::string_view data, bool end_stream) {
    if (!open() || response_ != Response::head_sent)
        return Result::closed;
    if (body_allowed_ && !data.empty()) {
        if (body_expected_ >= 0 &&
            body_queued_ + data.size() > static_cast<uint64_t>(body_expected_)) {
            WLOG_ERROR("handler sent more body than its content-length (%.*s)",
                       (int)req_.conn->peer_text.size(), req_.conn->peer_text.data());
            data = data.substr(0, static_cast<size_t>(body_expected_ - body_queued_));
        }
        if (!data.empty())
            queue_body(data, false);
        body_queued_ += data.size();
    }
    if (end_stream)
        end_response();
    else
        kick();
    return writer_state();
}

ResponseWriter::Result Exchange::send_shared_body(std::string_view data, bool end_stream) {
    // Only a whole body in one call, nothing before it, may be sent from the caller's memory.
    if (!end_stream || body_queued_ != 0 || !open() || response_ != Response::head_sent ||
        !body_allowed_ || data.empty() ||
        (body_expected_ >= 0 && data.size() != static_cast<uint64_t>(body_expected_)))
        return send_body(data, end_stream);
    queue_body(data, true);
    body_queued_ = data.size();
    end_response();
    return writer_state();
}

ResponseWriter::Result Exchange::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    if (!open() || response_ != Response::head_sent)
        return Result::closed;
    if (body_allowed_ && len) {
        if (body_expected_ >= 0 && body_queued_ + len > static_cast<uint64_t>(body_expected_))
            len = static_cast<size_t>(body_expected_ - body_queued_);
        if (len)
            queue_file(fd, offset, len);
        body_queued_ += len;
    }
    if (end_stream)
        end_response();
    else
        kick();
    return writer_state();
}

ResponseWriter::Result Exchange::send_trailers(const Headers& trailers) {
    if (!open() || response_ != Response::head_sent)
        return Result::closed;
    if (body_allowed_ && tunnel_ != Tunnel::open && trailers.size() > 0)
        queue_trailers(trailers);
    end_response();
    return writer_state();
}

void Exchange::end_response() {
    response_ = Response::ended;
    uint64_t short_by = 0;
    if (body_allowed_ && body_expected_ >= 0 &&
        body_queued_ < static_cast<uint64_t>(body_expected_)) {
        short_by = static_cast<uint64_t>(body_expected_) - body_queued_;
        // The client would wait for the rest forever (RFC 9112 §6.3, RFC 9113 §8.1.1).
        WLOG_ERROR("response to %.*s ended %llu bytes short of its content-length",
                   (int)req_.conn->peer_text.size(), req_.conn->peer_text.data(),
                   (unsigned long long)short_by);
    }
    response_ended(short_by);
    if (open())
        kick();
}

void Exchange::reset() {
    if (!open())
        return;
    submit_reset();
}

void Exchange::fire_writable() {
    if (aborted_ || !writable_cb_ || response_ == Response::ended)
        return;
    Callback cb = writable_cb_; // the callback may replace itself
    cb();
}

void Exchange::abort(Callback body_failed) {
    if (aborted_)
        return;
    aborted_ = true;
    if (body_failed)
        body_failed();
    Callback cb = std::move(abort_cb_);
    // A tunnel's handler still reads the client's side after it ended its own.
    if (cb && (response_ != Response::ended || tunnel_ == Tunnel::open))
        cb();
}

void Exchange::finish(bool complete, uint64_t request_bytes) {
    if (!complete)
        abort();
    aborted_ = true;
    writable_cb_ = nullptr;
    abort_cb_ = nullptr;
    ExchangeSummary s;
    s.status = status_ ? status_ : 499;
    s.body_bytes = body_sent_;
    s.request_bytes = request_bytes;
    s.duration_us = monotonic_us() - req_.start_mono_us;
    s.aborted = !complete;
    req_.summary = &s; // for the log phase's variables ($status, $request_time ...)
    finish_exchange(worker_, req_, s);
    req_.summary = nullptr;
}

// ---- StreamExchange ------------------------------------------------------------------------

StreamExchange::StreamExchange(Worker& worker, const ConnectionInfo& conn, BufferPool* arena_blocks)
    : Exchange(worker, conn, arena_blocks) {}

StreamExchange::Field StreamExchange::field_kind(std::string_view name) {
    if (!name.empty() && name.front() == ':') {
        if (name == ":method")
            return Field::method;
        if (name == ":scheme")
            return Field::scheme;
        if (name == ":authority")
            return Field::authority;
        if (name == ":path")
            return Field::path;
        if (name == ":protocol")
            return Field::protocol;
        return Field::other;
    }
    if (name == "cookie")
        return Field::cookie;
    if (name == "host")
        return Field::host;
    if (name == "content-length")
        return Field::content_length;
    if (name == "expect")
        return Field::expect;
    return Field::other;
}

bool StreamExchange::on_request_field(Field kind, std::string_view name, std::string_view value,
                                      bool keep_name) {
    const HttpConfig& http = worker_.config().http;
    const uint64_t max_bytes = max_field_bytes();
    const uint64_t max_fields = http.max_headers + 4; // + the four request pseudo-fields
    header_bytes_ += name.size() + value.size() + 32;
    ++header_count_;
    // A QPACK or HPACK bomb expands a few bytes into huge lists: far past the limit, stop
    // listening (the protocol resets the stream).
    if (header_bytes_ > 4 * max_bytes || header_count_ > 4 * max_fields)
        return false;
    if (head_error_)
        return true; // nothing after a limit is kept
    if (header_bytes_ > max_bytes || header_count_ > max_fields) {
        head_error_ = 431; // RFC 9113 §10.5.1, RFC 9114 §4.2.2
        return true;
    }
    // The library checked pseudo-field presence, order and duplicates (RFC 9113 §8.3.1,
    // RFC 9114 §4.3.1), and accepts :protocol only on a CONNECT after our SETTINGS enabled it
    // (RFC 8441 §4, RFC 9220 §3).
    switch (kind) {
    case Field::method:
        req_.method = arena_.copy(value);
        req_.method_id = method_from(value);
        return true;
    case Field::scheme:
        req_.scheme = arena_.copy(value);
        return true;
    case Field::authority:
        req_.authority = arena_.copy(value);
        return true;
    case Field::protocol:
        req_.upgrade = arena_.copy(value);
        return true;
    case Field::path: {
        if (value.size() > http.max_request_target) {
            head_error_ = 414;
            return true;
        }
        req_.target = arena_.copy(value);
        size_t q = req_.target.find('?');
        req_.path = req_.target.substr(0, q);
        req_.query = q == std::string_view::npos ? std::string_view{} : req_.target.substr(q + 1);
        return true;
    }
    case Field::cookie:
        // RFC 9113 §8.2.3, RFC 9114 §4.2.1: crumbs may come as separate fields; handlers
        // see one.
        if (const Header* h = req_.headers.find("cookie")) {
            size_t n = h->value.size() + 2 + value.size();
            char* joined = static_cast<char*>(arena_.alloc(n, 1));
            std::memcpy(joined, h->value.data(), h->value.size());
            std::memcpy(joined + h->value.size(), "; ", 2);
            if (!value.empty())
                std::memcpy(joined + h->value.size() + 2, value.data(), value.size());
            req_.headers.set("cookie", {joined, n});
            return true;
        }
        break;
    case Field::host:
        host_field_ = arena_.copy(value);
        break;
    case Field::content_length: {
        // The library checked the syntax and checks it against the DATA.
        uint64_t v = 0;
        auto r = std::from_chars(value.data(), value.data() + value.size(), v);
        if (r.ec == std::errc{} && r.ptr == value.data() + value.size())
            req_.content_length = static_cast<int64_t>(v);
        break;
    }
    case Field::expect:
        continue_ = iequals(value, "100-continue") ? Continue::expected : Continue::none;
        break;
    case Field::other:
        if (!name.empty() && name.front() == ':')
            return true; // a pseudo-field the library let through: not a request field
        break;
    }
    req_.headers.add(keep_name ? name : arena_.copy(name), arena_.copy(value));
    return true;
}

void StreamExchange::on_head_complete(bool end_stream) {
    body_state_ = end_stream ? Body::complete : Body::receiving;
    pending_ |= kPendingStart;
    schedule();
}

void StreamExchange::start_stream() {
    if (req_.scheme.empty())
        req_.scheme = version() == 30 || req_.conn->tls ? "https" : "http";
    if (req_.authority.empty()) {
        req_.authority = host_field_;
    } else if (!host_field_.empty() && !iequals(host_field_, req_.authority) && !head_error_) {
        // RFC 9113 §8.3.1, RFC 9114 §4.3.1: Host must not name another origin.
        head_error_ = 400;
    }
    req_.host = host_of(req_.authority, arena_);
    // A body whose DATA and end arrived before the exchange started (one read held HEADERS,
    // DATA and END_STREAM) is as much a body as one still arriving.
    req_.has_body =
        (body_state_ == Body::receiving || body_off_ < body_.size()) && req_.content_length != 0;
    begin_request(version());
    const char* why = head_error_ == 431   ? "request header fields too large"
                      : head_error_ == 414 ? "request target too long"
                                           : "Host differs from :authority";
    if (!head_error_)
        head_error_ = static_cast<uint16_t>(protocol_check(&why));
    if (body_too_large_ && !head_error_) {
        head_error_ = 413;
        why = "request body larger than client_max_body_size";
    }
    start(*this, head_error_, why);
}

// ---- request body --------------------------------------------------------------------------

void StreamExchange::on_body(const uint8_t* data, size_t len) {
    body_received_ += len;
    if (body_state_ == Body::discarding || closed_ || aborted_) {
        credit(len);
        return;
    }
    if (body_received_ > worker_.config().http.client_max_body_size && tunnel_ == Tunnel::none) {
        body_too_large_ = true;
        body_failed_ = true;
        credit(len);
        pending_ |= kPendingData;
        schedule();
        return;
    }
    if (body_off_ > 0 && body_off_ == body_.size()) {
        body_.clear();
        body_off_ = 0;
    }
    body_.append(reinterpret_cast<const char*>(data), len);
    pending_ |= kPendingData;
    schedule();
}

void StreamExchange::on_body_end() {
    body_state_ = Body::complete; // also the end of a body being discarded
    pending_ |= kPendingData;
    schedule();
}

void StreamExchange::maybe_send_continue() {
    if (continue_ == Continue::expected && response_ == Response::none &&
        body_state_ == Body::receiving && !closed_) {
        continue_ = Continue::sent;
        send_continue();
    }
}

std::string_view StreamExchange::peek() {
    maybe_send_continue();
    return {body_.data() + body_off_, body_.size() - body_off_};
}

void StreamExchange::consume(size_t n) {
    n = std::min(n, body_.size() - body_off_);
    if (n == 0)
        return;
    body_off_ += n;
    if (body_off_ == body_.size()) {
        body_.clear();
        body_off_ = 0;
    }
    if (!closed_)
        credit(n); // window credit goes back only now: a slow consumer slows the client
}

void StreamExchange::on_data(Callback cb) {
    data_cb_ = std::move(cb);
    if (data_cb_)
        maybe_send_continue();
}

// Flow control is the pause: while the handler does not consume, no window returns.
void StreamExchange::pause() {
    body_paused_ = true;
}

void StreamExchange::resume() {
    body_paused_ = false;
    maybe_send_continue();
    if (body_off_ < body_.size() || body_state_ == Body::complete) {
        pending_ |= kPendingData;
        schedule();
    }
}

void StreamExchange::discard() {
    data_cb_ = nullptr;
    if (body_state_ == Body::receiving)
        body_state_ = Body::discarding;
    size_t buffered = body_.size() - body_off_;
    body_.clear();
    body_off_ = 0;
    if (buffered && !closed_)
        credit(buffered);
}

bool StreamExchange::waiting_for_body() const {
    return started_ && !closed_ && !aborted_ && body_state_ == Body::receiving && !body_paused_ &&
           tunnel_ == Tunnel::none;
}

void StreamExchange::writable_drained() {
    if (!writable_wanted_)
        return;
    writable_wanted_ = false;
    pending_ |= kPendingWritable;
    schedule();
}

size_t StreamExchange::read_file(int fd, off_t offset, char* dst, size_t len) const {
    for (;;) {
        ssize_t r = ::pread(fd, dst, len, offset);
        if (r > 0)
            return static_cast<size_t>(r);
        if (r < 0 && errno == EINTR)
            continue;
        WLOG_ERROR("http%d: reading the response file for %.*s: %s", version() / 10,
                   (int)req_.conn->peer_text.size(), req_.conn->peer_text.data(),
                   r < 0 ? std::strerror(errno) : "file shrank");
        return 0;
    }
}

void StreamExchange::stream_closed() {
    closed_ = true;
    // Body bytes never consumed still hold connection window: give it back.
    size_t unconsumed = body_.size() - body_off_;
    if (unconsumed)
        credit(unconsumed);
    body_.clear();
    body_off_ = 0;
}

// ---- pending work --------------------------------------------------------------------------

void StreamExchange::run_pending() {
    if (closed_ || aborted_)
        return;
    if (pending_ & kPendingStart) {
        pending_ &= static_cast<uint8_t>(~kPendingStart);
        start_stream();
        if (closed_ || aborted_)
            return;
    }
    if ((pending_ & kPendingData) && started_) {
        pending_ &= static_cast<uint8_t>(~kPendingData);
        if (body_too_large_) {
            // The client sent more than client_max_body_size without a Content-Length.
            ErrorLog::limited(LogLevel::info,
                              "413 body larger than client_max_body_size, client: %.*s",
                              (int)req_.conn->peer_text.size(), req_.conn->peer_text.data());
            if (body_state_ == Body::receiving)
                body_state_ = Body::discarding;
            Callback cb = std::move(data_cb_);
            if (cb)
                cb(); // the handler sees failed()
            if (response_ == Response::none && !aborted_)
                send_error(req_, *this, 413, {});
            else if (response_ != Response::ended)
                reset();
        } else if (data_cb_ && !body_paused_ && body_state_ != Body::discarding) {
            Callback cb = data_cb_; // the callback may replace itself
            cb();
        }
    }
    if ((pending_ & kPendingWritable) && !aborted_) {
        pending_ &= static_cast<uint8_t>(~kPendingWritable);
        fire_writable();
    }
}

void StreamExchange::on_body_timeout() {
    ErrorLog::limited(LogLevel::info, "client %.*s timed out sending the request body",
                      (int)req_.conn->peer_text.size(), req_.conn->peer_text.data());
    body_failed_ = true;
    body_timed_out_ = true;
    Callback cb = std::move(data_cb_);
    if (cb)
        cb(); // the handler sees failed()
    if (closed_ || aborted_)
        return;
    discard();
    if (response_ == Response::none)
        send_error(req_, *this, 408, {});
    else if (response_ != Response::ended)
        reset();
}

void StreamExchange::finish_stream() {
    if (!started_)
        return; // reset before it ran (rapid reset): nothing was served, nothing to log
    bool complete = response_ == Response::ended && response_complete();
    if (!complete && !aborted_) {
        abort([this] {
            if (body_state_ != Body::complete) {
                body_failed_ = true;
                Callback dcb = std::move(data_cb_);
                if (dcb)
                    dcb();
            }
        });
    }
    data_cb_ = nullptr;
    finish(complete, body_received_);
}

} // namespace wraith
