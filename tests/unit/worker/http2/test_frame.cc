// HTTP/2 frame headers and the per-type checks (worker/http2/frame.h).
#include <catch2/catch.hpp>

#include "worker/http2/frame.h"

using namespace wraith::http2;

namespace {
FrameHeader hdr(uint32_t len, FrameType t, uint8_t fl, uint32_t sid) {
    return {len, uint8_t(t), fl, sid};
}
} // namespace

TEST_CASE("frame header round trip, reserved bit ignored") {
    uint8_t b[9];
    write_frame_header(b, 0x123456, FrameType::headers, 0x25, 0x7fffffff);
    FrameHeader h = parse_frame_header(b);
    CHECK(h.length == 0x123456);
    CHECK(h.type == 1);
    CHECK(h.flags == 0x25);
    CHECK(h.stream_id == 0x7fffffff);
    b[5] |= 0x80;
    CHECK(parse_frame_header(b).stream_id == 0x7fffffff);
}

TEST_CASE("frame checks: sizes and stream ids per type (RFC 9113 §6)") {
    const uint32_t max = 16384;
    CHECK(check_frame(hdr(16385, FrameType::data, 0, 1), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(1, FrameType::data, 0, 0), max).error == kProtocolError);
    CHECK(check_frame(hdr(8, FrameType::ping, 0, 1), max).error == kProtocolError);
    CHECK(check_frame(hdr(7, FrameType::ping, 0, 0), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(6, FrameType::settings, flags::ack, 0), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(7, FrameType::settings, 0, 0), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(6, FrameType::settings, 0, 1), max).error == kProtocolError);
    CHECK(check_frame(hdr(3, FrameType::rst_stream, 0, 1), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(3, FrameType::window_update, 0, 1), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(7, FrameType::goaway, 0, 0), max).error == kFrameSizeError);
    CHECK(check_frame(hdr(4, FrameType::push_promise, 0, 1), max).error == kProtocolError);
    FrameCheck prio = check_frame(hdr(4, FrameType::priority, 0, 1), max);
    CHECK(prio.error == kFrameSizeError);
    CHECK_FALSE(prio.connection); // a stream error
    CHECK_FALSE(check_frame(hdr(100, FrameType(0xfa), 0, 9), max));
    CHECK_FALSE(check_frame(hdr(8, FrameType::ping, 0, 0), max));
}

TEST_CASE("frame padding: stripped, or too long") {
    const uint8_t padded[] = {2, 'a', 'b', 0, 0};
    const uint8_t* p = padded;
    size_t len = sizeof(padded);
    REQUIRE(strip_padding(flags::padded, p, len));
    CHECK(len == 2);
    CHECK(p[0] == 'a');
    const uint8_t bad[] = {5, 'a', 0, 0, 0}; // 5 bytes of padding in a 5-byte payload
    p = bad;
    len = sizeof(bad);
    CHECK_FALSE(strip_padding(flags::padded, p, len));
    len = 0;
    CHECK_FALSE(strip_padding(flags::padded, p, len));
}
