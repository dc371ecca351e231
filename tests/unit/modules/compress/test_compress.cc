// On-the-fly compression (modules/compress): Accept-Encoding negotiation, the decision made at
// send_headers, header rewriting, encoder round trips and backpressure on send_file.
#include <catch2/catch.hpp>

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <toml++/toml.h>
#include <unistd.h>

#include "common/config.h"
#include "modules/compress/compress.h"
#include "modules/compress/compress_writer.h"
#include "support/recording_writer.h"

using namespace wraith;
using namespace wraith::modtest;

namespace {

std::string gunzip(const std::string& in) {
    z_stream z{};
    REQUIRE(inflateInit2(&z, 16 + 15) == Z_OK);
    std::string out;
    std::array<char, 65536> buf;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = uInt(in.size());
    int rc = Z_OK;
    while (rc == Z_OK) {
        z.next_out = reinterpret_cast<Bytef*>(buf.data());
        z.avail_out = uInt(buf.size());
        rc = inflate(&z, Z_NO_FLUSH);
        out.append(buf.data(), buf.size() - z.avail_out);
        if (rc == Z_BUF_ERROR && z.avail_in == 0)
            break;
    }
    CHECK(rc == Z_STREAM_END);
    CHECK(z.avail_in == 0); // nothing after the gzip member
    inflateEnd(&z);
    return out;
}

std::string unbrotli(const std::string& in, size_t expected_size) {
    std::string out(expected_size + 16, '\0');
    size_t size = out.size();
    auto rc = BrotliDecoderDecompress(in.size(), reinterpret_cast<const uint8_t*>(in.data()), &size,
                                      reinterpret_cast<uint8_t*>(out.data()));
    CHECK(rc == BROTLI_DECODER_RESULT_SUCCESS);
    out.resize(rc == BROTLI_DECODER_RESULT_SUCCESS ? size : 0);
    return out;
}

std::string unzstd(const std::string& in, size_t expected_size) {
    std::string out(expected_size + 16, '\0');
    size_t rc = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    CHECK_FALSE(ZSTD_isError(rc));
    out.resize(ZSTD_isError(rc) ? 0 : rc);
    return out;
}

std::string decode(const std::string& coding, const std::string& in, size_t expected) {
    if (coding == "gzip")
        return gunzip(in);
    if (coding == "br")
        return unbrotli(in, expected);
    if (coding == "zstd")
        return unzstd(in, expected);
    FAIL("unknown coding " << coding);
    return {};
}

// Text that compresses but not trivially: pseudo-random words.
std::string sample_text(size_t size, uint32_t seed = 1) {
    static const char* words[] = {"wraith ",  "serves ",  "static ", "files, ",  "proxies ",
                                  "HTTP/3 ",  "quickly ", "<div> ",  "</div>\n", "0123 ",
                                  "{\"k\": ", "true} ",   "lorem ",  "ipsum ",   "\t"};
    std::string s;
    s.reserve(size + 16);
    uint32_t x = seed;
    while (s.size() < size) {
        x = x * 1664525u + 1013904223u;
        s += words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        if ((x & 0xff) == 7)
            s += char('A' + (x >> 24) % 26);
    }
    s.resize(size);
    return s;
}

// A temp file holding `content`, removed with the object.
struct TempFile {
    std::string path;
    int fd = -1;
    explicit TempFile(const std::string& content) {
        char name[] = "/tmp/wraith-compress-XXXXXX";
        fd = mkstemp(name);
        REQUIRE(fd >= 0);
        path = name;
        size_t done = 0;
        while (done < content.size()) {
            ssize_t n = ::write(fd, content.data() + done, content.size() - done);
            REQUIRE(n > 0);
            done += size_t(n);
        }
    }
    ~TempFile() {
        ::close(fd);
        ::unlink(path.c_str());
    }
};

CompressFilter default_filter() {
    return CompressFilter(CompressOptions{});
}

ResponseHead html_head(int64_t length = -1) {
    ResponseHead h;
    h.status = 200;
    h.headers.add("content-type", "text/html; charset=utf-8");
    h.content_length = length;
    return h;
}

// Wraps `next` for a request with `accept`; REQUIREs a CompressWriter.
CompressWriter& wrap_for(const CompressFilter& f, TestExchange& ex, ResponseWriter& next,
                         std::string_view accept = "gzip, deflate, br, zstd") {
    ex.req.headers.add("accept-encoding", accept);
    ResponseWriter* w = f.wrap(ex.req, next);
    REQUIRE(w != &next);
    auto* cw = dynamic_cast<CompressWriter*>(w);
    REQUIRE(cw != nullptr);
    return *cw;
}

} // namespace

