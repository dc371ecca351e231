// The proxy's strict HTTP/1.1 response parser: status line, fields, framing choice, and the
// body decoder for Content-Length, chunked and close-delimited bodies.
#include <catch2/catch.hpp>

#include <string>

#include "modules/proxy/response_parser.h"

using namespace wraith;
using namespace wraith::proxy;

namespace {

struct Parsed {
    HeadStatus status;
    ParsedResponse response;
    std::string error;
    std::string storage; // the head's bytes, which the views point into
};

Parsed parse(std::string head, bool request_was_head = false) {
    Parsed p;
    p.storage = std::move(head);
    const char* error = "";
    p.status = parse_response_head(p.storage.data(), p.storage.size(), request_was_head,
                                   p.response, error);
    p.error = error;
    return p;
}

// Feeds `wire` to a decoder in pieces of `step` bytes (keeping unconsumed bytes, like the
// proxy's read buffer); returns the payload, or "ERROR" / "INCOMPLETE".
std::string decode(Framing framing, uint64_t length, const std::string& wire, size_t step,
                   bool eof = false) {
    BodyDecoder d;
    d.start(framing, length);
    std::string buffered, out;
    size_t fed = 0;
    while (true) {
        size_t consumed = 0;
        std::string_view payload;
        auto r = d.next(buffered, consumed, payload);
        out.append(payload);
        buffered.erase(0, consumed);
        if (r == BodyDecoder::Result::error)
            return "ERROR";
        if (r == BodyDecoder::Result::done)
            return out;
        if (r == BodyDecoder::Result::need_more) {
            if (fed == wire.size())
                return eof && d.finish_on_eof() ? out : "INCOMPLETE";
            size_t n = std::min(step, wire.size() - fed);
            buffered.append(wire, fed, n);
            fed += n;
        } else if (d.done()) {
            return out;
        }
    }
}

} // namespace

TEST_CASE("response head: status line, fields and Content-Length framing", "[proxy]") {
    std::string text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
                       "X-Multi:  a b \r\n\r\nhello";
    REQUIRE(response_head_length(text) == text.size() - 5);
    auto p = parse(text.substr(0, text.size() - 5));
    REQUIRE(p.status == HeadStatus::done);
    CHECK(p.response.status == 200);
    CHECK(p.response.reason == "OK");
    CHECK(p.response.framing == Framing::length);
    CHECK(p.response.content_length == 5);
    CHECK(p.response.keep_alive);
    CHECK(p.response.headers.get("content-type") == "text/plain"); // names lower-cased
    CHECK(p.response.headers.get("x-multi") == "a b");             // OWS trimmed
}

TEST_CASE("response head: framing choice", "[proxy]") {
    CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").response.framing ==
          Framing::chunked);
    auto close = parse("HTTP/1.1 200 OK\r\n\r\n");
    CHECK(close.response.framing == Framing::close);
    CHECK_FALSE(close.response.keep_alive);
    CHECK(parse("HTTP/1.1 204 No Content\r\n\r\n").response.framing == Framing::none);
    CHECK(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n").response.framing ==
          Framing::none);
    CHECK(parse("HTTP/1.1 100 Continue\r\n\r\n").response.framing == Framing::none);
    auto head = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true);
    CHECK(head.response.framing == Framing::none);
    CHECK(head.response.has_content_length);
    CHECK(parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").status == HeadStatus::done);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n").response.content_length == 7);
}

