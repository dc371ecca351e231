// One HTTP/2 exchange's protocol part: request fields as the session checked them, flow-control
// credit, the response head encoded into the connection's output, and its body as the data
// source the session pulls DATA frames from.
#include "worker/http2/stream.h"

#include <charconv>
#include <cstring>

#include "common/log.h"
#include "worker/exchange_util.h"
#include "worker/http2/connection.h"
#include "worker/worker.h"

namespace wraith::http2 {

Stream::Stream(Connection& conn, int32_t id)
    : StreamExchange(conn.worker(), conn.info(), &conn.worker().arena_blocks()), StreamState(id),
      conn_(conn) {}

Stream::~Stream() = default;

void Stream::schedule() {
    if (!closed_ && !aborted_)
        conn_.schedule(this);
}

uint64_t Stream::max_field_bytes() const {
    return worker_.config().http2.max_header_list_size;
}

bool Stream::on_field(std::string_view name, std::string_view value, bool trailer) {
    if (trailer) // request trailers are counted against the limits, not passed on
        return on_request_field(Field::other, ":trailer", value, true);
    return on_request_field(field_kind(name), name, value, false);
}

void Stream::credit(size_t n) {
    conn_.session().consume(closed_ ? nullptr : this, n);
    conn_.want_flush();
}

void Stream::send_continue() {
    uint8_t* p = conn_.session().begin_headers(8);
    p = HpackEncoder::status(p, 100);
    conn_.session().end_headers(*this, p, false);
    conn_.want_flush();
}

void Stream::on_end_stream_sent() {
    end_stream_sent_ = true;
    if (body_state_ == Body::complete || closed_ || tunnel_ == Tunnel::open)
        return; // a tunnel's client side runs on until the client ends it (half-close)
    if (body_timed_out_)
        return submit_rst(kNoError);
    // RFC 9113 §8.1: the response is complete, so a client still sending its body is asked to
    // stop with RST_STREAM(NO_ERROR). A small rest of known length is read and dropped instead
    // (as HTTP/1 does), because some clients (curl 7.88) report that reset as an error.
    const auto length = static_cast<uint64_t>(req_.content_length);
    if (req_.content_length < 0 || body_received() > length ||
        length - body_received() > kMaxDiscard)
        submit_rst(kNoError);
}

void Stream::on_closed(uint32_t error_code) {
    close_code_ = error_code;
    stream_closed();
}

// ---- response ------------------------------------------------------------------------------

void Stream::submit_informational(int status, const Headers& headers) {
    size_t bound = 8;
    for (const Header& h : headers)
        bound += HpackEncoder::bound(h.name, h.value);
    Session& session = conn_.session();
    uint8_t* p = session.begin_headers(bound);
    p = HpackEncoder::status(p, status);
    for (const Header& h : headers)
        if (!connection_specific(h.name))
            p = HpackEncoder::field(p, h.name, h.value);
    session.end_headers(*this, p, false);
    conn_.want_flush();
}

bool Stream::submit_head(ResponseHead& head, bool end_stream) {
    const std::string& server = worker_.config().http.server_header;
    const std::string_view date = worker_.http_date();
    const std::string_view alt = conn_.info().alt_svc;
    const bool add_alt = !alt.empty() && !head.headers.find("alt-svc");
    const bool add_length = status_has_body(head.status) && head.status != 304 &&
                            head.content_length >= 0 && tunnel_ != Tunnel::open;
    size_t bound = 8 + HpackEncoder::bound("server", server) + HpackEncoder::bound("date", date) +
                   HpackEncoder::bound("alt-svc", alt) + HpackEncoder::bound("content-length", "") +
                   24;
    for (const Header& h : head.headers)
        bound += HpackEncoder::bound(h.name, h.value);
    Session& session = conn_.session();
    uint8_t* p = session.begin_headers(bound);
    p = HpackEncoder::status(p, head.status);
    if (!server.empty())
        p = HpackEncoder::field(p, "server", server);
    p = HpackEncoder::field(p, "date", date);
    if (add_alt)
        p = HpackEncoder::field(p, "alt-svc", alt);
    for (const Header& h : head.headers) {
        if (connection_specific(h.name) || h.name == "content-length")
            continue; // framing is ours (RFC 9113 §8.2.2)
        p = HpackEncoder::field(p, h.name, h.value);
    }
    if (add_length) {
        char len[24];
        auto w = std::to_chars(len, len + sizeof(len), head.content_length);
        p = HpackEncoder::field(p, "content-length", {len, static_cast<size_t>(w.ptr - len)});
    }
    session.end_headers(*this, p, end_stream);
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
    seg_bytes_ += data.size();
}

void Stream::queue_file(int fd, off_t offset, size_t len) {
    reset_queue();
    segs_.push_back({fd, offset, len});
    seg_bytes_ += len;
}

void Stream::queue_trailers(const Headers& trailers) {
    // Copied: the caller's storage may not outlive this call. Sent by the session once the
    // body is out (RFC 9113 §8.1: a HEADERS frame with END_STREAM).
    auto* t = static_cast<Header*>(arena_.alloc(trailers.size() * sizeof(Header)));
    size_t n = 0;
    for (const Header& h : trailers)
        if (!connection_specific(h.name))
            t[n++] = {arena_.copy(h.name), arena_.copy(h.value)};
    trailers_ = t;
    trailer_count_ = n;
}

void Stream::response_ended(uint64_t short_by) {
    if (short_by) // RFC 9113 §8.1.1: the response would be malformed
        return submit_rst(kInternalError);
    if (body_state_ == Body::receiving && tunnel_ != Tunnel::open)
        discard();
}

void Stream::kick() {
    if (!closed_ && !reset_sent_)
        conn_.session().resume(*this);
    conn_.want_flush();
}

void Stream::submit_rst(uint32_t error_code) {
    if (closed_ || reset_sent_)
        return;
    reset_sent_ = true;
    conn_.session().reset(*this, error_code);
    conn_.want_flush();
}

void Stream::submit_reset() {
    submit_rst(kInternalError);
}

size_t Stream::body_copy(uint8_t* dst, size_t length) {
    char* p = reinterpret_cast<char*>(dst);
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
                reset_sent_ = true; // the session resets the stream
                return done;
            }
        }
        s.offset += static_cast<off_t>(take);
        s.len -= take;
        seg_bytes_ -= take;
        done += take;
        if (s.len == 0)
            ++seg_head_;
    }
    body_sent_ += done;
    reset_queue();
    if (mem_queued_ < kLowWatermark && queued_files() <= kMaxQueuedFiles)
        writable_drained();
    return done;
}

} // namespace wraith::http2