// --- Options and type matching ---------------------------------------------------------------

TEST_CASE("content types match by type, case-insensitively, with wildcards", "[compress]") {
    CompressFilter f = default_filter();
    CHECK(f.type_matches("text/html"));
    CHECK(f.type_matches("text/html; charset=utf-8"));
    CHECK(f.type_matches("TEXT/HTML;charset=utf-8"));
    CHECK(f.type_matches(" text/css "));
    CHECK(f.type_matches("application/json"));
    CHECK(f.type_matches("image/svg+xml"));
    CHECK(f.type_matches("application/wasm"));
    CHECK(f.type_matches("font/ttf"));
    CHECK_FALSE(f.type_matches("image/png"));
    CHECK_FALSE(f.type_matches("font/woff2"));
    CHECK_FALSE(f.type_matches("text/htmlx"));
    CHECK_FALSE(f.type_matches("text/htm"));
    CHECK_FALSE(f.type_matches(""));
    CHECK_FALSE(f.type_matches("; charset=utf-8"));
    CHECK_FALSE(f.type_matches("application/octet-stream"));

    CompressOptions o;
    o.types = {"text/*", "application/json"};
    CompressFilter w(o);
    CHECK(w.type_matches("text/anything; x=y"));
    CHECK(w.type_matches("Text/Event-Stream"));
    CHECK(w.type_matches("application/json"));
    CHECK_FALSE(w.type_matches("text/"));
    CHECK_FALSE(w.type_matches("textual/html"));
    CHECK_FALSE(w.type_matches("application/xml"));

    o.types = {"*/*"};
    CHECK(CompressFilter(o).type_matches("image/png"));
}

// --- wrap() ------------------------------------------------------------------------------------

TEST_CASE("wrap passes the writer through without an acceptable coding", "[compress]") {
    CompressFilter f = default_filter();
    RecordingWriter next;
    for (const char* accept : {"", "identity", "deflate", "gzip;q=0", "*;q=0"}) {
        TestExchange ex;
        ex.req.headers.add("accept-encoding", accept);
        CHECK(f.wrap(ex.req, next) == &next);
    }
    TestExchange none;
    CHECK(f.wrap(none.req, next) == &next);
}

TEST_CASE("wrap joins several Accept-Encoding fields", "[compress]") {
    CompressOptions o;
    o.encodings = {"gzip", "br"};
    CompressFilter f(o);
    RecordingWriter next;
    TestExchange ex;
    ex.req.headers.add("accept-encoding", "gzip;q=0.1");
    ex.req.headers.add("user-agent", "test");
    ex.req.headers.add("accept-encoding", "br");
    ResponseWriter* w = f.wrap(ex.req, next);
    REQUIRE(w != &next);
    ResponseHead head = html_head();
    w->send_headers(head, false);
    CHECK(next.header("content-encoding") == "br");

    TestExchange ex2;
    ex2.req.headers.add("accept-encoding", "gzip");
    ex2.req.headers.add("accept-encoding", "gzip;q=0");
    CHECK(f.wrap(ex2.req, next) == &next);
}

// --- Round trips ------------------------------------------------------------------------------

TEST_CASE("send_body round-trips through every coding", "[compress]") {
    const std::string text = sample_text(200000);
    for (const char* coding : {"gzip", "br", "zstd"}) {
        DYNAMIC_SECTION("coding " << coding) {
            CompressFilter f = default_filter();
            TestExchange ex;
            RecordingWriter next;
            CompressWriter& w = wrap_for(f, ex, next, coding);
            ResponseHead head = html_head(int64_t(text.size()));
            head.headers.add("content-length", std::to_string(text.size()));
            head.headers.add("etag", "\"5f3a-1234\"");
            head.headers.add("accept-ranges", "bytes");
            w.send_headers(head, false);
            CHECK(w.compressing());
            CHECK(next.status == 200);
            CHECK(next.content_length == -1);
            CHECK_FALSE(next.has_header("content-length"));
            CHECK_FALSE(next.has_header("accept-ranges"));
            CHECK(next.header("content-encoding") == coding);
            CHECK(next.header("vary") == "accept-encoding");
            CHECK(next.header("etag") == "\"5f3a-1234-" + std::string(coding) + "\"");
            CHECK_FALSE(next.headers_end);

            // Uneven chunks, including empty ones.
            size_t at = 0, step = 1;
            while (at < text.size()) {
                size_t n = std::min(step, text.size() - at);
                CHECK(w.send_body(std::string_view(text).substr(at, n), false) ==
                      ResponseWriter::Result::ok);
                at += n;
                step = step * 3 + 7;
                CHECK(w.send_body({}, false) == ResponseWriter::Result::ok);
            }
            CHECK(w.send_body({}, true) == ResponseWriter::Result::ok);
            CHECK(next.ended);
            CHECK(next.calls_after_end == 0);
            CHECK(next.body.size() < text.size() / 2);
            CHECK(decode(coding, next.body, text.size()) == text);
            CHECK(w.body_bytes_sent() == next.body.size());
            CHECK(w.headers_sent());
        }
    }
}

