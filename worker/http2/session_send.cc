// The sending half of the HTTP/2 session: our SETTINGS, response header blocks, DATA pulled
// from ready streams round robin within the flow-control windows (RFC 9113 §6.9), resets,
// stream closes, and GOAWAY.
#include <algorithm>
#include <cstring>

#include "worker/http2/session.h"

namespace wraith::http2 {

void Session::start() {
    const Setting settings[] = {
        {kMaxConcurrentStreams, limits_.max_concurrent_streams},
        {kInitialWindowSize, limits_.initial_window_size},
        {kMaxFrameSize, limits_.max_frame_size},
        {kMaxHeaderListSize, limits_.max_header_list_size},
        {kHeaderTableSize, 4096},    // bounds the HPACK decoder's memory (the default)
        {kEnablePush, 0},            // servers do not push here
        {kNoRfc7540Priorities, 1},   // RFC 9218: no priority tree
        {kEnableConnectProtocol, 1}, // RFC 8441: WebSockets over HTTP/2
    };
    uint8_t* w = room(9 + 6 * std::size(settings) + 13);
    uint8_t* e = write_settings(w, settings, std::size(settings));
    // The connection window (§6.9.2) is no SETTINGS value: WINDOW_UPDATE on stream 0.
    if (limits_.connection_window_size > kDefaultWindow) {
        e = write_window_update(e, 0, limits_.connection_window_size - kDefaultWindow);
        recv_window_ = limits_.connection_window_size;
    }
    commit(w, e);
}

void Session::terminate(uint32_t error, const char* why) {
    if (terminated_)
        return;
    terminated_ = true;
    uint8_t* w = room(17);
    commit(w, write_goaway(w, static_cast<uint32_t>(last_stream_id_), error));
    owner_.connection_error(error, why);
}

void Session::shutdown_notice(const uint8_t ping_opaque[8]) {
    if (terminated_)
        return;
    uint8_t* w = room(17 + 17);
    uint8_t* e = write_goaway(w, kMaxWindow, kNoError);
    commit(w, write_ping(e, 0, ping_opaque));
}

void Session::final_goaway() {
    if (terminated_ || final_goaway_)
        return;
    final_goaway_ = true;
    goaway_last_id_ = last_stream_id_;
    uint8_t* w = room(17);
    commit(w, write_goaway(w, static_cast<uint32_t>(last_stream_id_), kNoError));
}

// ---- header blocks -------------------------------------------------------------------------

uint8_t* Session::begin_headers(size_t bound) {
    // Room for the block, one more byte for the table size update, and the headers of the
    // CONTINUATION frames a long block needs (the peer's frames are at least 16 KiB).
    bound += 1;
    uint8_t* w = room(kFrameHeaderSize + bound + kFrameHeaderSize * (bound / 16384 + 1));
    uint8_t* p = w + kFrameHeaderSize;
    if (first_block_) {
        // RFC 7541 §4.2, §6.3: our encoder keeps no dynamic table; saying so lets the
        // client's decoder keep none either.
        first_block_ = false;
        p = HpackEncoder::table_size_zero(p);
    }
    return p;
}

void Session::end_headers(StreamState& s, uint8_t* end, bool end_stream) {
    uint8_t* start = reinterpret_cast<uint8_t*>(out_.reserve(0));
    if (s.reset_ || s.gone_ || s.end_sent_ || terminated_)
        return; // nothing more goes out on it: the block is dropped (never committed)
    size_t len = static_cast<size_t>(end - start) - kFrameHeaderSize;
    const uint8_t stream_flags = end_stream ? flags::end_stream : 0;
    const auto id = static_cast<uint32_t>(s.id_);
    if (len <= peer_max_frame_size_) {
        write_frame_header(start, static_cast<uint32_t>(len), FrameType::headers,
                           stream_flags | flags::end_headers, id);
        commit(start, end);
    } else {
        // §6.10: split, moving each piece back to make room for the next frame header.
        const size_t max = peer_max_frame_size_;
        const size_t frames = (len + max - 1) / max;
        uint8_t* payload = start + kFrameHeaderSize;
        for (size_t i = frames; i-- > 1;) {
            const size_t off = i * max;
            const size_t n = std::min(max, len - off);
            uint8_t* dst = start + kFrameHeaderSize * (i + 1) + off;
            std::memmove(dst, payload + off, n);
            write_frame_header(dst - kFrameHeaderSize, static_cast<uint32_t>(n),
                               FrameType::continuation, i == frames - 1 ? flags::end_headers : 0,
                               id);
        }
        write_frame_header(start, static_cast<uint32_t>(max), FrameType::headers, stream_flags, id);
        commit(start, start + len + kFrameHeaderSize * frames);
    }
    if (end_stream && !s.local_end_) {
        s.local_end_ = true;
        ready_push(s); // produce() tells the stream, outside the caller's stack
    }
}

// ---- streams -------------------------------------------------------------------------------

void Session::ready_push(StreamState& s) {
    if (s.in_ready_ || s.gone_ || s.reset_ || s.end_sent_)
        return;
    s.in_ready_ = true;
    s.ready_next_ = nullptr;
    s.ready_prev_ = ready_tail_;
    if (ready_tail_)
        ready_tail_->ready_next_ = &s;
    else
        ready_head_ = &s;
    ready_tail_ = &s;
}

void Session::ready_remove(StreamState& s) {
    if (!s.in_ready_)
        return;
    if (s.ready_prev_)
        s.ready_prev_->ready_next_ = s.ready_next_;
    else
        ready_head_ = s.ready_next_;
    if (s.ready_next_)
        s.ready_next_->ready_prev_ = s.ready_prev_;
    else
        ready_tail_ = s.ready_prev_;
    s.ready_next_ = s.ready_prev_ = nullptr;
    s.in_ready_ = false;
}

void Session::resume(StreamState& s) {
    ready_push(s);
}

void Session::write_rst(int32_t id, uint32_t error) {
    uint8_t* w = room(13);
    commit(w, write_rst_stream(w, static_cast<uint32_t>(id), error));
    remember_reset(id);
}

void Session::remember_reset(int32_t id) {
    for (int32_t r : recent_resets_)
        if (r == id)
            return;
    recent_resets_[recent_reset_next_] = id;
    recent_reset_next_ = static_cast<uint8_t>((recent_reset_next_ + 1) % 4);
}

bool Session::recently_reset(int32_t id) const {
    for (int32_t r : recent_resets_)
        if (r == id)
            return true;
    return false;
}

void Session::reset(StreamState& s, uint32_t error) {
    if (s.reset_ || s.gone_)
        return;
    if (!terminated_)
        write_rst(s.id_, error);
    s.reset_ = true;
    ready_remove(s);
    closing_.push_back(&s);
    // Body bytes the stream holds still count against the connection window: the stream
    // credits them when it closes (StreamExchange::stream_closed).
    (void)error;
}

void Session::close_stream(StreamState& s, uint32_t error) {
    if (s.gone_)
        return;
    s.gone_ = true;
    ready_remove(s);
    if (s.reset_) // closed by the client's RST_STREAM before produce() got to ours
        std::erase(closing_, &s);
    auto it = std::lower_bound(streams_.begin(), streams_.end(), s.id_,
                               [](const StreamState* x, int32_t v) { return x->id_ < v; });
    if (it != streams_.end() && *it == &s)
        streams_.erase(it);
    s.on_closed(error);
    owner_.stream_closed(&s);
}

void Session::end_sent(StreamState& s) {
    s.end_sent_ = true;
    ready_remove(s);
    s.on_end_stream_sent();
    if (s.remote_ended_ && !s.reset_ && !s.gone_)
        close_stream(s, kNoError);
}

// One DATA frame (or the end: an empty DATA or the trailers). False: the connection window
// is exhausted and nothing more can go now.
bool Session::send_data(StreamState& s) {
    ready_remove(s);
    if (s.local_end_) { // END_STREAM went on the HEADERS
        if (!s.end_sent_)
            end_sent(s);
        return true;
    }
    const size_t avail = s.body_available();
    const bool ended = s.body_ended();
    if (avail == 0) {
        if (!ended)
            return true; // nothing yet: resume() brings it back
        s.local_end_ = true;
        if (const std::span<const Header> t = s.trailers(); !t.empty()) {
            // §8.1: a HEADERS frame with END_STREAM carries the trailers.
            size_t bound = 0;
            for (const Header& f : t)
                bound += HpackEncoder::bound(f.name, f.value);
            uint8_t* p = begin_headers(bound);
            for (const Header& f : t)
                p = HpackEncoder::field(p, f.name, f.value);
            end_headers(s, p, true);
        } else {
            uint8_t* w = room(kFrameHeaderSize);
            write_frame_header(w, 0, FrameType::data, flags::end_stream,
                               static_cast<uint32_t>(s.id_));
            commit(w, w + kFrameHeaderSize);
        }
        end_sent(s);
        return true;
    }
    if (send_window_ <= 0) {
        ready_push(s);
        return false;
    }
    const int64_t window = std::min<int64_t>(send_window_, s.send_window_);
    if (window <= 0)
        return true; // the stream's WINDOW_UPDATE brings it back
    const size_t n = static_cast<size_t>(std::min<int64_t>(
        {static_cast<int64_t>(avail), window, static_cast<int64_t>(peer_max_frame_size_)}));
    const bool trailers = !s.trailers().empty();
    const bool last = ended && n == avail && !trailers;
    uint8_t* w = room(kFrameHeaderSize + n);
    const size_t copied = s.body_copy(w + kFrameHeaderSize, n);
    if (copied < n) {
        reset(s, kInternalError);
        return true;
    }
    write_frame_header(w, static_cast<uint32_t>(n), FrameType::data, last ? flags::end_stream : 0,
                       static_cast<uint32_t>(s.id_));
    commit(w, w + kFrameHeaderSize + n);
    send_window_ -= static_cast<int64_t>(n);
    s.send_window_ -= static_cast<int64_t>(n);
    if (last)
        end_sent(s);
    else if (n < avail || ended)
        ready_push(s);
    return true;
}

void Session::forget_streams() {
    streams_.clear();
    closing_.clear();
    ready_head_ = ready_tail_ = nullptr;
}

void Session::produce(size_t high) {
    if (in_produce_)
        return;
    in_produce_ = true;
    for (;;) {
        while (!closing_.empty()) {
            StreamState* s = closing_.back();
            closing_.pop_back();
            close_stream(*s, kNoError);
        }
        if (terminated_ || !ready_head_ || out_.pending() >= high)
            break;
        if (!send_data(*ready_head_))
            break;
    }
    in_produce_ = false;
}

} // namespace wraith::http2
