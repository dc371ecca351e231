// One HTTP/2 exchange: request head mapping, request body over stream flow control, response
// head and body as a pull data source for nghttp2.
#include "worker/http2/stream.h"

#include "common/strings.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <unistd.h>

#include "common/log.h"
#include "worker/http2/connection.h"
#include "worker/http2/output_buffer.h"
#include "worker/pipeline.h"
#include "worker/exchange_util.h"
#include "worker/worker.h"

namespace wraith::http2 {

namespace {

ssize_t read_callback(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* data_flags,
                      nghttp2_data_source* source, void*) {
    return static_cast<Stream*>(source->ptr)->read_data(length, data_flags);
}

} // namespace

Stream::Stream(Connection& conn, int32_t id)
    : conn_(conn), id_(id), arena_(&conn.worker().arena_blocks()) {}

Stream::~Stream() = default; // the arena runs the handler's cleanups (closes its files)

void Stream::schedule() {
    if (!closed_ && !aborted_)
        conn_.schedule(this);
}

// ---- request head --------------------------------------------------------------------------

bool Stream::on_header(std::string_view name, std::string_view value, bool trailer) {
    const HttpConfig& http = conn_.worker().config().http;
    const uint64_t max_list = conn_.worker().config().http2.max_header_list_size;
    const uint64_t max_fields = http.max_headers + 4; // + the four request pseudo-fields
    header_bytes_ += name.size() + value.size() + 32;
    ++header_count_;
    // An HPACK bomb expands a few bytes into huge lists: far past the limit, stop listening.
    if (header_bytes_ > 4 * max_list || header_count_ > 4 * max_fields)
        return false;
    if (trailer || head_error_)
        return true; // request trailers are not passed on; nor is anything after a limit
    if (header_bytes_ > max_list || header_count_ > max_fields) {
        head_error_ = 431; // RFC 9113 §10.5.1
        return true;
    }
    if (!name.empty() && name.front() == ':') {
        // nghttp2 already checked presence, order and duplicates (RFC 9113 §8.3.1).
        if (name == ":method") {
            req_.method = arena_.copy(value);
            req_.method_id = method_from(value);
        } else if (name == ":scheme") {
            req_.scheme = arena_.copy(value);
        } else if (name == ":authority") {
            req_.authority = arena_.copy(value);
        } else if (name == ":protocol") {
            // nghttp2 accepts it only on a CONNECT, and only because we sent
            // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §4).
            req_.upgrade = arena_.copy(value);
        } else if (name == ":path") {
            if (value.size() > http.max_request_target) {
                head_error_ = 414;
                return true;
            }
            req_.target = arena_.copy(value);
            size_t q = req_.target.find('?');
            req_.path = req_.target.substr(0, q);
            req_.query =
                q == std::string_view::npos ? std::string_view{} : req_.target.substr(q + 1);
        }
        return true;
    }
    if (name == "cookie") {
        // RFC 9113 §8.2.3: crumbs may come as separate fields; handlers see one.
        if (const Header* h = req_.headers.find("cookie")) {
            size_t n = h->value.size() + 2 + value.size();
            char* joined = static_cast<char*>(arena_.alloc(n, 1));
            std::memcpy(joined, h->value.data(), h->value.size());
            std::memcpy(joined + h->value.size(), "; ", 2);
            std::memcpy(joined + h->value.size() + 2, value.data(), value.size());
            req_.headers.set("cookie", {joined, n});
            return true;
        }
    } else if (name == "host") {
        host_field_ = arena_.copy(value);
    } else if (name == "content-length") {
        // nghttp2 checked the syntax and will check it against the DATA (RFC 9113 §8.1.1).
        uint64_t v = 0;
        auto r = std::from_chars(value.data(), value.data() + value.size(), v);
        if (r.ec == std::errc{} && r.ptr == value.data() + value.size())
            req_.content_length = static_cast<int64_t>(v);
    } else if (name == "expect") {
        expect_continue_ = iequals(value, "100-continue");
    }
    req_.headers.add(arena_.copy(name), arena_.copy(value));
    return true;
}

void Stream::on_head_complete(bool end_stream) {
    head_complete_ = true;
    body_done_ = end_stream;
    start_pending_ = true;
    schedule();
}

void Stream::start() {
    started_ = true;
    Worker& worker = conn_.worker();
    const HttpConfig& http = worker.config().http;
    req_.version = 20;
    req_.conn = &conn_.info();
    req_.arena = &arena_;
    req_.loop = worker.loop();
    if (req_.scheme.empty())
        req_.scheme = conn_.info().tls ? "https" : "http";
    if (req_.authority.empty()) {
        req_.authority = host_field_;
    } else if (!host_field_.empty() && !iequals(host_field_, req_.authority) && !head_error_) {
        // RFC 9113 §8.3.1: Host must not name another origin than :authority.
        head_error_ = 400;
    }
    req_.host = host_of(req_.authority, arena_);
    req_.has_body = !body_done_ && req_.content_length != 0;
    tunnel_ = req_.extended_connect();
    head_request_ = req_.method_id == Method::head;
    stamp_start(req_.start, req_.start_mono_us);

    if (head_error_) {
        const char* why = head_error_ == 431   ? "request header fields too large"
                          : head_error_ == 414 ? "request target too long"
                                               : "Host differs from :authority";
        return send_error(req_, *this, head_error_, why);
    }
    if (body_too_large_ || (req_.content_length > 0 &&
                            static_cast<uint64_t>(req_.content_length) > http.client_max_body_size))
        return send_error(req_, *this, 413, "request body larger than client_max_body_size");
    run_exchange(worker, req_, *this, *this);
}

// ---- request body --------------------------------------------------------------------------

void Stream::on_body_chunk(const uint8_t* data, size_t len) {
    body_received_ += len;
    if (body_discarding_ || closed_ || aborted_) {
        nghttp2_session_consume(conn_.session(), id_, len);
        conn_.want_flush();
        return;
    }
    if (body_received_ > conn_.worker().config().http.client_max_body_size && !tunnel_) {
        body_too_large_ = true;
        body_failed_ = true;
        nghttp2_session_consume(conn_.session(), id_, len);
        data_pending_ = true;
        schedule();
        return;
    }
    if (body_off_ > 0 && body_off_ == body_.size()) {
        body_.clear();
        body_off_ = 0;
    }
    body_.append(reinterpret_cast<const char*>(data), len);
    data_pending_ = true;
    schedule();
}

void Stream::on_body_end() {
    body_done_ = true;
    data_pending_ = true;
    schedule();
}

void Stream::maybe_send_continue() {
    if (expect_continue_ && !continue_sent_ && !headers_sent_ && !body_done_ && !closed_) {
        continue_sent_ = true;
        nghttp2_nv nv = make_nv(":status", "100");
        nghttp2_submit_headers(conn_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, &nv, 1, nullptr);
        conn_.want_flush();
    }
}

std::string_view Stream::peek() {
    maybe_send_continue();
    return {body_.data() + body_off_, body_.size() - body_off_};
}

void Stream::consume(size_t n) {
    n = std::min(n, body_.size() - body_off_);
    if (n == 0)
        return;
    body_off_ += n;
    if (body_off_ == body_.size()) {
        body_.clear();
        body_off_ = 0;
    }
    if (!closed_) {
        // Window credit goes back only now: a slow consumer slows the client (RFC 9113 §5.2).
        nghttp2_session_consume(conn_.session(), id_, n);
        conn_.want_flush();
    }
}

void Stream::on_data(Callback cb) {
    data_cb_ = std::move(cb);
    if (data_cb_)
        maybe_send_continue();
}

// Flow control is the pause: while the handler does not consume, no window returns.
void Stream::pause() {
    body_paused_ = true;
}

void Stream::resume() {
    body_paused_ = false;
    maybe_send_continue();
    if (body_off_ < body_.size() || body_done_) {
        data_pending_ = true;
        schedule();
    }
}

void Stream::discard() {
    data_cb_ = nullptr;
    body_discarding_ = true;
    size_t buffered = body_.size() - body_off_;
    body_.clear();
    body_off_ = 0;
    if (buffered && !closed_) {
        nghttp2_session_consume(conn_.session(), id_, buffered);
        conn_.want_flush();
    }
}

// ---- pending work --------------------------------------------------------------------------

void Stream::run_pending() {
    if (closed_ || aborted_)
        return;
    if (start_pending_) {
        start_pending_ = false;
        start();
        if (closed_ || aborted_)
            return;
    }
    if (data_pending_ && started_) {
        data_pending_ = false;
        if (body_too_large_) {
            // The client sent more than client_max_body_size without a Content-Length.
            ErrorLog::limited(LogLevel::info,
                              "413 body larger than client_max_body_size, client: %.*s",
                              (int)conn_.info().peer_text.size(), conn_.info().peer_text.data());
            body_discarding_ = true;
            Callback cb = std::move(data_cb_);
            if (cb)
                cb(); // the handler sees failed()
            if (!headers_sent_ && !aborted_)
                send_error(req_, *this, 413, {});
            else if (!response_ended_)
                reset();
        } else if (data_cb_ && !body_paused_ && !body_discarding_) {
            Callback cb = data_cb_; // the callback may replace itself
            cb();
        }
    }
    if (writable_pending_ && !aborted_) {
        writable_pending_ = false;
        if (writable_cb_ && !response_ended_) {
            Callback cb = writable_cb_;
            cb();
        }
    }
}

void Stream::on_body_timeout() {
    ErrorLog::limited(LogLevel::info, "client %.*s timed out sending the request body",
                      (int)conn_.info().peer_text.size(), conn_.info().peer_text.data());
    body_failed_ = true;
    body_timed_out_ = true;
    Callback cb = std::move(data_cb_);
    if (cb)
        cb(); // the handler sees failed()
    if (closed_ || aborted_)
        return;
    discard();
    if (!headers_sent_)
        send_error(req_, *this, 408, {});
    else if (!response_ended_)
        reset();
}

void Stream::on_end_stream_sent() {
    end_stream_sent_ = true;
    if (body_done_ || closed_ || tunnel_open_)
        return; // a tunnel's client side runs on until the client ends it (half-close)
    if (body_timed_out_)
        return submit_rst(NGHTTP2_NO_ERROR);
    // RFC 9113 §8.1: the response is complete, so a client still sending its body is asked to
    // stop with RST_STREAM(NO_ERROR). A small rest of known length is read and dropped instead
    // (as HTTP/1 does), because some clients (curl 7.88) report that reset as an error.
    const auto length = static_cast<uint64_t>(req_.content_length);
    if (req_.content_length < 0 || body_received_ > length || length - body_received_ > kMaxDiscard)
        submit_rst(NGHTTP2_NO_ERROR);
}

void Stream::on_closed(uint32_t error_code) {
    closed_ = true;
    close_code_ = error_code;
    // Body bytes never consumed still hold connection window: give it back.
    size_t unconsumed = body_.size() - body_off_;
    if (unconsumed)
        nghttp2_session_consume_connection(conn_.session(), unconsumed);
    body_.clear();
    body_off_ = 0;
}

void Stream::finish() {
    if (!started_)
        return; // reset before it ran (rapid reset): nothing was served, nothing to log
    bool complete = response_ended_ && end_stream_sent_;
    if (!complete && !aborted_) {
        aborted_ = true;
        if (!body_done_) {
            body_failed_ = true;
            Callback dcb = std::move(data_cb_);
            if (dcb)
                dcb();
        }
        Callback cb = std::move(abort_cb_);
        if (cb && (!response_ended_ || tunnel_open_)) // a tunnel's handler reads on after its end
            cb();
    }
    aborted_ = true;
    data_cb_ = nullptr;
    writable_cb_ = nullptr;
    abort_cb_ = nullptr;
    ExchangeSummary s;
    s.status = status_ ? status_ : 499;
    s.body_bytes = body_bytes_;
    s.request_bytes = body_received_;
    s.duration_us = monotonic_us() - req_.start_mono_us;
    s.aborted = !complete;
    finish_exchange(conn_.worker(), req_, s);
}

// ---- response ------------------------------------------------------------------------------

nghttp2_nv Stream::make_nv(std::string_view name, std::string_view value) {
    // nghttp2 copies names and values at submit time (no NO_COPY flags): a handler's
    // ResponseHead may live on its stack.
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
}

void Stream::send_informational(int status, const Headers& headers) {
    if (headers_sent_ || closed_ || aborted_ || status < 100 || status > 199 || status == 101)
        return;
    size_t n = 1 + headers.size();
    auto* nva = static_cast<nghttp2_nv*>(arena_.alloc(n * sizeof(nghttp2_nv)));
    char* code = static_cast<char*>(arena_.alloc(4, 1));
    std::snprintf(code, 4, "%d", status);
    size_t i = 0;
    nva[i++] = make_nv(":status", {code, 3});
    for (const Header& h : headers)
        if (!connection_specific(h.name))
            nva[i++] = make_nv(h.name, h.value);
    nghttp2_submit_headers(conn_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, nva, i, nullptr);
    conn_.want_flush();
}

void Stream::send_headers(ResponseHead& head, bool end_stream) {
    if (headers_sent_ || closed_ || aborted_)
        return;
    headers_sent_ = true;
    status_ = head.status;
    const bool has_body = status_has_body(head.status);
    body_expected_ = has_body ? head.content_length : 0;
    body_allowed_ = has_body && !head_request_;
    // RFC 8441 §5: a 2xx to an extended CONNECT opens the tunnel; its DATA has no length.
    tunnel_open_ = tunnel_ && head.status >= 200 && head.status < 300 && !end_stream;
    if (tunnel_open_)
        body_expected_ = -1;

    Worker& worker = conn_.worker();
    const std::string& server = worker.config().http.server_header;
    size_t n = 5 + head.headers.size();
    auto* nva = static_cast<nghttp2_nv*>(arena_.alloc(n * sizeof(nghttp2_nv)));
    char* code = static_cast<char*>(arena_.alloc(3, 1));
    unsigned status = static_cast<unsigned>(head.status) % 1000;
    code[0] = static_cast<char>('0' + status / 100);
    code[1] = static_cast<char>('0' + status / 10 % 10);
    code[2] = static_cast<char>('0' + status % 10);
    size_t i = 0;
    nva[i++] = make_nv(":status", {code, 3});
    if (!server.empty())
        nva[i++] = make_nv("server", server);
    nva[i++] = make_nv("date", worker.http_date());
    if (std::string_view alt = conn_.info().alt_svc; !alt.empty() && !head.headers.find("alt-svc"))
        nva[i++] = make_nv("alt-svc", alt);
    for (const Header& h : head.headers) {
        if (connection_specific(h.name) || h.name == "content-length")
            continue; // framing is ours (RFC 9113 §8.2.2)
        nva[i++] = make_nv(h.name, h.value);
    }
    if (has_body && head.status != 304 && head.content_length >= 0 && !tunnel_open_) {
        char* len = static_cast<char*>(arena_.alloc(24, 1));
        auto w = std::to_chars(len, len + 24, head.content_length);
        nva[i++] = make_nv("content-length", {len, static_cast<size_t>(w.ptr - len)});
    }

    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = read_callback;
    if (end_stream)
        response_ended_ = true;
    int rv =
        nghttp2_submit_response(conn_.session(), id_, nva, i, end_stream ? nullptr : &provider);
    if (rv != 0) {
        WLOG_ERROR("http2: cannot submit a response on stream %d: %s", id_, nghttp2_strerror(rv));
        submit_rst(NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (end_stream && !body_done_)
        discard();
    conn_.want_flush();
}

ResponseWriter::Result Stream::writer_state() {
    if (closed_ || aborted_ || reset_sent_)
        return Result::closed;
    if (!response_ended_ && (mem_queued_ >= kHighWatermark || queued_files() > kMaxQueuedFiles)) {
        writable_wanted_ = true;
        return Result::blocked;
    }
    return Result::ok;
}

size_t Stream::queued_files() const {
    size_t n = 0;
    for (size_t i = seg_head_; i < segs_.size(); ++i)
        n += segs_[i].fd >= 0;
    return n;
}

ResponseWriter::Result Stream::send_body(std::string_view data, bool end_stream) {
    if (closed_ || aborted_ || !headers_sent_ || response_ended_)
        return Result::closed;
    if (body_allowed_ && !data.empty()) {
        if (body_expected_ >= 0 &&
            body_queued_ + data.size() > static_cast<uint64_t>(body_expected_)) {
            WLOG_ERROR("handler sent more body than its content-length (%.*s)",
                       (int)conn_.info().peer_text.size(), conn_.info().peer_text.data());
            data = data.substr(0, body_expected_ - body_queued_);
        }
        if (seg_head_ == segs_.size()) {
            segs_.clear();
            seg_head_ = 0;
            mem_.clear();
        }
        size_t start = mem_.size();
        mem_.append(data);
        Segment* last = segs_.empty() ? nullptr : &segs_.back();
        if (last && seg_head_ < segs_.size() && last->fd < 0 &&
            static_cast<size_t>(last->offset) + last->len == start)
            last->len += data.size();
        else
            segs_.push_back({-1, static_cast<off_t>(start), data.size()});
        mem_queued_ += data.size();
        body_queued_ += data.size();
    }
    if (end_stream)
        end_response();
    kick();
    return writer_state();
}

ResponseWriter::Result Stream::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    if (closed_ || aborted_ || !headers_sent_ || response_ended_)
        return Result::closed;
    if (body_allowed_ && len) {
        if (body_expected_ >= 0 && body_queued_ + len > static_cast<uint64_t>(body_expected_))
            len = body_expected_ - body_queued_;
        if (len) {
            if (seg_head_ == segs_.size()) {
                segs_.clear();
                seg_head_ = 0;
                mem_.clear();
            }
            segs_.push_back({fd, offset, len});
            body_queued_ += len;
        }
    }
    if (end_stream)
        end_response();
    kick();
    return writer_state();
}

ResponseWriter::Result Stream::send_trailers(const Headers& trailers) {
    if (closed_ || aborted_ || !headers_sent_ || response_ended_)
        return Result::closed;
    if (body_allowed_ && trailers.size() > 0) {
        // Copied: the caller's storage may not outlive this call. Sent by read_data() once
        // the body is out (RFC 9113 §8.1: a HEADERS frame with END_STREAM).
        trailers_ = static_cast<nghttp2_nv*>(arena_.alloc(trailers.size() * sizeof(nghttp2_nv)));
        for (const Header& h : trailers) {
            if (connection_specific(h.name))
                continue;
            trailers_[trailer_count_++] = make_nv(arena_.copy(h.name), arena_.copy(h.value));
        }
    }
    end_response();
    kick();
    return writer_state();
}

void Stream::end_response() {
    response_ended_ = true;
    if (body_allowed_ && body_expected_ >= 0 &&
        body_queued_ < static_cast<uint64_t>(body_expected_)) {
        // The client would wait for the rest forever; RFC 9113 §8.1.1 makes it malformed.
        WLOG_ERROR("response to %.*s ended %llu bytes short of its content-length",
                   (int)conn_.info().peer_text.size(), conn_.info().peer_text.data(),
                   (unsigned long long)(body_expected_ - body_queued_));
        submit_rst(NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (!body_done_ && !tunnel_open_)
        discard();
}

void Stream::kick() {
    if (data_deferred_ && !closed_) {
        data_deferred_ = false;
        nghttp2_session_resume_data(conn_.session(), id_);
    }
    conn_.want_flush();
}

void Stream::submit_rst(uint32_t error_code) {
    if (closed_ || reset_sent_)
        return;
    reset_sent_ = true;
    nghttp2_submit_rst_stream(conn_.session(), NGHTTP2_FLAG_NONE, id_, error_code);
    conn_.want_flush();
}

void Stream::reset() {
    if (closed_ || aborted_)
        return;
    submit_rst(NGHTTP2_INTERNAL_ERROR);
}

ssize_t Stream::read_data(size_t length, uint32_t* data_flags) {
    size_t avail = 0;
    for (size_t i = seg_head_; i < segs_.size() && avail < length; ++i)
        avail += segs_[i].len;
    if (avail == 0) {
        if (response_ended_) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            submit_trailers(data_flags);
            return 0;
        }
        data_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = std::min(avail, length);
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (response_ended_) {
        size_t total = 0;
        for (size_t i = seg_head_; i < segs_.size(); ++i)
            total += segs_[i].len;
        if (n == total) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            submit_trailers(data_flags);
        }
    }
    return static_cast<ssize_t>(n);
}

// Called with the last DATA frame: trailers end the stream instead of that frame.
void Stream::submit_trailers(uint32_t* data_flags) {
    if (trailer_count_ == 0)
        return;
    if (nghttp2_submit_trailer(conn_.session(), id_, trailers_, trailer_count_) == 0)
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    trailer_count_ = 0;
}

int Stream::write_data(OutputBuffer& out, const uint8_t* framehd, size_t length) {
    // We never ask for padding, so the frame is header + payload (RFC 9113 §6.1).
    char* dst = out.reserve(9 + length);
    std::memcpy(dst, framehd, 9);
    char* p = dst + 9;
    size_t done = 0;
    while (done < length && seg_head_ < segs_.size()) {
        Segment& s = segs_[seg_head_];
        size_t take = std::min(s.len, length - done);
        if (s.fd < 0) {
            std::memcpy(p + done, mem_.data() + s.offset, take);
            mem_queued_ -= take;
        } else {
            ssize_t r = ::pread(s.fd, p + done, take, s.offset);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                WLOG_ERROR("http2: reading the response file for %.*s: %s",
                           (int)conn_.info().peer_text.size(), conn_.info().peer_text.data(),
                           r < 0 ? std::strerror(errno) : "file shrank");
                reset_sent_ = true; // nghttp2 resets the stream for us
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            }
            take = static_cast<size_t>(r);
        }
        s.offset += static_cast<off_t>(take);
        s.len -= take;
        done += take;
        if (s.len == 0)
            ++seg_head_;
    }
    if (done < length)
        return NGHTTP2_ERR_CALLBACK_FAILURE; // read_data promised more: a bug
    out.commit(9 + length);
    body_bytes_ += length;
    if (seg_head_ == segs_.size()) {
        segs_.clear();
        seg_head_ = 0;
        mem_.clear();
    }
    if (writable_wanted_ && mem_queued_ < kLowWatermark && queued_files() <= kMaxQueuedFiles) {
        writable_wanted_ = false;
        writable_pending_ = true;
        schedule();
    }
    return 0;
}

} // namespace wraith::http2