TEST_CASE("end_stream on the last data chunk finishes the stream", "[compress]") {
    const std::string text = sample_text(5000, 7);
    for (const char* coding : {"gzip", "br", "zstd"}) {
        CompressFilter f = default_filter();
        TestExchange ex;
        RecordingWriter next;
        CompressWriter& w = wrap_for(f, ex, next, coding);
        ResponseHead head = html_head();
        w.send_headers(head, false);
        w.send_body(text, true);
        INFO(coding);
        CHECK(next.ended);
        CHECK(decode(coding, next.body, text.size()) == text);
        // Nothing may follow end_stream.
        CHECK(w.send_body("more", true) == ResponseWriter::Result::closed);
        CHECK(next.calls_after_end == 0);
    }
}

TEST_CASE("levels from the options reach the encoders", "[compress]") {
    const std::string text = sample_text(300000, 3);
    auto size_at = [&](const char* coding, int level) {
        CompressOptions o;
        o.gzip_level = o.brotli_level = o.zstd_level = level;
        CompressFilter f(o);
        TestExchange ex;
        RecordingWriter next;
        CompressWriter& w = wrap_for(f, ex, next, coding);
        ResponseHead head = html_head();
        w.send_headers(head, false);
        w.send_body(text, true);
        CHECK(decode(coding, next.body, text.size()) == text);
        return next.body.size();
    };
    CHECK(size_at("gzip", 9) < size_at("gzip", 1));
    CHECK(size_at("br", 9) < size_at("br", 1));
    CHECK(size_at("zstd", 15) < size_at("zstd", 1));
}

TEST_CASE("small known bodies still round-trip with shrunk windows", "[compress]") {
    for (size_t size : {size_t(1024), size_t(1500), size_t(40000), size_t(600000)}) {
        const std::string text = sample_text(size, uint32_t(size));
        for (const char* coding : {"gzip", "br", "zstd"}) {
            CompressFilter f = default_filter();
            TestExchange ex;
            RecordingWriter next;
            CompressWriter& w = wrap_for(f, ex, next, coding);
            ResponseHead head = html_head(int64_t(size));
            w.send_headers(head, false);
            w.send_body(text, true);
            INFO(coding << " " << size);
            CHECK(decode(coding, next.body, text.size()) == text);
        }
    }
}

// --- The decision at send_headers ---------------------------------------------------------------

