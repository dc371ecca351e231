// libFuzzer target for the server side of HTTP/2 (worker/http2/session.h): arbitrary bytes
// after a valid preface and SETTINGS, fed in pieces, to a session whose fake streams answer
// (headers, bodies, trailers, resets) as the input's first bytes decide. Besides memory safety
// it checks what the connection relies on: every frame the session writes is well formed and
// within the largest SETTINGS_MAX_FRAME_SIZE, no PUSH_PROMISE goes out, a stream hears
// nothing after it closed, and DATA is only pulled for bytes the stream has.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

struct FuzzStream : StreamState {
    explicit FuzzStream(int32_t id) : StreamState(id) {}
    std::string body;
    bool ended = false;
    bool closed = false;
    bool head = false;
    Header trailer{"x-trailer", "1"};
    bool with_trailer = false;
    size_t fields = 0;

    bool on_field(std::string_view, std::string_view, bool) override {
        FUZZ_CHECK(!closed);
        return ++fields < 1000;
    }
    void on_field_oversized() override { FUZZ_CHECK(!closed); }
    void on_head(bool) override {
        FUZZ_CHECK(!closed);
        head = true;
    }
    void on_data(const uint8_t*, size_t) override { FUZZ_CHECK(!closed); }
    void on_data_end() override { FUZZ_CHECK(!closed); }
    void on_end_stream_sent() override { FUZZ_CHECK(!closed); }
    void on_closed(uint32_t) override {
        FUZZ_CHECK(!closed);
        closed = true;
    }
    size_t body_available() const override { return body.size(); }
    bool body_ended() const override { return ended; }
    size_t body_copy(uint8_t* dst, size_t n) override {
        FUZZ_CHECK(!closed);
        FUZZ_CHECK(n <= body.size());
        std::memcpy(dst, body.data(), n);
        body.erase(0, n);
        return n;
    }
    std::span<const Header> trailers() const override {
        return with_trailer ? std::span<const Header>(&trailer, 1) : std::span<const Header>();
    }
};

struct Owner : SessionOwner {
    std::map<int32_t, std::unique_ptr<FuzzStream>> streams;
    uint8_t mode = 0;
    StreamState* open_stream(int32_t id) override {
        if (streams.size() > 64)
            return nullptr;
        auto s = std::make_unique<FuzzStream>(id);
        auto* raw = s.get();
        streams[id] = std::move(s);
        return raw;
    }
    void stream_closed(StreamState* s) override { FUZZ_CHECK(static_cast<FuzzStream*>(s)->closed); }
    void ping_acked(const uint8_t*) override {}
    void connection_error(uint32_t, const char*) override {}
};

// Checks the session's output frames and tracks the windows the client gave.
struct OutputCheck {
    std::string pending;
    void take(OutputBuffer& out) {
        pending.append(out.data(), out.pending());
        out.consume(out.pending());
        size_t pos = 0;
        while (pending.size() - pos >= 9) {
            FrameHeader h =
                parse_frame_header(reinterpret_cast<const uint8_t*>(pending.data() + pos));
            FUZZ_CHECK(h.length <= kMaxMaxFrameSize);
            if (pending.size() - pos < 9 + h.length)
                break;
            FUZZ_CHECK(h.type <= 9);
            FUZZ_CHECK(h.type != uint8_t(FrameType::push_promise));
            pos += 9 + h.length;
        }
        pending.erase(0, pos);
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2)
        return 0;
    const uint8_t mode = data[0];
    const uint8_t split = static_cast<uint8_t>(data[1] | 1);
    data += 2;
    size -= 2;

    Owner owner;
    OutputBuffer out;
    SessionLimits limits;
    limits.max_concurrent_streams = 16;
    limits.initial_window_size = 65535;
    limits.connection_window_size = 1 << 20;
    limits.max_header_list_size = 4096;
    limits.max_continuations = 4;
    Session session(owner, out, limits);
    session.start();
    OutputCheck check;

    std::string input(kClientPreface, kClientPrefaceSize);
    input += std::string("\0\0\0\x04\0\0\0\0\0", 9); // empty SETTINGS
    input.append(reinterpret_cast<const char*>(data), size);

    double now = 1.0;
    size_t pos = 0;
    while (pos < input.size()) {
        size_t n = std::min<size_t>(split, input.size() - pos);
        bool go = session.receive(reinterpret_cast<const uint8_t*>(input.data() + pos), n, now);
        pos += n;
        now += 0.001;
        // Answer the streams that have a head, as the input's mode says.
        for (auto& [id, s] : owner.streams) {
            if (s->closed || !s->head)
                continue;
            s->head = false;
            const int what = static_cast<int>((mode + static_cast<uint32_t>(id)) % 5);
            if (what == 4) {
                session.reset(*s, kInternalError);
                continue;
            }
            uint8_t* p = session.begin_headers(64);
            p = HpackEncoder::status(p, 200);
            p = HpackEncoder::field(p, "content-type", "text/plain");
            const bool end = what == 0;
            session.end_headers(*s, p, end);
            if (!end) {
                s->body.assign(static_cast<size_t>(mode) * 300 + static_cast<size_t>(id) % 5000,
                               'x');
                s->ended = what != 3;
                s->with_trailer = what == 2;
                session.resume(*s);
            }
        }
        session.produce(64 * 1024);
        check.take(out);
        FUZZ_CHECK(out.pending() == 0);
        if (!go)
            break;
    }
    session.release_idle();
    session.forget_streams();
    return 0;
}