TEST_CASE("response head: keep-alive", "[proxy]") {
    CHECK_FALSE(parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                    .response.keep_alive);
    CHECK_FALSE(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").response.keep_alive);
    CHECK(parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
              .response.keep_alive);
}

TEST_CASE("response head: malformed heads are errors", "[proxy]") {
    const char* bad[] = {
        "HTTP/1.1 2x0 OK\r\n\r\n",                    // status not digits
        "HTTP/1.1 20 OK\r\n\r\n",                     // two digits
        "HTTP/1.1 200OK\r\n\r\n",                     // no SP after the code
        "HTTP/2.0 200 OK\r\n\r\n",                    // not HTTP/1
        "http/1.1 200 OK\r\n\r\n",                    // case matters
        "HTTP/1.1  200 OK\r\n\r\n",                   // two spaces
        "HTTP/1.1 099 OK\r\n\r\n",                    // out of range
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",     // space in a name
        "HTTP/1.1 200 OK\r\nName : x\r\n\r\n",        // space before colon
        "HTTP/1.1 200 OK\r\n: x\r\n\r\n",             // empty name
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", // obs-fold
        "HTTP/1.1 200 OK\r\nA: x\ny\r\n\r\n",         // bare LF
        "HTTP/1.1 200 OK\r\nA: x\x01y\r\n\r\n",       // control character
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    for (const char* text : bad) {
        INFO(text);
        CHECK(parse(text).status == HeadStatus::error);
    }
}

TEST_CASE("response head: the end needs CRLF CRLF", "[proxy]") {
    CHECK(response_head_length("HTTP/1.1 200 OK\r\nA: b\r\n") == 0);
    CHECK(response_head_length("HTTP/1.1 200 OK\n\n") == 0);
    CHECK(response_head_length("HTTP/1.1 200 OK\r\n\r\nbody") == 19);
}

TEST_CASE("body: Content-Length stops at the length", "[proxy]") {
    CHECK(decode(Framing::length, 5, "hello", 1) == "hello");
    CHECK(decode(Framing::length, 5, "hello", 100) == "hello");
    CHECK(decode(Framing::length, 5, "hel", 2) == "INCOMPLETE");
    CHECK(decode(Framing::length, 0, "", 1) == "");
    CHECK(decode(Framing::length, 5, "hel", 2, true) == "INCOMPLETE"); // EOF is no end here
}

TEST_CASE("body: chunked in any split", "[proxy]") {
    std::string wire = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
    for (size_t step : {1, 2, 3, 7, 100})
        CHECK(decode(Framing::chunked, 0, wire, step) == "hello 0123456789");
    CHECK(decode(Framing::chunked, 0, "0\r\n\r\n", 1) == "");
    CHECK(decode(Framing::chunked, 0, "5\r\nhel", 3) == "INCOMPLETE");
    CHECK(decode(Framing::chunked, 0, "5\r\nhel", 3, true) == "INCOMPLETE");
}

TEST_CASE("body: malformed chunked framing is an error", "[proxy]") {
    CHECK(decode(Framing::chunked, 0, "x\r\nhello\r\n0\r\n\r\n", 4) == "ERROR");
    CHECK(decode(Framing::chunked, 0, "5\r\nhelloXX0\r\n\r\n", 4) == "ERROR");
    CHECK(decode(Framing::chunked, 0, "5 x\r\nhello\r\n0\r\n\r\n", 4) == "ERROR");
    CHECK(decode(Framing::chunked, 0, "-5\r\nhello\r\n0\r\n\r\n", 4) == "ERROR");
    CHECK(decode(Framing::chunked, 0, "fffffffffffffffff\r\n", 4) == "ERROR");
    CHECK(decode(Framing::chunked, 0, "0\r\nbad trailer\r\n\r\n", 4) == "ERROR");
    CHECK(decode(Framing::chunked, 0, std::string(5000, '1'), 1000) == "ERROR");
}

TEST_CASE("body: close-delimited ends at EOF", "[proxy]") {
    CHECK(decode(Framing::close, 0, "all of it", 4, true) == "all of it");
    CHECK(decode(Framing::none, 0, "", 4) == "");
}

TEST_CASE("body: a chunked body's trailer fields are kept, names lower-cased", "[proxy]") {
    for (size_t step : {1, 3, 100}) {
        BodyDecoder d;
        d.start(Framing::chunked, 0);
        std::string wire = "2\r\nok\r\n0\r\nX-Checksum:  sha=1 \r\ngrpc-status: 0\r\n\r\n";
        std::string buffered;
        size_t fed = 0;
        BodyDecoder::Result r = BodyDecoder::Result::need_more;
        while (r != BodyDecoder::Result::done) {
            size_t consumed = 0;
            std::string_view payload;
            r = d.next(buffered, consumed, payload);
            REQUIRE(r != BodyDecoder::Result::error);
            buffered.erase(0, consumed);
            if (r == BodyDecoder::Result::need_more) {
                REQUIRE(fed < wire.size());
                buffered.append(wire, fed, std::min(step, wire.size() - fed));
                fed += std::min(step, wire.size() - fed);
            }
        }
        REQUIRE(d.trailers().size() == 2);
        CHECK(d.trailers().get("x-checksum") == "sha=1");
        CHECK(d.trailers().get("grpc-status") == "0");
        d.start(Framing::chunked, 0); // a new body forgets them
        CHECK(d.trailers().size() == 0);
    }
}

TEST_CASE("body: an oversized trailer section is an error", "[proxy]") {
    std::string wire = "0\r\n";
    for (int i = 0; i < 40; ++i)
        wire += "x-field-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
    wire += "\r\n";
    CHECK(decode(Framing::chunked, 0, wire, 4096) == "ERROR");
}