TEST_CASE("responses that must not be compressed pass through untouched", "[compress]") {
    const std::string text = sample_text(4096);
    struct Case {
        const char* name;
        std::function<void(ResponseHead&)> edit;
        bool end_stream = false;
    };
    std::vector<Case> cases{
        {"status 404", [](ResponseHead& h) { h.status = 404; }},
        {"status 206", [](ResponseHead& h) { h.status = 206; }},
        {"status 304", [](ResponseHead& h) { h.status = 304; }},
        {"already encoded", [](ResponseHead& h) { h.headers.add("content-encoding", "gzip"); }},
        {"identity encoding",
         [](ResponseHead& h) { h.headers.add("content-encoding", "identity"); }},
        {"image", [](ResponseHead& h) { h.headers.set("content-type", "image/png"); }},
        {"no content-type", [](ResponseHead& h) { h.headers.remove("content-type"); }},
        {"below min_size", [](ResponseHead& h) { h.content_length = 1023; }},
        {"empty", [](ResponseHead& h) { h.content_length = 0; }},
        {"no-transform",
         [](ResponseHead& h) { h.headers.add("cache-control", "public, No-Transform"); }},
        {"no-transform in a second field",
         [](ResponseHead& h) {
             h.headers.add("cache-control", "max-age=60");
             h.headers.add("cache-control", "no-transform");
         }},
        {"headers end the stream", [](ResponseHead&) {}, true},
    };
    for (const Case& c : cases) {
        DYNAMIC_SECTION(c.name) {
            CompressFilter f = default_filter();
            TestExchange ex;
            RecordingWriter next;
            CompressWriter& w = wrap_for(f, ex, next, "gzip");
            ResponseHead head = html_head(4096);
            head.headers.add("etag", "\"abc\"");
            c.edit(head);
            const int64_t length = head.content_length;
            const size_t encodings = head.headers.count("content-encoding");
            w.send_headers(head, c.end_stream);
            CHECK_FALSE(w.compressing());
            CHECK(next.content_length == length);
            CHECK(next.header("etag") == "\"abc\"");
            CHECK(next.header("vary").empty());
            CHECK(next.header_count("content-encoding") == encodings);
            if (!c.end_stream) {
                w.send_body(text, true);
                CHECK(next.body == text);
            }
        }
    }
}

TEST_CASE("min_size applies only to known lengths", "[compress]") {
    CompressOptions o;
    o.min_size = 100;
    CompressFilter f(o);
    for (int64_t length : {int64_t(100), int64_t(-1), int64_t(1 << 20)}) {
        TestExchange ex;
        RecordingWriter next;
        CompressWriter& w = wrap_for(f, ex, next, "gzip");
        ResponseHead head = html_head(length);
        w.send_headers(head, false);
        CHECK(w.compressing());
    }
    TestExchange ex;
    RecordingWriter next;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head(99);
    w.send_headers(head, false);
    CHECK_FALSE(w.compressing());
}

TEST_CASE("a pass-through response keeps the zero-copy file path", "[compress]") {
    const std::string text = sample_text(10000);
    TempFile file(text);
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head(int64_t(text.size()));
    head.headers.set("content-type", "video/mp4");
    w.send_headers(head, false);
    CHECK(w.send_file(file.fd, 0, text.size(), true) == ResponseWriter::Result::ok);
    CHECK(next.file_calls == 1);
    CHECK(next.body == text);
}

TEST_CASE("vary is added once and merged with existing names", "[compress]") {
    auto vary_after = [](std::vector<std::string> existing) {
        CompressFilter f = default_filter();
        TestExchange ex;
        RecordingWriter next;
        CompressWriter& w = wrap_for(f, ex, next, "gzip");
        ResponseHead head = html_head();
        for (const auto& v : existing)
            head.headers.add("vary", v);
        w.send_headers(head, false);
        std::vector<std::string> out;
        for (const auto& [n, v] : next.headers)
            if (n == "vary")
                out.push_back(v);
        return out;
    };
    using V = std::vector<std::string>;
    CHECK(vary_after({}) == V{"accept-encoding"});
    CHECK(vary_after({"origin"}) == V{"origin, accept-encoding"});
    CHECK(vary_after({"Origin, Accept-Encoding"}) == V{"Origin, Accept-Encoding"});
    CHECK(vary_after({"accept-encoding"}) == V{"accept-encoding"});
    CHECK(vary_after({"*"}) == V{"*"});
    CHECK(vary_after({""}) == V{"accept-encoding"});
    CHECK(vary_after({"origin", "cookie"}) == V{"origin", "cookie", "accept-encoding"});
    CHECK(vary_after({"origin", "accept-encoding"}) == V{"origin", "accept-encoding"});
}

TEST_CASE("etags become coding-specific", "[compress]") {
    auto etag_after = [](const char* coding, std::string etag) {
        CompressFilter f = default_filter();
        TestExchange ex;
        RecordingWriter next;
        CompressWriter& w = wrap_for(f, ex, next, coding);
        ResponseHead head = html_head();
        head.headers.add("etag", etag);
        w.send_headers(head, false);
        return next.has_header("etag") ? next.header("etag") : std::string("<none>");
    };
    CHECK(etag_after("gzip", "\"abc\"") == "\"abc-gzip\"");
    CHECK(etag_after("br", "\"abc\"") == "\"abc-br\"");
    CHECK(etag_after("zstd", "\"abc\"") == "\"abc-zstd\"");
    CHECK(etag_after("gzip", "W/\"abc\"") == "W/\"abc-gzip\"");
    CHECK(etag_after("gzip", "\"\"") == "\"-gzip\"");
    CHECK(etag_after("gzip", " \"x\" ") == "\"x-gzip\"");
    CHECK(etag_after("gzip", "abc") == "<none>"); // not an entity-tag: dropped
    CHECK(etag_after("gzip", "\"abc") == "<none>");
    CHECK(etag_after("gzip", "W/abc") == "<none>");
    CHECK(etag_after("gzip", "\"") == "<none>");
}

