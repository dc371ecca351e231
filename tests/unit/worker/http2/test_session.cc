// The HTTP/2 protocol core (worker/http2/session.h) driven without a worker: frames in, frames
// out, with a fake owner and fake streams. The exact error codes RFC 9113 asks for, flow
// control both ways, and input split at every byte.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "worker/http2/frame.h"
#include "worker/http2/hpack.h"
#include "worker/http2/session.h"

using namespace wraith;
using namespace wraith::http2;

namespace {

struct FakeStream : StreamState {
    explicit FakeStream(int32_t id) : StreamState(id) {}
    std::vector<std::pair<std::string, std::string>> fields;
    bool head = false, head_end = false, data_end = false, end_sent = false, closed = false;
    uint32_t close_code = 0;
    std::string received;
    std::string body; // response body still to send
    bool ended = false;

    bool on_field(std::string_view n, std::string_view v, bool) override {
        fields.emplace_back(std::string(n), std::string(v));
        return true;
    }
    void on_field_oversized() override {}
    void on_head(bool end) override {
        head = true;
        head_end = end;
    }
    void on_data(const uint8_t* d, size_t n) override {
        received.append(reinterpret_cast<const char*>(d), n);
    }
    void on_data_end() override { data_end = true; }
    void on_end_stream_sent() override { end_sent = true; }
    void on_closed(uint32_t code) override {
        closed = true;
        close_code = code;
    }
    size_t body_available() const override { return body.size(); }
    bool body_ended() const override { return ended; }
    size_t body_copy(uint8_t* dst, size_t n) override {
        std::memcpy(dst, body.data(), n);
        body.erase(0, n);
        return n;
    }
};

struct Frame {
    FrameHeader h;
    std::string payload;
};

struct Harness : SessionOwner {
    OutputBuffer out;
    SessionLimits limits;
    std::unique_ptr<Session> session;
    std::map<int32_t, std::unique_ptr<FakeStream>> streams;
    std::vector<Frame> frames; // parsed output
    uint32_t error = 0xffffffff;

    explicit Harness(SessionLimits l = {}) : limits(l) {
        session = std::make_unique<Session>(*this, out, limits);
        session->start();
    }
    StreamState* open_stream(int32_t id) override {
        auto s = std::make_unique<FakeStream>(id);
        auto* raw = s.get();
        streams[id] = std::move(s);
        return raw;
    }
    void stream_closed(StreamState*) override {}
    void ping_acked(const uint8_t*) override {}
    void connection_error(uint32_t e, const char*) override { error = e; }

