// One HTTP/2 exchange's protocol part: request fields as nghttp2 decoded them, flow-control
// credit, the response head for nghttp2, and its body as a pull data source.
#include "worker/http2/stream.h"

#include <charconv>
#include <cstring>

#include "common/log.h"
#include "worker/exchange_util.h"
#include "worker/http2/connection.h"
#include "worker/http2/output_buffer.h"
#include "worker/worker.h"

namespace wraith::http2 {

namespace {

ssize_t read_callback(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* data_flags,
                      nghttp2_data_source* source, void*) {
    return static_cast<Stream*>(source->ptr)->read_data(length, data_flags);
}

// nghttp2 copies names and values at submit time (no NO_COPY flags): a handler's ResponseHead
// may live on its stack.
nghttp2_nv make_nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
}

} // namespace

Stream::Stream(Connection& conn, int32_t id)
    : StreamExchange(conn.worker(), conn.info(), &conn.worker().arena_blocks()), conn_(conn),
      id_(id) {}

Stream::~Stream() = default;

void Stream::schedule() {
    if (!closed_ && !aborted_)
        conn_.schedule(this);
}

uint64_t Stream::max_field_bytes() const {
    return worker_.config().http2.max_header_list_size;
}

bool Stream::on_header(std::string_view name, std::string_view value, bool trailer) {
    if (trailer) // request trailers are counted against the limits, not passed on
        return on_request_field(Field::other, ":trailer", value, true);
    return on_request_field(field_kind(name), name, value, false);
}

void Stream::credit(size_t n) {
    if (closed_)
        nghttp2_session_consume_connection(conn_.session(), n);
    else
        nghttp2_session_consume(conn_.session(), id_, n);
    conn_.want_flush();
}

void Stream::send_continue() {
    nghttp2_nv nv = make_nv(":status", "100");
    nghttp2_submit_headers(conn_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, &nv, 1, nullptr);
    conn_.want_flush();
}

void Stream::on_end_stream_sent() {
    end_stream_sent_ = true;
    if (body_state_ == Body::complete || closed_ || tunnel_ == Tunnel::open)
        return; // a tunnel's client side runs on until the client ends it (half-close)
    if (body_timed_out_)
        return submit_rst(NGHTTP2_NO_ERROR);
    // RFC 9113 §8.1: the response is complete, so a client still sending its body is asked to
    // stop with RST_STREAM(NO_ERROR). A small rest of known length is read and dropped instead
    // (as HTTP/1 does), because some clients (curl 7.88) report that reset as an error.
    const auto length = static_cast<uint64_t>(req_.content_length);
    if (req_.content_length < 0 || body_received() > length ||
        length - body_received() > kMaxDiscard)
        submit_rst(NGHTTP2_NO_ERROR);
}

void Stream::on_closed(uint32_t error_code) {
    close_code_ = error_code;
    stream_closed();
}

// ---- response ------------------------------------------------------------------------------

void Stream::submit_informational(int status, const Headers& headers) {
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

bool Stream::submit_head(ResponseHead& head, bool end_stream) {
    const std::string& server = worker_.config().http.server_header;
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
    nva[i++] = make_nv("date", worker_.http_date());
    if (std::string_view alt = conn_.info().alt_svc; !alt.empty() && !head.headers.find("alt-svc"))
        nva[i++] = make_nv("alt-svc", alt);
    for (const Header& h : head.headers) {
        if (connection_specific(h.name) || h.name == "content-length")
            continue; // framing is ours (RFC 9113 §8.2.2)
        nva[i++] = make_nv(h.name, h.value);
    }
    if (status_has_body(head.status) && head.status != 304 && head.content_length >= 0 &&
        tunnel_ != Tunnel::open) {
        char* len = static_cast<char*>(arena_.alloc(24, 1));
        auto w = std::to_chars(len, len + 24, head.content_length);
        nva[i++] = make_nv("content-length", {len, static_cast<size_t>(w.ptr - len)});
    }
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = read_callback;
    int rv =
        nghttp2_submit_response(conn_.session(), id_, nva, i, end_stream ? nullptr : &provider);
    if (rv != 0) {
        WLOG_ERROR("http2: cannot submit a response on stream %d: %s", id_, nghttp2_strerror(rv));
        submit_rst(NGHTTP2_INTERNAL_ERROR);
        return false;
    }
    if (end_stream && body_state_ == Body::receiving)
        discard();
    conn_.want_flush();
    return true;
}

bool Stream::congested() const {
    return mem_queued_ >= kHighWatermark || queued_files() > kMaxQueuedFiles;
}

size_t Stream::queued_files() const {
    size_t n = 0;
    for (size_t i = seg_head_; i < segs_.size(); ++i)
        n += segs_[i].fd >= 0;
    return n;
}

void Stream::reset_queue() {
    if (seg_head_ == segs_.size()) {
        segs_.clear();
        seg_head_ = 0;
        mem_.clear();
    }
}

void Stream::queue_body(std::string_view data, bool) {
    reset_queue();
    size_t start = mem_.size();
    mem_.append(data);
    Segment* last = segs_.empty() ? nullptr : &segs_.back();
    if (last && seg_head_ < segs_.size() && last->fd < 0 &&
        static_cast<size_t>(last->offset) + last->len == start)
        last->len += data.size();
    else
        segs_.push_back({-1, static_cast<off_t>(start), data.size()});
    mem_queued_ += data.size();
}

void Stream::queue_file(int fd, off_t offset, size_t len) {
    reset_queue();
    segs_.push_back({fd, offset, len});
}

void Stream::queue_trailers(const Headers& trailers) {
    // Copied: the caller's storage may not outlive this call. Sent by read_data() once the
    // body is out (RFC 9113 §8.1: a HEADERS frame with END_STREAM).
    trailers_ = static_cast<nghttp2_nv*>(arena_.alloc(trailers.size() * sizeof(nghttp2_nv)));
    for (const Header& h : trailers)
        if (!connection_specific(h.name))
            trailers_[trailer_count_++] = make_nv(arena_.copy(h.name), arena_.copy(h.value));
}

void Stream::response_ended(uint64_t short_by) {
    if (short_by) // RFC 9113 §8.1.1: the response would be malformed
        return submit_rst(NGHTTP2_INTERNAL_ERROR);
    if (body_state_ == Body::receiving && tunnel_ != Tunnel::open)
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

void Stream::submit_reset() {
    submit_rst(NGHTTP2_INTERNAL_ERROR);
}

ssize_t Stream::read_data(size_t length, uint32_t* data_flags) {
    const bool ended = response_ == Response::ended;
    size_t avail = 0;
    for (size_t i = seg_head_; i < segs_.size() && avail < length; ++i)
        avail += segs_[i].len;
    if (avail == 0) {
        if (ended) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            submit_trailers(data_flags);
            return 0;
        }
        data_deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = std::min(avail, length);
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (ended) {
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
            take = read_file(s.fd, s.offset, p + done, take);
            if (take == 0) {
                reset_sent_ = true; // nghttp2 resets the stream for us
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            }
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
    body_sent_ += length;
    reset_queue();
    if (mem_queued_ < kLowWatermark && queued_files() <= kMaxQueuedFiles)
        writable_drained();
    return 0;
}

} // namespace wraith::http2