TEST_CASE("HEAD gets the compressed response's headers and no body", "[compress]") {
    CompressFilter f = default_filter();
    for (bool end_at_headers : {true, false}) {
        TestExchange ex("HEAD");
        RecordingWriter next;
        CompressWriter& w = wrap_for(f, ex, next, "br");
        ResponseHead head = html_head(50000);
        head.headers.add("etag", "\"h\"");
        w.send_headers(head, end_at_headers);
        CHECK(w.compressing());
        CHECK(next.header("content-encoding") == "br");
        CHECK(next.header("vary") == "accept-encoding");
        CHECK(next.header("etag") == "\"h-br\"");
        CHECK(next.content_length == -1);
        CHECK(next.headers_end == end_at_headers);
        if (!end_at_headers)
            w.send_body("ignored body", true);
        CHECK(next.ended);
        CHECK(next.body.empty());
        CHECK(next.calls_after_end == 0);
    }
    // A HEAD that would not be compressed is left alone.
    TestExchange ex("HEAD");
    RecordingWriter next;
    CompressWriter& w = wrap_for(f, ex, next, "br");
    ResponseHead head = html_head(10);
    w.send_headers(head, true);
    CHECK_FALSE(next.has_header("content-encoding"));
    CHECK(next.content_length == 10);
}

// --- send_file and backpressure ----------------------------------------------------------------

TEST_CASE("send_file compresses a multi-megabyte file under backpressure", "[compress]") {
    const std::string text = sample_text(5 * 1024 * 1024 + 12345, 42);
    TempFile file(text);
    for (const char* coding : {"gzip", "br", "zstd"}) {
        DYNAMIC_SECTION("coding " << coding) {
            CompressFilter f = default_filter();
            TestExchange ex;
            RecordingWriter next;
            next.block_after_bytes = 8192;
            CompressWriter& w = wrap_for(f, ex, next, coding);
            ResponseHead head = html_head(int64_t(text.size()));
            w.send_headers(head, false);

            int caller_wakeups = 0;
            ResponseWriter::Result r = w.send_file(file.fd, 0, text.size(), true);
            CHECK(r == ResponseWriter::Result::blocked);
            CHECK_FALSE(next.ended); // stopped reading at the first blocked
            // The caller waits for on_writable, as the contract says; the transport drains.
            w.on_writable([&] { ++caller_wakeups; });
            int rounds = next.drain_all();
            CHECK(rounds > 1);
            CHECK(next.ended);
            CHECK(caller_wakeups == 1);
            CHECK(next.calls_after_end == 0);
            CHECK(next.file_calls == 0);
            CHECK(next.blocked_episodes > 1);
            // Once blocked, the pump stops mid-chunk: at most one output chunk follows.
            CHECK(next.max_bytes_while_blocked <= CompressWriter::out_chunk);
            CHECK(decode(coding, next.body, text.size()) == text);
        }
    }
}

TEST_CASE("send_file ranges and bodies interleave in order", "[compress]") {
    const std::string text = sample_text(700000, 9);
    TempFile file(text);
    for (const char* coding : {"gzip", "br", "zstd"}) {
        CompressFilter f = default_filter();
        TestExchange ex;
        RecordingWriter next;
        next.block_after_bytes = 4096;
        CompressWriter& w = wrap_for(f, ex, next, coding);
        ResponseHead head = html_head();
        w.send_headers(head, false);

        std::string expected;
        auto wait = [&](ResponseWriter::Result r) {
            REQUIRE(r != ResponseWriter::Result::closed);
            if (r != ResponseWriter::Result::blocked)
                return;
            bool woke = false;
            w.on_writable([&] { woke = true; });
            while (!woke && next.drain()) {
            }
            REQUIRE(woke);
        };
        wait(w.send_body("<header>", false));
        expected += "<header>";
        wait(w.send_file(file.fd, 1000, 300000, false));
        expected += text.substr(1000, 300000);
        wait(w.send_body("<middle>", false));
        expected += "<middle>";
        wait(w.send_file(file.fd, 0, 0, false)); // an empty range
        wait(w.send_file(file.fd, 400000, 300000, false));
        expected += text.substr(400000, 300000);
        wait(w.send_body("<footer>", true));
        expected += "<footer>";
        next.drain_all();
        INFO(coding);
        CHECK(next.ended);
        CHECK(decode(coding, next.body, expected.size()) == expected);
    }
}