    void feed(const std::string& bytes) {
        session->receive(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 1.0);
        drain();
    }
    void drain() {
        session->produce(1 << 20);
        while (out.pending() >= 9) {
            auto* p = reinterpret_cast<const uint8_t*>(out.data());
            FrameHeader h = parse_frame_header(p);
            REQUIRE(out.pending() >= 9 + h.length);
            frames.push_back({h, std::string(out.data() + 9, h.length)});
            out.consume(9 + h.length);
        }
    }
    const Frame* find(FrameType t, uint32_t sid = 0xffffffff) const {
        for (const Frame& f : frames)
            if (f.h.type == uint8_t(t) && (sid == 0xffffffff || f.h.stream_id == sid))
                return &f;
        return nullptr;
    }
    uint32_t goaway_code() const {
        const Frame* f = find(FrameType::goaway);
        return f ? read_u32(reinterpret_cast<const uint8_t*>(f->payload.data()) + 4) : 0xffffffff;
    }
    uint32_t rst_code(uint32_t sid) const {
        const Frame* f = find(FrameType::rst_stream, sid);
        return f ? read_u32(reinterpret_cast<const uint8_t*>(f->payload.data())) : 0xffffffff;
    }
};

std::string frame(FrameType t, uint8_t fl, uint32_t sid, const std::string& payload = "") {
    std::string out(9, '\0');
    write_frame_header(reinterpret_cast<uint8_t*>(out.data()), uint32_t(payload.size()), t, fl,
                       sid);
    return out + payload;
}

std::string settings(std::vector<std::pair<uint16_t, uint32_t>> kv = {}) {
    std::string p;
    for (auto [k, v] : kv) {
        p += char(k >> 8);
        p += char(k);
        p += char(v >> 24);
        p += char(v >> 16);
        p += char(v >> 8);
        p += char(v);
    }
    return frame(FrameType::settings, 0, 0, p);
}

std::string u32(uint32_t v) {
    std::string s(4, '\0');
    write_u32(reinterpret_cast<uint8_t*>(s.data()), v);
    return s;
}

// Literals without indexing or Huffman, names as given (the encoder would fold capitals).
std::string block(std::vector<std::pair<std::string, std::string>> fields) {
    std::string out;
    for (auto& [n, v] : fields) {
        out += '\0';
        out += char(n.size());
        out += n;
        out += char(v.size());
        out += v;
    }
    return out;
}

const std::vector<std::pair<std::string, std::string>> kGet = {
    {":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "h2.test"}};

std::string hello() {
    return std::string(kClientPreface, kClientPrefaceSize) + settings();
}

std::string get(uint32_t sid, uint8_t extra_flags = 0,
                std::vector<std::pair<std::string, std::string>> more = {}) {
    auto f = kGet;
    f.insert(f.end(), more.begin(), more.end());
    return frame(FrameType::headers, flags::end_headers | extra_flags, sid, block(f));
}

} // namespace

TEST_CASE("session: our SETTINGS go first; the client's are acknowledged") {
    Harness h;
    h.feed(hello());
    REQUIRE(h.frames.size() >= 3);
    CHECK(h.frames[0].h.type == uint8_t(FrameType::settings));
    CHECK(h.frames[0].h.flags == 0);
    CHECK(h.frames[1].h.type == uint8_t(FrameType::window_update));
    CHECK(h.frames[2].h.type == uint8_t(FrameType::settings));
    CHECK(h.frames[2].h.flags == flags::ack);
    CHECK_FALSE(h.session->terminated());
}

TEST_CASE("session: a bad preface or a frame before SETTINGS is PROTOCOL_ERROR") {
    Harness a;
    a.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(a.goaway_code() == kProtocolError);
    Harness b;
    b.feed(std::string(kClientPreface, kClientPrefaceSize) +
           frame(FrameType::ping, 0, 0, "12345678"));
    CHECK(b.goaway_code() == kProtocolError);
}

TEST_CASE("session: a GET opens a stream, its response goes out and closes it") {
    Harness h;
    h.feed(hello() + get(1, flags::end_stream));
    REQUIRE(h.streams.count(1));
    FakeStream& s = *h.streams[1];
    CHECK(s.head);
    CHECK(s.head_end);
    CHECK(s.fields.size() == 4);
    s.body = std::string(100, 'b');
    s.ended = true;
    uint8_t* p = h.session->begin_headers(16);
    p = HpackEncoder::status(p, 200);
    h.session->end_headers(s, p, false);
    h.session->resume(s);
    h.drain();
    const Frame* hd = h.find(FrameType::headers, 1);
    REQUIRE(hd);
    CHECK(uint8_t(hd->payload[0]) == 0x20); // table size update to 0 first
    const Frame* d = h.find(FrameType::data, 1);
    REQUIRE(d);
    CHECK(d->payload == std::string(100, 'b'));
    CHECK(d->h.flags == flags::end_stream);
    CHECK(s.end_sent);
    CHECK(s.closed);
    CHECK(h.session->open_streams() == 0);
}

TEST_CASE("session: stream id rules (RFC 9113 §5.1.1)") {
    Harness even;
    even.feed(hello() + get(2, flags::end_stream));
    CHECK(even.goaway_code() == kProtocolError);
    Harness down;
    down.feed(hello() + get(5) + get(3));
    CHECK(down.goaway_code() == kProtocolError);
    Harness idle_data;
    idle_data.feed(hello() + frame(FrameType::data, 0, 7, "x"));
    CHECK(idle_data.goaway_code() == kProtocolError);
}

TEST_CASE("session: malformed requests are stream errors (RFC 9113 §8.2, §8.3)") {
    struct Case {
        const char* what;
        std::vector<std::pair<std::string, std::string>> fields;
    };
    const Case cases[] = {
        {"uppercase", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"X-A", "1"}}},
        {"connection",
         {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"connection", "close"}}},
        {"te", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"te", "gzip"}}},
        {"no path", {{":method", "GET"}, {":scheme", "http"}}},
        {"dup method",
         {{":method", "GET"}, {":method", "GET"}, {":scheme", "http"}, {":path", "/"}}},
        {"pseudo after", {{":method", "GET"}, {":scheme", "http"}, {"a", "b"}, {":path", "/"}}},
        {"status", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":status", "200"}}},
        {"bad value", {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"a", " b"}}},
        {"connect path", {{":method", "CONNECT"}, {":authority", "a:1"}, {":path", "/"}}},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        Harness h;
        h.feed(hello() + frame(FrameType::headers, flags::end_headers | flags::end_stream, 1,
                               block(c.fields)));
        CHECK(h.rst_code(1) == kProtocolError);
        CHECK_FALSE(h.streams[1]->head);
        CHECK_FALSE(h.session->terminated());
    }
    Harness ok;
    ok.feed(hello() + get(1, flags::end_stream, {{"te", "trailers"}}));
    CHECK(ok.streams[1]->head);
}

