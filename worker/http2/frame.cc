#include "worker/http2/frame.h"

namespace wraith::http2 {

FrameHeader parse_frame_header(const uint8_t* p) {
    return {(uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2], p[3], p[4],
            read_u32(p + 5) & 0x7fffffff};
}

void write_frame_header(uint8_t* p, uint32_t length, FrameType type, uint8_t frame_flags,
                        uint32_t stream_id) {
    p[0] = static_cast<uint8_t>(length >> 16);
    p[1] = static_cast<uint8_t>(length >> 8);
    p[2] = static_cast<uint8_t>(length);
    p[3] = static_cast<uint8_t>(type);
    p[4] = frame_flags;
    write_u32(p + 5, stream_id & 0x7fffffff);
}

FrameCheck check_frame(const FrameHeader& h, uint32_t max_frame_size) {
    const auto conn = [](uint32_t e) { return FrameCheck{e, true}; };
    // RFC 9113 §4.2: larger than we allow. A frame that could change the connection's state
    // (HEADERS, CONTINUATION, SETTINGS, and any on stream 0) is a connection error; for the
    // others a stream error would do, but the payload must be skipped either way: the
    // connection goes (as most servers do).
    if (h.length > max_frame_size)
        return conn(kFrameSizeError);
    const bool zero = h.stream_id == 0;
    switch (static_cast<FrameType>(h.type)) {
    case FrameType::data:
    case FrameType::headers:
    case FrameType::continuation:
        if (zero) // §6.1, §6.2, §6.10
            return conn(kProtocolError);
        break;
    case FrameType::priority:
        if (zero) // §6.3
            return conn(kProtocolError);
        if (h.length != 5)
            return {kFrameSizeError, false};
        break;
    case FrameType::rst_stream:
        if (zero) // §6.4
            return conn(kProtocolError);
        if (h.length != 4)
            return conn(kFrameSizeError);
        break;
    case FrameType::settings:
        if (!zero) // §6.5
            return conn(kProtocolError);
        if ((h.flags & flags::ack) ? h.length != 0 : h.length % 6 != 0)
            return conn(kFrameSizeError);
        break;
    case FrameType::push_promise: // §8.4: clients cannot push
        return conn(kProtocolError);
    case FrameType::ping:
        if (!zero) // §6.7
            return conn(kProtocolError);
        if (h.length != 8)
            return conn(kFrameSizeError);
        break;
    case FrameType::goaway:
        if (!zero) // §6.8
            return conn(kProtocolError);
        if (h.length < 8)
            return conn(kFrameSizeError);
        break;
    case FrameType::window_update: // §6.9: a bad length is a connection error
        if (h.length != 4)
            return conn(kFrameSizeError);
        break;
    default: // §4.1: unknown types are ignored
        break;
    }
    return {};
}

bool strip_padding(uint8_t frame_flags, const uint8_t*& payload, size_t& len) {
    if (!(frame_flags & flags::padded))
        return true;
    if (len == 0)
        return false;
    const size_t pad = payload[0];
    if (pad >= len) // §6.1: padding that fills the payload (with its length byte) or more
        return false;
    ++payload;
    len -= 1 + pad;
    return true;
}

uint8_t* write_rst_stream(uint8_t* p, uint32_t stream_id, uint32_t error) {
    write_frame_header(p, 4, FrameType::rst_stream, 0, stream_id);
    write_u32(p + 9, error);
    return p + 13;
}

uint8_t* write_window_update(uint8_t* p, uint32_t stream_id, uint32_t increment) {
    write_frame_header(p, 4, FrameType::window_update, 0, stream_id);
    write_u32(p + 9, increment & 0x7fffffff);
    return p + 13;
}

uint8_t* write_ping(uint8_t* p, uint8_t frame_flags, const uint8_t opaque[8]) {
    write_frame_header(p, 8, FrameType::ping, frame_flags, 0);
    for (int i = 0; i < 8; ++i)
        p[9 + i] = opaque[i];
    return p + 17;
}

uint8_t* write_goaway(uint8_t* p, uint32_t last_stream_id, uint32_t error) {
    write_frame_header(p, 8, FrameType::goaway, 0, 0);
    write_u32(p + 9, last_stream_id & 0x7fffffff);
    write_u32(p + 13, error);
    return p + 17;
}

uint8_t* write_settings_ack(uint8_t* p) {
    write_frame_header(p, 0, FrameType::settings, flags::ack, 0);
    return p + 9;
}

uint8_t* write_settings(uint8_t* p, const Setting* settings, size_t count) {
    write_frame_header(p, static_cast<uint32_t>(6 * count), FrameType::settings, 0, 0);
    p += 9;
    for (size_t i = 0; i < count; ++i) {
        p[0] = static_cast<uint8_t>(settings[i].id >> 8);
        p[1] = static_cast<uint8_t>(settings[i].id);
        write_u32(p + 2, settings[i].value);
        p += 6;
    }
    return p;
}

} // namespace wraith::http2