TEST_CASE("a caller that ignores blocked still gets its bytes in order", "[compress]") {
    const std::string text = sample_text(500000, 11);
    TempFile file(text);
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    next.block_after_bytes = 1024;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head();
    w.send_headers(head, false);
    CHECK(w.send_file(file.fd, 0, text.size(), false) == ResponseWriter::Result::blocked);
    // Without waiting: the pending range is finished before this body.
    CHECK(w.send_body("tail", true) == ResponseWriter::Result::blocked);
    next.drain_all();
    CHECK(next.ended);
    CHECK(gunzip(next.body) == text + "tail");
}

TEST_CASE("send_file ending the stream with an empty range", "[compress]") {
    TempFile file("");
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    CompressWriter& w = wrap_for(f, ex, next, "zstd");
    ResponseHead head = html_head();
    w.send_headers(head, false);
    CHECK(w.send_body("abc", false) == ResponseWriter::Result::ok);
    CHECK(w.send_file(file.fd, 0, 0, true) == ResponseWriter::Result::ok);
    CHECK(next.ended);
    CHECK(unzstd(next.body, 3) == "abc");
}

TEST_CASE("a file shorter than promised resets the stream", "[compress]") {
    TempFile file("short");
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head();
    w.send_headers(head, false);
    CHECK(w.send_file(file.fd, 0, 100, true) == ResponseWriter::Result::closed);
    CHECK(next.was_reset);
    CHECK_FALSE(next.ended);
    CHECK(w.send_body("x", true) == ResponseWriter::Result::closed);
}

TEST_CASE("closed from the next writer propagates and stops reading", "[compress]") {
    const std::string text = sample_text(1 << 20, 5);
    TempFile file(text);
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head();
    w.send_headers(head, false);
    next.close_with = ResponseWriter::Result::closed;
    CHECK(w.send_file(file.fd, 0, text.size(), true) == ResponseWriter::Result::closed);
    CHECK(w.send_body("more", true) == ResponseWriter::Result::closed);
    CHECK(next.body.empty());
}

TEST_CASE("abort and reset are forwarded and stop the pump", "[compress]") {
    const std::string text = sample_text(3 << 20, 6);
    TempFile file(text);
    CompressFilter f = default_filter();
    {
        TestExchange ex;
        RecordingWriter next;
        next.block_after_bytes = 4096;
        CompressWriter& w = wrap_for(f, ex, next, "br");
        ResponseHead head = html_head();
        w.send_headers(head, false);
        bool aborted = false;
        w.on_abort([&] { aborted = true; });
        CHECK(w.send_file(file.fd, 0, text.size(), true) == ResponseWriter::Result::blocked);
        const size_t before = next.body.size();
        next.abort();
        CHECK(aborted);
        next.drain_all(); // a stray writable after abort does nothing
        CHECK(next.body.size() == before);
        CHECK_FALSE(next.ended);
        ex.arena.reset(); // frees the encoder mid-stream
    }
    {
        TestExchange ex;
        RecordingWriter next;
        next.block_after_bytes = 4096;
        CompressWriter& w = wrap_for(f, ex, next, "zstd");
        ResponseHead head = html_head();
        w.send_headers(head, false);
        CHECK(w.send_file(file.fd, 0, text.size(), true) == ResponseWriter::Result::blocked);
        const size_t before = next.body.size();
        w.reset();
        CHECK(next.was_reset);
        next.drain_all();
        CHECK(next.body.size() == before);
    }
}

TEST_CASE("on_writable goes straight to next when not compressing", "[compress]") {
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    next.block_after_bytes = 10;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head();
    head.headers.set("content-type", "image/png");
    w.send_headers(head, false);
    CHECK(w.send_body("0123456789abc", false) == ResponseWriter::Result::blocked);
    bool woke = false;
    w.on_writable([&] { woke = true; });
    next.drain();
    CHECK(woke);
}