TEST_CASE("session: content-length against DATA (RFC 9113 §8.1.1)") {
    Harness h;
    h.feed(hello() + get(1, 0, {{"content-length", "5"}}) +
           frame(FrameType::data, flags::end_stream, 1, "abc"));
    CHECK(h.rst_code(1) == kProtocolError);
    Harness ok;
    ok.feed(hello() + get(1, 0, {{"content-length", "3"}}) +
            frame(FrameType::data, flags::end_stream, 1, "abc"));
    CHECK(ok.streams[1]->received == "abc");
    CHECK(ok.streams[1]->data_end);
}

TEST_CASE("session: flow control errors and windows") {
    Harness over;
    over.feed(hello() + frame(FrameType::window_update, 0, 0, u32(0x7fffffff)));
    CHECK(over.goaway_code() == kFlowControlError);
    Harness zero;
    zero.feed(hello() + frame(FrameType::window_update, 0, 0, u32(0)));
    CHECK(zero.goaway_code() == kProtocolError);
    Harness bad;
    bad.feed(hello() + settings({{kInitialWindowSize, 0x80000000u}}));
    CHECK(bad.goaway_code() == kFlowControlError);

    // A 100000-byte body: 65535 go, then a larger initial window lets the rest go.
    Harness h;
    h.feed(hello() + get(1, flags::end_stream));
    FakeStream& s = *h.streams[1];
    s.body = std::string(100000, 'z');
    s.ended = true;
    uint8_t* p = h.session->begin_headers(16);
    h.session->end_headers(s, HpackEncoder::status(p, 200), false);
    h.session->resume(s);
    h.drain();
    size_t sent = 0;
    for (const Frame& f : h.frames)
        if (f.h.type == uint8_t(FrameType::data))
            sent += f.h.length;
    CHECK(sent == 65535);
    h.feed(settings({{kInitialWindowSize, 200000}}) +
           frame(FrameType::window_update, 0, 0, u32(100000)));
    sent = 0;
    for (const Frame& f : h.frames)
        if (f.h.type == uint8_t(FrameType::data))
            sent += f.h.length;
    CHECK(sent == 100000);
    CHECK(s.closed);
}

TEST_CASE("session: SETTINGS values out of range, PING size, PRIORITY on itself") {
    Harness push;
    push.feed(hello() + settings({{kEnablePush, 2}}));
    CHECK(push.goaway_code() == kProtocolError);
    Harness small;
    small.feed(hello() + settings({{kMaxFrameSize, 16383}}));
    CHECK(small.goaway_code() == kProtocolError);
    Harness ping;
    ping.feed(hello() + frame(FrameType::ping, 0, 0, "1234567"));
    CHECK(ping.goaway_code() == kFrameSizeError);
    Harness prio;
    prio.feed(hello() + frame(FrameType::priority, 0, 3, u32(3) + "\x10"));
    CHECK(prio.rst_code(3) == kProtocolError);
    CHECK_FALSE(prio.session->terminated());
    Harness unknown;
    unknown.feed(hello() + frame(FrameType(0x42), 0, 0, "xyz") + settings({{0x99, 7}}));
    CHECK_FALSE(unknown.session->terminated());
}

TEST_CASE("session: CONTINUATION assembly, interleaving is PROTOCOL_ERROR") {
    std::string b = block(kGet);
    Harness h;
    h.feed(hello() + frame(FrameType::headers, flags::end_stream, 1, b.substr(0, 5)) +
           frame(FrameType::continuation, 0, 1, b.substr(5, 5)) +
           frame(FrameType::continuation, flags::end_headers, 1, b.substr(10)));
    CHECK(h.streams[1]->head);
    Harness bad;
    bad.feed(hello() + frame(FrameType::headers, flags::end_stream, 1, b.substr(0, 5)) +
             frame(FrameType::ping, 0, 0, "12345678"));
    CHECK(bad.goaway_code() == kProtocolError);
}

TEST_CASE("session: refused beyond SETTINGS_MAX_CONCURRENT_STREAMS, HPACK errors close") {
    SessionLimits l;
    l.max_concurrent_streams = 1;
    Harness h(l);
    h.feed(hello() + get(1) + get(3));
    CHECK(h.streams.count(1));
    CHECK(h.rst_code(3) == kRefusedStream);
    Harness bad;
    bad.feed(hello() + frame(FrameType::headers, flags::end_headers, 1, "\x80"));
    CHECK(bad.goaway_code() == kCompressionError);
}

TEST_CASE("session: input split at every byte gives the same result") {
    std::string input = hello() + get(1, 0, {{"content-length", "4"}}) +
                        frame(FrameType::data, flags::padded, 1,
                              std::string("\x02"
                                          "ab\0\0",
                                          5)) +
                        frame(FrameType::data, flags::end_stream, 1, "cd");
    Harness h;
    for (char c : input)
        h.feed(std::string(1, c));
    REQUIRE(h.streams.count(1));
    CHECK(h.streams[1]->received == "abcd");
    CHECK(h.streams[1]->data_end);
    CHECK_FALSE(h.session->terminated());
}
