// The receiving half of the HTTP/2 session: the preface, frames, header blocks and their
// checks (RFC 9113 §8.2, §8.3), request DATA and its flow control, SETTINGS, PING, GOAWAY,
// WINDOW_UPDATE, RST_STREAM, PRIORITY, and the flood limits. Sending is in session_send.cc.
#include <algorithm>
#include <cstring>

#include "common/http.h"
#include "worker/http2/session.h"

namespace wraith::http2 {

namespace {

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x + 32);
        if (x != y)
            return false;
    }
    return true;
}

// RFC 9113 §8.2.1: no control characters, space, capitals, DEL or non-ASCII in a name (and no
// colon outside the pseudo-field prefix).
bool valid_name(std::string_view name, size_t from) {
    if (name.size() <= from)
        return false;
    for (size_t i = from; i < name.size(); ++i) {
        const auto c = static_cast<unsigned char>(name[i]);
        if (c <= 0x20 || (c >= 'A' && c <= 'Z') || c >= 0x7f || c == ':')
            return false;
    }
    return true;
}

// RFC 9113 §8.2.1: no NUL, CR or LF, and no leading or trailing space or tab.
bool valid_value(std::string_view v) {
    if (!v.empty() &&
        (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t'))
        return false;
    for (char c : v)
        if (c == '\0' || c == '\r' || c == '\n')
            return false;
    return true;
}

bool parse_length(std::string_view v, int64_t& out) {
    if (v.empty() || v.size() > 18)
        return false;
    int64_t n = 0;
    for (char c : v) {
        if (c < '0' || c > '9')
            return false;
        n = n * 10 + (c - '0');
    }
    out = n;
    return true;
}

} // namespace

// Checks each decoded field of a request head or trailers and hands it to the stream.
class Session::FieldSink final : public HpackSink {
public:
    explicit FieldSink(StreamState* s, bool trailer) : s_(s), trailer_(trailer) {}

    void field(std::string_view name, std::string_view value) override {
        if (!s_ || s_->malformed_ || s_->abusive_)
            return;
        if (!check(name, value)) {
            s_->malformed_ = true;
            return;
        }
        if (!s_->on_field(name, value, trailer_))
            s_->abusive_ = true;
    }
    void oversized() override {
        if (s_ && !s_->malformed_ && !s_->abusive_)
            s_->on_field_oversized();
    }

private:
    bool check(std::string_view name, std::string_view value) {
        StreamState& s = *s_;
        if (!valid_value(value))
            return false;
        if (!name.empty() && name.front() == ':') {
            // §8.3: pseudo-fields only in the head, before the regular ones, once each.
            if (trailer_ || s.regular_seen_ || !valid_name(name, 1))
                return false;
            uint8_t bit = 0;
            if (name == ":method")
                bit = StreamState::kMethod;
            else if (name == ":scheme")
                bit = StreamState::kScheme;
            else if (name == ":authority")
                bit = StreamState::kAuthority;
            else if (name == ":path")
                bit = StreamState::kPath;
            else if (name == ":protocol")
                bit = StreamState::kProtocol;
            else
                return false; // a response pseudo-field or an unknown one
            if (s.pseudo_ & bit)
                return false;
            s.pseudo_ |= bit;
            if (bit == StreamState::kMethod && value == "CONNECT")
                s.pseudo_ |= StreamState::kConnect;
            if ((bit == StreamState::kPath || bit == StreamState::kMethod) && value.empty())
                return false;
            return true;
        }
        s.regular_seen_ = true;
        if (!valid_name(name, 0))
            return false;
        // §8.2.2: connection-specific fields make a request malformed; TE only as "trailers".
        switch (name.size()) {
        case 2:
            return name != "te" || iequals_ascii(value, "trailers");
        case 7:
            return name != "upgrade";
        case 10:
            return name != "connection" && name != "keep-alive";
        case 14:
            if (name == "content-length" && !trailer_) {
                int64_t n;
                if (!parse_length(value, n))
                    return false;
                if (s.content_length_ >= 0 && s.content_length_ != n)
                    return false;
                s.content_length_ = n;
            }
            return true;
        case 16:
            return name != "proxy-connection";
        case 17:
            return name != "transfer-encoding";
        default:
            return true;
        }
    }

    StreamState* s_;
    bool trailer_;
};

Session::Session(SessionOwner& owner, OutputBuffer& out, const SessionLimits& limits)
    : owner_(owner), out_(out), limits_(limits), decoder_(4096), in_(1024), block_(1024) {
    decoder_.set_max_string(std::max<size_t>(limits.max_header_list_size, 16384));
}

Session::~Session() = default;

StreamState* Session::find(int32_t id) const {
    auto it = std::lower_bound(streams_.begin(), streams_.end(), id,
                               [](const StreamState* s, int32_t v) { return s->id_ < v; });
    return it != streams_.end() && (*it)->id_ == id ? *it : nullptr;
}

bool Session::take_token(double& tokens, double& stamp, uint32_t rate, uint32_t burst) {
    if (stamp == 0) {
        tokens = burst;
        stamp = now_;
    }
    tokens = std::min<double>(burst, tokens + (now_ - stamp) * rate);
    stamp = now_;
    if (tokens < 1)
        return false;
    tokens -= 1;
    return true;
}

void Session::flood(const char* what) {
    terminate(kEnhanceYourCalm, what);
}

// ---- input ---------------------------------------------------------------------------------

bool Session::receive(const uint8_t* p, size_t n, double now) {
    now_ = now;
    if (terminated_)
        return false;
    if (preface_left_) {
        const size_t off = kClientPrefaceSize - preface_left_;
        const size_t take = std::min<size_t>(preface_left_, n);
        if (std::memcmp(p, kClientPreface + off, take) != 0) {
            terminate(kProtocolError, "no connection preface");
            return false;
        }
        preface_left_ = static_cast<uint8_t>(preface_left_ - take);
        p += take;
        n -= take;
    }
    while (n > 0 && !terminated_) {
        if (in_.pending() == 0 && n >= kFrameHeaderSize) {
            const FrameHeader h = parse_frame_header(p);
            if (h.length > limits_.max_frame_size) {
                terminate(kFrameSizeError, "frame larger than SETTINGS_MAX_FRAME_SIZE");
                break;
            }
            if (n >= kFrameHeaderSize + h.length) {
                process_frame(h, p + kFrameHeaderSize);
                p += kFrameHeaderSize + h.length;
                n -= kFrameHeaderSize + h.length;
                continue;
            }
        }
        // A frame split across reads: gather it.
        size_t have = in_.pending();
        if (have < kFrameHeaderSize) {
            const size_t take = std::min(kFrameHeaderSize - have, n);
            in_.append(p, take);
            p += take;
            n -= take;
            if (in_.pending() < kFrameHeaderSize)
                break;
            have = in_.pending();
        }
        const auto* buf = reinterpret_cast<const uint8_t*>(in_.data());
        const FrameHeader h = parse_frame_header(buf);
        if (h.length > limits_.max_frame_size) {
            terminate(kFrameSizeError, "frame larger than SETTINGS_MAX_FRAME_SIZE");
            break;
        }
        const size_t total = kFrameHeaderSize + h.length;
        const size_t take = std::min(total - have, n);
        in_.append(p, take);
        p += take;
        n -= take;
        if (in_.pending() < total)
            break;
        buf = reinterpret_cast<const uint8_t*>(in_.data());
        process_frame(h, buf + kFrameHeaderSize);
        in_.consume(total);
    }
    return !terminated_;
}

bool Session::process_frame(const FrameHeader& h, const uint8_t* payload) {
    const auto type = static_cast<FrameType>(h.type);
    // §6.10: nothing but the CONTINUATION of the open block may come in between.
    if (block_info_.stream_id != 0) {
        if (type != FrameType::continuation || h.stream_id != uint32_t(block_info_.stream_id)) {
            terminate(kProtocolError, "frame interleaved with a header block");
            return false;
        }
    } else if (type == FrameType::continuation) {
        terminate(kProtocolError, "CONTINUATION without HEADERS");
        return false;
    }
    // §3.4: the client's preface ends with a SETTINGS frame.
    if (!settings_seen_) {
        if (type != FrameType::settings || (h.flags & flags::ack)) {
            terminate(kProtocolError, "no SETTINGS after the preface");
            return false;
        }
        settings_seen_ = true;
    }
    const FrameCheck check = check_frame(h, limits_.max_frame_size);
    if (check.connection) {
        terminate(check.error, "malformed frame");
        return false;
    }
    if (check.error) { // a stream error the header alone shows (PRIORITY of a wrong size)
        write_rst(static_cast<int32_t>(h.stream_id), check.error);
        if (StreamState* s = find(static_cast<int32_t>(h.stream_id)))
            reset(*s, check.error);
        return true;
    }
    switch (type) {
    case FrameType::data:
        on_data(h, payload);
        break;
    case FrameType::headers:
        on_headers(h, payload);
        break;
    case FrameType::continuation:
        on_continuation(h, payload);
        break;
    case FrameType::priority:
        on_priority(h, payload);
        break;
    case FrameType::rst_stream:
        on_rst_stream(h, payload);
        break;
    case FrameType::settings:
        on_settings(h, payload);
        break;
    case FrameType::ping:
        if (h.flags & flags::ack) {
            owner_.ping_acked(payload);
        } else if (!take_token(control_tokens_, control_stamp_, limits_.control_frame_limit,
                               limits_.control_frame_limit)) {
            flood("PING flood");
        } else {
            uint8_t* w = room(17);
            commit(w, write_ping(w, flags::ack, payload));
        }
        break;
    case FrameType::goaway:
        goaway_received_ = true; // finish what is open; the client opens nothing more
        break;
    case FrameType::window_update:
        on_window_update(h, payload);
        break;
    default: // §5.5: unknown frame types are ignored
        break;
    }
    return !terminated_;
}

void Session::on_settings(const FrameHeader& h, const uint8_t* p) {
    if (h.flags & flags::ack)
        return; // our SETTINGS apply (nothing waits on it)
    const size_t count = h.length / 6;
    if (count > limits_.max_settings)
        return flood("SETTINGS frame with too many entries");
    if (!take_token(control_tokens_, control_stamp_, limits_.control_frame_limit,
                    limits_.control_frame_limit))
        return flood("SETTINGS flood");
    for (size_t i = 0; i < count; ++i, p += 6) {
        const uint16_t id = static_cast<uint16_t>((p[0] << 8) | p[1]);
        const uint32_t v = read_u32(p + 2);
        switch (id) {
        case kEnablePush:
        case kEnableConnectProtocol:
        case kNoRfc7540Priorities:
            if (v > 1) // §6.5.2, RFC 8441 §3, RFC 9218 §2.1
                return terminate(kProtocolError, "SETTINGS value out of range");
            break;
        case kInitialWindowSize: {
            if (v > kMaxWindow) // §6.5.2
                return terminate(kFlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE too large");
            // §6.9.2: the change applies to every open stream's window.
            const int64_t delta = int64_t{v} - peer_initial_window_;
            peer_initial_window_ = v;
            for (StreamState* s : streams_) {
                s->send_window_ += delta;
                if (s->send_window_ > kMaxWindow)
                    return terminate(kFlowControlError, "stream window past 2^31-1");
                if (delta > 0 && s->send_window_ > 0)
                    ready_push(*s);
            }
            break;
        }
        case kMaxFrameSize:
            if (v < kDefaultMaxFrameSize || v > kMaxMaxFrameSize)
                return terminate(kProtocolError, "SETTINGS_MAX_FRAME_SIZE out of range");
            peer_max_frame_size_ = v;
            break;
        default: // the table size (our encoder keeps none), limits we need not heed, unknowns
            break;
        }
    }
    uint8_t* w = room(9);
    commit(w, write_settings_ack(w));
}

void Session::on_window_update(const FrameHeader& h, const uint8_t* p) {
    const uint32_t inc = read_u32(p) & 0x7fffffff;
    if (h.stream_id == 0) {
        if (inc == 0)
            return terminate(kProtocolError, "WINDOW_UPDATE of 0");
        send_window_ += inc;
        if (send_window_ > kMaxWindow)
            return terminate(kFlowControlError, "connection window past 2^31-1");
        return;
    }
    const auto id = static_cast<int32_t>(h.stream_id);
    if (id > last_stream_id_)
        return terminate(kProtocolError, "WINDOW_UPDATE on an idle stream");
    StreamState* s = find(id);
    if (!s || s->reset_)
        return; // closed: allowed for a while (§6.9)
    if (inc == 0)
        return reset(*s, kProtocolError);
    s->send_window_ += inc;
    if (s->send_window_ > kMaxWindow)
        return reset(*s, kFlowControlError);
    if (s->send_window_ > 0)
        ready_push(*s);
}

void Session::on_rst_stream(const FrameHeader& h, const uint8_t* p) {
    const auto id = static_cast<int32_t>(h.stream_id);
    if (id > last_stream_id_)
        return terminate(kProtocolError, "RST_STREAM on an idle stream");
    // CVE-2023-44487: opening and resetting streams makes us start work for nothing.
    if (!take_token(reset_tokens_, reset_stamp_, limits_.rapid_reset_limit,
                    limits_.rapid_reset_burst))
        return flood("RST_STREAM flood (rapid reset)");
    if (StreamState* s = find(id)) {
        s->reset_ = true;
        close_stream(*s, read_u32(p));
    }
}

void Session::on_priority(const FrameHeader& h, const uint8_t* p) {
    if (!take_token(control_tokens_, control_stamp_, limits_.control_frame_limit,
                    limits_.control_frame_limit))
        return flood("PRIORITY flood");
    // §5.3.1: a stream cannot depend on itself. Priorities are otherwise ignored (RFC 9218).
    if ((read_u32(p) & 0x7fffffff) == h.stream_id) {
        write_rst(static_cast<int32_t>(h.stream_id), kProtocolError);
        if (StreamState* s = find(static_cast<int32_t>(h.stream_id)))
            reset(*s, kProtocolError);
    }
}

void Session::on_data(const FrameHeader& h, const uint8_t* p) {
    const auto id = static_cast<int32_t>(h.stream_id);
    if (id > last_stream_id_)
        return terminate(kProtocolError, "DATA on an idle stream");
    // §6.9.1: the whole payload, padding included, counts against the windows.
    if (int64_t{h.length} > recv_window_)
        return terminate(kFlowControlError, "DATA past the connection window");
    recv_window_ -= h.length;
    StreamState* s = find(id);
    if (!s || s->reset_ || s->remote_ended_) {
        consume(nullptr, h.length);
        // §6.1: DATA on a closed stream is a STREAM_CLOSED stream error, except on one we
        // reset ourselves (frames in flight, §5.4.2).
        if (s && s->remote_ended_ && !s->reset_)
            reset(*s, kStreamClosed);
        else if (!s && !recently_reset(id))
            write_rst(id, kStreamClosed);
        return;
    }
    if (int64_t{h.length} > s->recv_window_) {
        consume(nullptr, h.length);
        return reset(*s, kFlowControlError);
    }
    s->recv_window_ -= static_cast<int32_t>(h.length);
    size_t len = h.length;
    if (!strip_padding(h.flags, p, len))
        return terminate(kProtocolError, "DATA padding too long");
    if (h.length > len)
        consume(s, h.length - len); // padding is credited at once
    const bool end = h.flags & flags::end_stream;
    // CVE-2019-9518: empty DATA frames cost us work and the client nothing.
    if (len == 0 && !end &&
        !take_token(control_tokens_, control_stamp_, limits_.control_frame_limit,
                    limits_.control_frame_limit))
        return flood("empty DATA frame flood");
    s->data_received_ += len;
    // §8.1.1: more or less body than content-length makes the request malformed.
    if (s->content_length_ >= 0 && (s->data_received_ > uint64_t(s->content_length_) ||
                                    (end && s->data_received_ != uint64_t(s->content_length_)))) {
        consume(s, len);
        return reset(*s, kProtocolError);
    }
    if (len)
        s->on_data(p, len);
    if (end && !s->reset_) {
        s->remote_ended_ = true;
        s->on_data_end();
        if (s->end_sent_)
            close_stream(*s, kNoError);
    }
}

void Session::on_headers(const FrameHeader& h, const uint8_t* p) {
    const auto id = static_cast<int32_t>(h.stream_id);
    if (id % 2 == 0)
        return terminate(kProtocolError, "HEADERS on a server stream id");
    size_t len = h.length;
    if (!strip_padding(h.flags, p, len))
        return terminate(kProtocolError, "HEADERS padding too long");
    block_info_ = Block{};
    if (h.flags & flags::priority) {
        if (len < 5)
            return terminate(kFrameSizeError, "HEADERS too short for its priority");
        block_info_.self_dependent = (read_u32(p) & 0x7fffffff) == h.stream_id;
        p += 5;
        len -= 5;
    }
    block_info_.flags = h.flags;
    block_info_.id = id;
    StreamState* s = find(id);
    if (s) {
        // Trailers (§8.1); after the client's END_STREAM, a STREAM_CLOSED stream error.
        block_info_.trailer = true;
        if (s->reset_) {
            s = nullptr;
        } else if (s->remote_ended_) {
            reset(*s, kStreamClosed);
            s = nullptr;
        }
    } else if (id <= last_stream_id_) {
        // §5.1.1: a smaller id than one already used; the last one itself is closed.
        if (recently_reset(id))
            s = nullptr; // in flight before our reset: decode (HPACK state), drop
        else
            return terminate(id == last_stream_id_ ? kStreamClosed : kProtocolError,
                             "HEADERS on a closed stream");
    } else {
        last_stream_id_ = id;
        if (final_goaway_ && id > goaway_last_id_) {
            s = nullptr; // after our GOAWAY: ignored (§6.8), decoded for the HPACK state
        } else if (streams_.size() >= limits_.max_concurrent_streams ||
                   !(s = owner_.open_stream(id))) {
            block_info_.refuse = true; // §5.1.2
        } else {
            s->recv_window_ = static_cast<int32_t>(limits_.initial_window_size);
            s->send_window_ = peer_initial_window_;
            streams_.push_back(s); // ids only grow: the index stays sorted
        }
    }
    block_info_.stream = s;
    if (h.flags & flags::end_headers)
        return header_block(p, len);
    block_info_.stream_id = id;
    block_.append(p, len);
}

void Session::on_continuation(const FrameHeader& h, const uint8_t* p) {
    if (++block_info_.continuations > limits_.max_continuations)
        return flood("CONTINUATION flood");
    block_.append(p, h.length);
    if (!(h.flags & flags::end_headers))
        return;
    block_info_.stream_id = 0;
    header_block(reinterpret_cast<const uint8_t*>(block_.data()), block_.pending());
    block_.consume(block_.pending());
    block_.release();
}

void Session::header_block(const uint8_t* block, size_t len) {
    block_info_.stream_id = 0;
    StreamState* s = block_info_.stream;
    // Every block is decoded, even one whose fields are dropped: the table must stay in step
    // with the client's encoder (RFC 7541 §2.2).
    FieldSink sink(s, block_info_.trailer);
    if (!decoder_.decode(block, len, sink))
        return terminate(kCompressionError, "HPACK decoding error");
    if (block_info_.refuse) {
        write_rst(block_info_.id, kRefusedStream);
        return;
    }
    if (!s)
        return;
    const bool end = block_info_.flags & flags::end_stream;
    if (s->abusive_)
        return reset(*s, kInternalError);
    if (s->malformed_ || block_info_.self_dependent)
        return reset(*s, kProtocolError);
    if (block_info_.trailer) {
        // §8.1: trailers end the stream; their checks were the field checks.
        if (!end)
            return reset(*s, kProtocolError);
        if (s->content_length_ >= 0 && s->data_received_ != uint64_t(s->content_length_))
            return reset(*s, kProtocolError);
        s->remote_ended_ = true;
        s->on_data_end();
        if (s->end_sent_)
            close_stream(*s, kNoError);
        return;
    }
    end_of_head(*s);
}

// §8.3.1, RFC 8441 §4: the pseudo-fields a request must (not) have.
void Session::end_of_head(StreamState& s) {
    const uint8_t p = s.pseudo_;
    const bool end = block_info_.flags & flags::end_stream;
    bool ok;
    if (!(p & StreamState::kMethod))
        ok = false;
    else if (p & StreamState::kProtocol) // extended CONNECT (we enable it)
        ok = (p & StreamState::kConnect) && (p & StreamState::kScheme) &&
             (p & StreamState::kPath) && (p & StreamState::kAuthority);
    else if (p & StreamState::kConnect)
        ok = (p & StreamState::kAuthority) && !(p & StreamState::kScheme) &&
             !(p & StreamState::kPath);
    else
        ok = (p & StreamState::kScheme) && (p & StreamState::kPath);
    if (!ok)
        return reset(s, kProtocolError);
    if (end && s.content_length_ > 0)
        return reset(s, kProtocolError); // §8.1.1: promised a body, sent none
    s.head_done_ = true;
    if (end)
        s.remote_ended_ = true;
    s.on_head(end);
}

void Session::consume(StreamState* s, size_t len) {
    if (len == 0 || terminated_)
        return;
    credit_ += static_cast<uint32_t>(len);
    // Like nghttp2's consume: credit goes back once half the window is used.
    if (credit_ >= limits_.connection_window_size / 2) {
        uint8_t* w = room(13);
        commit(w, write_window_update(w, 0, credit_));
        recv_window_ += credit_;
        credit_ = 0;
    }
    if (!s || s->reset_ || s->remote_ended_ || s->gone_)
        return;
    s->credit_ += static_cast<uint32_t>(len);
    if (s->credit_ >= limits_.initial_window_size / 2) {
        uint8_t* w = room(13);
        commit(w, write_window_update(w, static_cast<uint32_t>(s->id_), s->credit_));
        s->recv_window_ += static_cast<int32_t>(s->credit_);
        s->credit_ = 0;
    }
}

void Session::release_idle() {
    if (in_.pending() == 0)
        in_.release();
    if (block_info_.stream_id == 0) {
        block_.consume(block_.pending());
        block_.release();
    }
    if (streams_.empty()) {
        std::vector<StreamState*>().swap(streams_);
        std::vector<StreamState*>().swap(closing_);
    }
    decoder_.compact();
}

} // namespace wraith::http2