TEST_CASE("send_body reports blocked and wakes its caller", "[compress]") {
    const std::string text = sample_text(400000, 8);
    CompressFilter f = default_filter();
    TestExchange ex;
    RecordingWriter next;
    next.block_after_bytes = 2048;
    CompressWriter& w = wrap_for(f, ex, next, "gzip");
    ResponseHead head = html_head();
    w.send_headers(head, false);
    CHECK(w.send_body(text, false) == ResponseWriter::Result::blocked);
    int woke = 0;
    w.on_writable([&] { ++woke; });
    next.drain_all();
    CHECK(woke == 1);
    // Finishing flushes what deflate held back, which may block again.
    CHECK(w.send_body({}, true) != ResponseWriter::Result::closed);
    CHECK(next.ended);
    CHECK(gunzip(next.body) == text);
}

// --- Config -----------------------------------------------------------------------------------

namespace {

std::unique_ptr<Filter> build_from(const std::string& toml_text, Diagnostics& diag) {
    diag.set_file("test.toml");
    toml::table doc = toml::parse(std::string_view(toml_text), std::string_view("test.toml"));
    const toml::table* t = doc["compress"].as_table();
    REQUIRE(t != nullptr);
    Config cfg;
    Site site;
    BuildContext ctx{cfg, &site, diag};
    TableReader reader(*t, diag, "compress");
    auto f = build_compress(reader, ctx);
    reader.finish();
    return f;
}

std::string all_errors(const Diagnostics& diag) {
    std::string s;
    for (const auto& d : diag.list())
        s += d.text() + "\n";
    return s;
}

} // namespace

TEST_CASE("compress options: defaults", "[compress][config]") {
    Diagnostics diag;
    auto f = build_from("compress = {}", diag);
    REQUIRE(f);
    CHECK(diag.ok());
    const auto& o = dynamic_cast<CompressFilter&>(*f).options();
    CHECK(o.encodings == std::vector<std::string>{"zstd", "br", "gzip"});
    CHECK(o.min_size == 1024);
    CHECK(o.gzip_level == 5);
    CHECK(o.brotli_level == 4);
    CHECK(o.zstd_level == 3);
    CHECK(o.types == default_compress_types());
    CHECK(f->phases() == phase_bit(Phase::response));
}

TEST_CASE("compress options: every key", "[compress][config]") {
    Diagnostics diag;
    auto f = build_from(R"([compress]
encodings = ["gzip", "br"]
min_size = "2k"
types = ["Text/*", "application/json"]
gzip_level = 9
brotli_level = 11
zstd_level = 19
)",
                        diag);
    INFO(all_errors(diag));
    REQUIRE(f);
    const auto& o = dynamic_cast<CompressFilter&>(*f).options();
    CHECK(o.encodings == std::vector<std::string>{"gzip", "br"});
    CHECK(o.min_size == 2048);
    CHECK(o.types == std::vector<std::string>{"text/*", "application/json"});
    CHECK(o.gzip_level == 9);
    CHECK(o.brotli_level == 11);
    CHECK(o.zstd_level == 19);
}

TEST_CASE("compress options: errors name the key and position", "[compress][config]") {
    struct Case {
        const char* toml;
        const char* expect;
    };
    for (const Case& c : {
             Case{"compress = { encodings = [\"gzip\", \"deflate\"] }", "deflate"},
             Case{"compress = { encodings = [\"gzip\", \"gzip\"] }", "twice"},
             Case{"compress = { encodings = [] }", "at least one"},
             Case{"compress = { types = [\"html\"] }", "not a MIME type"},
             Case{"compress = { types = [\"*/html\"] }", "not a MIME type"},
             Case{"compress = { types = [] }", "at least one"},
             Case{"compress = { gzip_level = 10 }", "gzip_level"},
             Case{"compress = { gzip_level = 0 }", "gzip_level"},
             Case{"compress = { brotli_level = 12 }", "brotli_level"},
             Case{"compress = { zstd_level = 20 }", "zstd_level"},
             Case{"compress = { min_size = \"lots\" }", "min_size"},
             Case{"compress = { level = 3 }", "level"},
         }) {
        Diagnostics diag;
        auto f = build_from(c.toml, diag);
        INFO(c.toml);
        std::string errors = all_errors(diag);
        INFO(errors);
        CHECK_FALSE(diag.ok());
        CHECK(errors.find(c.expect) != std::string::npos);
        CHECK(errors.find("test.toml:1:") != std::string::npos);
    }
}
