// HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the per-type checks a frame must pass
// before its payload is looked at, and serialisation of the frames the server sends.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wraith::http2 {

// RFC 9113 §6.
enum class FrameType : uint8_t {
    data = 0x0,
    headers = 0x1,
    priority = 0x2,
    rst_stream = 0x3,
    settings = 0x4,
    push_promise = 0x5,
    ping = 0x6,
    goaway = 0x7,
    window_update = 0x8,
    continuation = 0x9,
};

namespace flags {
inline constexpr uint8_t end_stream = 0x1;
inline constexpr uint8_t ack = 0x1;
inline constexpr uint8_t end_headers = 0x4;
inline constexpr uint8_t padded = 0x8;
inline constexpr uint8_t priority = 0x20;
} // namespace flags

// RFC 9113 §7.
enum ErrorCode : uint32_t {
    kNoError = 0x0,
    kProtocolError = 0x1,
    kInternalError = 0x2,
    kFlowControlError = 0x3,
    kSettingsTimeout = 0x4,
    kStreamClosed = 0x5,
    kFrameSizeError = 0x6,
    kRefusedStream = 0x7,
    kCancel = 0x8,
    kCompressionError = 0x9,
    kConnectError = 0xa,
    kEnhanceYourCalm = 0xb,
    kInadequateSecurity = 0xc,
    kHttp11Required = 0xd,
};

// RFC 9113 §6.5.2, RFC 8441 §3, RFC 9218 §2.1.
enum SettingId : uint16_t {
    kHeaderTableSize = 0x1,
    kEnablePush = 0x2,
    kMaxConcurrentStreams = 0x3,
    kInitialWindowSize = 0x4,
    kMaxFrameSize = 0x5,
    kMaxHeaderListSize = 0x6,
    kEnableConnectProtocol = 0x8,
    kNoRfc7540Priorities = 0x9,
};

inline constexpr size_t kFrameHeaderSize = 9;
inline constexpr uint32_t kDefaultWindow = 65535;
inline constexpr uint32_t kMaxWindow = 0x7fffffff;
inline constexpr uint32_t kDefaultMaxFrameSize = 16384;
inline constexpr uint32_t kMaxMaxFrameSize = (1u << 24) - 1;
inline constexpr char kClientPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr size_t kClientPrefaceSize = sizeof(kClientPreface) - 1;

struct FrameHeader {
    uint32_t length;
    uint8_t type;
    uint8_t flags;
    uint32_t stream_id; // the reserved bit cleared
};

FrameHeader parse_frame_header(const uint8_t* p);
void write_frame_header(uint8_t* p, uint32_t length, FrameType type, uint8_t flags,
                        uint32_t stream_id);

inline uint32_t read_u32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline void write_u32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

// What a frame's header alone says is wrong with it (RFC 9113 §4.2 and each type's
// section): nothing, a stream error, or a connection error.
struct FrameCheck {
    uint32_t error = kNoError;
    bool connection = false; // a connection error (GOAWAY), else a stream error (RST_STREAM)
    explicit operator bool() const { return error != kNoError || connection; }
};
// `max_frame_size`: our SETTINGS_MAX_FRAME_SIZE.
FrameCheck check_frame(const FrameHeader& h, uint32_t max_frame_size);

// RFC 9113 §6.1, §6.2: removes the Pad Length byte and the padding of a PADDED frame from
// [payload, payload + len). False: the padding is as long as the payload or longer (a
// connection error of type PROTOCOL_ERROR).
bool strip_padding(uint8_t frame_flags, const uint8_t*& payload, size_t& len);

// Serialisers: each writes a whole frame at `p` (room for its size) and returns its end.
uint8_t* write_rst_stream(uint8_t* p, uint32_t stream_id, uint32_t error);
uint8_t* write_window_update(uint8_t* p, uint32_t stream_id, uint32_t increment);
uint8_t* write_ping(uint8_t* p, uint8_t frame_flags, const uint8_t opaque[8]);
uint8_t* write_goaway(uint8_t* p, uint32_t last_stream_id, uint32_t error);
uint8_t* write_settings_ack(uint8_t* p);
// A SETTINGS frame of `count` (id, value) pairs.
struct Setting {
    uint16_t id;
    uint32_t value;
};
uint8_t* write_settings(uint8_t* p, const Setting* settings, size_t count);

} // namespace wraith::http2
