// Strict HTTP/1.1 request parser and chunked decoder (worker/http1/parser.h).
#include <catch2/catch.hpp>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "worker/http1/parser.h"

using namespace wraith;
using namespace wraith::http1;
using namespace std::string_literals;

namespace {

// Parses `text` from its own buffer, which outlives the views in `head` and `headers`.
struct Parsed {
    explicit Parsed(const std::string& text, const Limits& limits = {})
        : buf(text), status(parse_request(buf.data(), buf.size(), limits, head, headers, err)) {}
    Parsed(const Parsed&) = delete;
    Parsed& operator=(const Parsed&) = delete;

    std::string buf;
    RequestHead head;
    Headers headers;
    ParseError err;
    Status status;
};

// Runs the request and expects a parse error with `status`; returns the reason.
std::string rejects(const std::string& text, int status, const Limits& limits = {}) {
    Parsed p(text, limits);
    INFO("request: " << text);
    REQUIRE(p.status == Status::error);
    CHECK(p.err.status == status);
    return p.err.reason;
}

void accepts(const std::string& text) {
    Parsed p(text);
    INFO("request: " << text << " reason: " << p.err.reason);
    CHECK(p.status == Status::complete);
}

std::string get_with(const std::string& field_lines) {
    return "GET / HTTP/1.1\r\nHost: a\r\n" + field_lines + "\r\n";
}

// How a connection would drive the decoder: received bytes are appended to a buffer, the
// buffer is fed, decoded data taken, consumed bytes dropped.
struct Decoded {
    ChunkedDecoder::Result result = ChunkedDecoder::Result::more;
    std::string body;
    size_t consumed = 0; // input bytes consumed in total
    int status = 0;
    std::string reason;
    uint64_t body_size = 0;

    bool operator==(const Decoded& o) const {
        return result == o.result && body == o.body && consumed == o.consumed &&
               status == o.status && reason == o.reason && body_size == o.body_size;
    }
};

// Feeds `input` cut at the ascending offsets in `cuts`.
Decoded decode(const std::string& input, const std::vector<size_t>& cuts = {}) {
    ChunkedDecoder decoder;
    Decoded d;
    std::string pending;
    size_t fed = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(input.size());
    for (size_t end : ends) {
        pending.append(input, fed, end - fed);
        fed = end;
        size_t consumed = 0, out_len = 0;
        ParseError err;
        d.result = decoder.feed(pending.data(), pending.size(), &consumed, &out_len, err);
        REQUIRE(consumed <= pending.size());
        REQUIRE(out_len <= consumed);
        d.body.append(pending, 0, out_len);
        pending.erase(0, consumed);
        d.consumed += consumed;
        if (d.result == ChunkedDecoder::Result::error) {
            d.status = err.status;
            d.reason = err.reason;
        }
        if (d.result != ChunkedDecoder::Result::more)
            break;
    }
    d.body_size = decoder.body_size();
    return d;
}

Decoded decode_rejects(const std::string& input, int status) {
    Decoded d = decode(input);
    INFO("chunked: " << input);
    REQUIRE(d.result == ChunkedDecoder::Result::error);
    CHECK(d.status == status);
    return d;
}

} // namespace

// --- request line ------------------------------------------------------------------------

TEST_CASE("http1 parser: simple origin-form GET", "[http1]") {
    const std::string text = "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    Parsed p(text);
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.method == "GET");
    CHECK(p.head.target == "/a/b?x=1&y");
    CHECK(p.head.path == "/a/b");
    CHECK(p.head.query == "x=1&y");
    CHECK(p.head.authority == "example.com");
    CHECK(p.head.scheme.empty());
    CHECK(p.head.version_minor == 1);
    CHECK(p.head.framing == BodyFraming::none);
    CHECK(p.head.keep_alive);
    CHECK_FALSE(p.head.expect_continue);
    CHECK_FALSE(p.head.upgrade);
    CHECK(p.head.head_size == text.size());
    REQUIRE(p.headers.size() == 2);
    CHECK(p.headers.get("host") == "example.com");
    CHECK(p.headers.get("accept") == "*/*");
}

TEST_CASE("http1 parser: path without query has empty query", "[http1]") {
    Parsed p("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.path == "/x");
    CHECK(p.head.query.empty());
    Parsed q("GET /x? HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(q.status == Status::complete);
    CHECK(q.head.path == "/x");
    CHECK(q.head.query.empty());
}

TEST_CASE("http1 parser: pipelined heads parse one after the other using head_size", "[http1]") {
    const std::string first = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
    const std::string second = "POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\n";
    std::string buf = first + second + "abc";
    RequestHead head;
    Headers headers;
    ParseError err;
    REQUIRE(parse_request(buf.data(), buf.size(), {}, head, headers, err) == Status::complete);
    CHECK(head.path == "/one");
    CHECK(head.head_size == first.size());
    const size_t offset = head.head_size;
    headers.clear();
    REQUIRE(parse_request(buf.data() + offset, buf.size() - offset, {}, head, headers, err) ==
            Status::complete);
    CHECK(head.method == "POST");
    CHECK(head.path == "/two");
    CHECK(head.authority == "b");
    CHECK(head.framing == BodyFraming::content_length);
    CHECK(head.content_length == 3);
    CHECK(head.head_size == second.size());
    CHECK(buf.substr(offset + head.head_size) == "abc");
}

TEST_CASE("http1 parser: absolute-form sets scheme, authority, path and query", "[http1]") {
    Parsed p("GET http://Example.com:8080/p/q?x=y HTTP/1.1\r\nHost: other\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.scheme == "http");
    CHECK(p.head.authority == "Example.com:8080"); // from the target; Host is ignored
    CHECK(p.head.path == "/p/q");
    CHECK(p.head.query == "x=y");
    CHECK(p.head.target == "http://Example.com:8080/p/q?x=y");

    Parsed s("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    REQUIRE(s.status == Status::complete);
    CHECK(s.head.scheme == "https");
    CHECK(s.head.authority == "example.com");
    CHECK(s.head.path == "/");
    CHECK(s.head.query.empty());

    Parsed q("GET http://[::1]:81?a HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(q.status == Status::complete);
    CHECK(q.head.authority == "[::1]:81");
    CHECK(q.head.path == "/");
    CHECK(q.head.query == "a");
}

TEST_CASE("http1 parser: absolute-form errors", "[http1]") {
    CHECK(rejects("GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400) ==
          "unsupported scheme in request target");
    CHECK(rejects("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400) ==
          "invalid authority in request target");
    rejects("GET http://user@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    rejects("GET http://example.com:99999/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    rejects("GET http:example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    // Host is still required for HTTP/1.1 with an absolute-form target.
    CHECK(rejects("GET http://example.com/ HTTP/1.1\r\n\r\n", 400) == "missing host header");
}

TEST_CASE("http1 parser: asterisk-form only with OPTIONS", "[http1]") {
    Parsed p("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.path == "*");
    CHECK(p.head.target == "*");
    CHECK(rejects("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400) ==
          "asterisk-form target without OPTIONS");
    rejects("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

TEST_CASE("http1 parser: CONNECT is not supported", "[http1]") {
    CHECK(rejects("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501) ==
          "CONNECT not supported");
    // authority-form with another method
    CHECK(rejects("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400) ==
          "invalid request target");
}

TEST_CASE("http1 parser: method must be a token followed by one SP", "[http1]") {
    CHECK(rejects("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400) == "invalid method");
    CHECK(rejects(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400) == "invalid method");
    rejects("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    CHECK(rejects("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400) == "empty request target");
    rejects("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    rejects("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    CHECK(rejects("GET\r\nHost: a\r\n\r\n", 400) == "malformed request line");
    CHECK(rejects("GET /\r\nHost: a\r\n\r\n", 400) == "malformed request line");
    // Methods are case-sensitive tokens: any token is passed on.
    Parsed p("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(p.status == Status::complete);
    CHECK(p.head.method == "PURGE");
}

TEST_CASE("http1 parser: HTTP version", "[http1]") {
    Parsed p("GET / HTTP/1.0\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.version_minor == 0);
    CHECK(p.head.authority.empty());
    CHECK(rejects("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505) == "HTTP version not supported");
    rejects("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    rejects("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    rejects("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
    CHECK(rejects("GET / http/1.1\r\nHost: a\r\n\r\n", 400) == "malformed HTTP version");
    rejects("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
    rejects("GET / HTTP/11\r\nHost: a\r\n\r\n", 400);
    rejects("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
    rejects("GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400);
    rejects("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400);
}

TEST_CASE("http1 parser: request target characters", "[http1]") {
    for (char c : {'\x00', '\x01', '\x1f', '\x7f', '\x80', '\xff', '\t'}) {
        std::string text = "GET /a"s + c + "b HTTP/1.1\r\nHost: a\r\n\r\n";
        CHECK(rejects(text, 400) == "invalid character in request target");
    }
    accepts("GET /a%20b!$&'()*+,;=:@-._~{}|^`\"<> HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST_CASE("http1 parser: target longer than the limit is 414", "[http1]") {
    Limits limits;
    limits.max_request_target = 16;
    accepts("GET /" + std::string(15, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(rejects("GET /" + std::string(16, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, limits) ==
          "request target too long");
    // Detected before the line is complete.
    CHECK(rejects("GET /" + std::string(16, 'a'), 414, limits) == "request target too long");
    Parsed p("GET /" + std::string(15, 'a'), limits);
    CHECK(p.status == Status::incomplete);
    // Default limit, huge target without an end.
    rejects("GET /" + std::string(9000, 'a'), 414);
}

// --- lines -------------------------------------------------------------------------------

TEST_CASE("http1 parser: leading empty lines are skipped and counted in head_size", "[http1]") {
    const std::string text = "\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    Parsed p(text);
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.method == "GET");
    CHECK(p.head.head_size == text.size());
    CHECK(Parsed("\r\n").status == Status::incomplete);
    CHECK(Parsed("\r").status == Status::incomplete);
    CHECK(Parsed("").status == Status::incomplete);
    rejects("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    Limits limits;
    limits.max_header_size = 64;
    std::string many;
    for (int i = 0; i < 40; ++i)
        many += "\r\n";
    CHECK(rejects(many, 431, limits) == "request header too large");
}

TEST_CASE("http1 parser: bare LF line endings are accepted", "[http1]") {
    const std::string text = "GET /lf HTTP/1.1\nHost: a\nX-A: 1\r\n\n";
    Parsed p(text);
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.path == "/lf");
    CHECK(p.headers.get("x-a") == "1");
    CHECK(p.head.head_size == text.size());
}

TEST_CASE("http1 parser: bare CR anywhere is 400", "[http1]") {
    rejects("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400);
    CHECK(rejects("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400) ==
          "invalid character in header value");
    CHECK(rejects("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400) ==
          "invalid character in header value");
    rejects("GET / HTTP/1.1\r\nHost: a\r\nX: ab\r\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: a\r\nX\r: ab\r\n\r\n", 400);
    rejects("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    // CR CR LF is rejected even before the head is complete.
    CHECK(rejects("GET / HTTP/1.1\r\nHost: a\r\r\n", 400) == "bare CR before line end");
}

TEST_CASE("http1 parser: every prefix of a valid head is incomplete", "[http1]") {
    const std::string text =
        "\r\nPOST http://h/x?y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "Connection: keep-alive, Upgrade\r\nUpgrade: foo\r\nExpect: 100-continue\r\n\r\n";
    for (size_t n = 0; n < text.size(); ++n) {
        Parsed p(text.substr(0, n));
        INFO("prefix " << n);
        CHECK(p.status == Status::incomplete);
        CHECK(p.headers.size() == 0);
    }
    Parsed p(text + "5\r\nhello");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.head_size == text.size());
    CHECK(p.head.framing == BodyFraming::chunked);
    CHECK(p.head.upgrade);
    CHECK(p.head.expect_continue);
}

TEST_CASE("http1 parser: head bigger than max_header_size is 431", "[http1]") {
    Limits limits;
    limits.max_header_size = 64;
    const std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(30, 'v') + "\r\n\r\n";
    REQUIRE(head.size() <= 64);
    Parsed ok(head, limits);
    CHECK(ok.status == Status::complete);
    const std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(40, 'v') + "\r\n\r\n";
    CHECK(rejects(big, 431, limits) == "request header too large");
    // Also while incomplete.
    CHECK(rejects("GET / HTTP/1.1\r\nX: " + std::string(60, 'v'), 431, limits) ==
          "request header too large");
    // Body bytes after a complete head don't count.
    Parsed body(head + std::string(1000, 'b'), limits);
    CHECK(body.status == Status::complete);
}

TEST_CASE("http1 parser: more than max_headers fields is 431", "[http1]") {
    Limits limits;
    limits.max_headers = 3;
    accepts("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n");
    Parsed ok("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits);
    CHECK(ok.status == Status::complete);
    CHECK(rejects("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, limits) ==
          "too many header fields");
    CHECK(rejects("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n", 431, limits) ==
          "too many header fields");
    Parsed partial("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n", limits);
    CHECK(partial.status == Status::incomplete);
}

// --- field lines -------------------------------------------------------------------------

TEST_CASE("http1 parser: field names are lower-cased in place, values trimmed", "[http1]") {
    Parsed p("GET / HTTP/1.1\r\nHOST: a\r\nX-Custom-Thing: \t v a l \t \r\nEmpty:\r\n"
             "Obs: caf\xc3\xa9\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    REQUIRE(p.headers.size() == 4);
    auto it = p.headers.begin();
    CHECK(it->name == "host");
    CHECK(it->name.data() == p.buf.data() + 16); // a view into the buffer
    ++it;
    CHECK(it->name == "x-custom-thing");
    CHECK(it->value == "v a l");
    CHECK(p.headers.get("empty").empty());
    CHECK(p.headers.find("empty") != nullptr);
    CHECK(p.headers.get("obs") == "caf\xc3\xa9"); // obs-text
    CHECK(p.buf.find("x-custom-thing:") != std::string::npos);
}

TEST_CASE("http1 parser: malformed field names are 400", "[http1]") {
    CHECK(rejects(get_with(": v\r\n"), 400) == "empty header name");
    CHECK(rejects(get_with("X : v\r\n"), 400) == "whitespace before colon in header");
    CHECK(rejects(get_with("X\t: v\r\n"), 400) == "whitespace before colon in header");
    CHECK(rejects(get_with("X(y): v\r\n"), 400) == "invalid character in header name");
    CHECK(rejects(get_with("X-No-Colon\r\n"), 400) == "header line without colon");
    CHECK(rejects(get_with("X y: v\r\n"), 400) == "whitespace before colon in header");
    CHECK(rejects(get_with("X\xc3\xa9: v\r\n"), 400) == "invalid character in header name");
}

TEST_CASE("http1 parser: obs-fold is 400", "[http1]") {
    CHECK(rejects(get_with("X: a\r\n b\r\n"), 400) == "obsolete line folding");
    CHECK(rejects(get_with("X: a\r\n\tb\r\n"), 400) == "obsolete line folding");
    // whitespace before the first field line
    CHECK(rejects("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400) == "obsolete line folding");
}

TEST_CASE("http1 parser: control characters in field values are 400", "[http1]") {
    for (char c : {'\x00', '\x01', '\x0b', '\x1f', '\x7f', '\r'}) {
        std::string field = "X: a"s + c + "b\r\n";
        CHECK(rejects(get_with(field), 400) == "invalid character in header value");
    }
    accepts(get_with("X: a\tb\r\n"));
    accepts(get_with("X: \x80\xff\r\n"));
}

// --- Host --------------------------------------------------------------------------------

TEST_CASE("http1 parser: HTTP/1.1 requires exactly one Host", "[http1]") {
    CHECK(rejects("GET / HTTP/1.1\r\nAccept: x\r\n\r\n", 400) == "missing host header");
    CHECK(rejects("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400) == "duplicate host header");
    rejects("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    Parsed p("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.authority == "a.example");
}

TEST_CASE("http1 parser: Host must be a plausible authority", "[http1]") {
    for (const char* bad : {"", "a b", "a/b", "user@host", "host:", "host:99999", "host:12a",
                            "host:123456", "[::1", "[zz::1]", "[::1]x", "[::1]:", "a,b", "a;b",
                            "a%41", ":80", "[]", "[v1.x]", "[fe80::1%25eth0]"}) {
        INFO("host: '" << bad << "'");
        CHECK_FALSE(valid_authority(bad));
        CHECK(rejects(get_with("").replace(16, 9, "Host: "s + bad + "\r\n"), 400) ==
              "invalid host header");
    }
    for (const char* good :
         {"example.com", "example.com:8080", "EXAMPLE.com", "[::1]", "[::1]:443", "[2001:db8::1]",
          "[::ffff:1.2.3.4]:80", "127.0.0.1", "127.0.0.1:65535", "a_b-c~d", "localhost:0"}) {
        INFO("host: '" << good << "'");
        CHECK(valid_authority(good));
        Parsed p("GET / HTTP/1.1\r\nHost: "s + good + "\r\n\r\n");
        CHECK(p.status == Status::complete);
        CHECK(p.head.authority == good);
    }
    // Surrounding whitespace is not part of the value.
    Parsed p("GET / HTTP/1.1\r\nHost:   a:1 \t\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.authority == "a:1");
}

// --- body framing ------------------------------------------------------------------------

TEST_CASE("http1 parser: Content-Length", "[http1]") {
    Parsed p(get_with("Content-Length: 42\r\n"));
    REQUIRE(p.status == Status::complete);
    CHECK(p.head.framing == BodyFraming::content_length);
    CHECK(p.head.content_length == 42);
    Parsed zero(get_with("Content-Length: 0\r\n"));
    REQUIRE(zero.status == Status::complete);
    CHECK(zero.head.framing == BodyFraming::content_length);
    CHECK(zero.head.content_length == 0);
    Parsed max(get_with("Content-Length: 9223372036854775807\r\n"));
    REQUIRE(max.status == Status::complete);
    CHECK(max.head.content_length == 9223372036854775807ull);
    Parsed padded(get_with("Content-Length:  007 \r\n"));
    REQUIRE(padded.status == Status::complete);
    CHECK(padded.head.content_length == 7);
    // GET and HEAD may carry a body.
    Parsed head_req("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
    CHECK(head_req.status == Status::complete);
    CHECK(head_req.head.framing == BodyFraming::content_length);
}

TEST_CASE("http1 parser: malformed Content-Length is 400", "[http1]") {
    for (const char* bad :
         {"", "+5", "-5", "5 5", "5,5", "5, 5", "0x10", "1e3", "5.0", "five", "\"5\""}) {
        INFO("content-length: '" << bad << "'");
        CHECK(rejects(get_with("Content-Length: "s + bad + "\r\n"), 400) ==
              "invalid content-length");
    }
    CHECK(rejects(get_with("Content-Length: 9223372036854775808\r\n"), 400) ==
          "content-length too large");
    rejects(get_with("Content-Length: 99999999999999999999999\r\n"), 400);
    // Two Content-Length lines are rejected even when they agree.
    CHECK(rejects(get_with("Content-Length: 5\r\nContent-Length: 5\r\n"), 400) ==
          "multiple content-length headers");
    rejects(get_with("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
}

TEST_CASE("http1 parser: Transfer-Encoding chunked", "[http1]") {
    for (const char* te : {"chunked", "Chunked", "CHUNKED", "  chunked\t"}) {
        Parsed p(get_with("Transfer-Encoding: "s + te + "\r\n"));
        INFO("transfer-encoding: '" << te << "'");
        REQUIRE(p.status == Status::complete);
        CHECK(p.head.framing == BodyFraming::chunked);
    }
}

TEST_CASE("http1 parser: smuggling vectors in framing are 400", "[http1]") {
    CHECK(rejects(get_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400) ==
          "content-length and transfer-encoding");
    rejects(get_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400);
    CHECK(rejects("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400) ==
          "transfer-encoding in HTTP/1.0");
    for (const char* te : {"gzip, chunked", "chunked, chunked", "gzip", "identity", "", "chunked,",
                           ",chunked", "chunked;q=1", "chunk", "\"chunked\"", "chunked x"}) {
        INFO("transfer-encoding: '" << te << "'");
        CHECK(rejects(get_with("Transfer-Encoding: "s + te + "\r\n"), 400) ==
              "unsupported transfer-encoding");
    }
    CHECK(rejects(get_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400) ==
          "multiple transfer-encoding headers");
    // A near-miss name is just another field; it does not frame the body.
    Parsed p(get_with("Transfer-Encoding : chunked\r\n").c_str());
    CHECK(p.status == Status::error);
    Parsed near(get_with("Transfer_Encoding: chunked\r\nContent-Length: 1\r\n"));
    REQUIRE(near.status == Status::complete);
    CHECK(near.head.framing == BodyFraming::content_length);
}

// --- Connection, Upgrade, Expect ---------------------------------------------------------

TEST_CASE("http1 parser: Connection and keep-alive defaults", "[http1]") {
    CHECK(Parsed(get_with("")).head.keep_alive);
    CHECK_FALSE(Parsed(get_with("Connection: close\r\n")).head.keep_alive);
    CHECK_FALSE(Parsed(get_with("Connection: Keep-Alive, CLOSE\r\n")).head.keep_alive);
    CHECK_FALSE(
        Parsed(get_with("Connection: keep-alive\r\nConnection: close\r\n")).head.keep_alive);
    CHECK(Parsed(get_with("Connection: , ,keep-alive ,\r\n")).head.keep_alive);
    CHECK_FALSE(Parsed("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
    CHECK(Parsed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").head.keep_alive);
    CHECK(Parsed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head.keep_alive);
    CHECK_FALSE(Parsed("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").head.keep_alive);
    CHECK(rejects(get_with("Connection: close;x\r\n"), 400) == "invalid connection header");
    rejects(get_with("Connection: keep alive\r\n"), 400);
}

TEST_CASE("http1 parser: upgrade needs the Connection token and an Upgrade field", "[http1]") {
    CHECK(Parsed(get_with("Connection: Upgrade\r\nUpgrade: websocket\r\n")).head.upgrade);
    CHECK(Parsed(get_with("Upgrade: h2c\r\nConnection: keep-alive, upgrade\r\n")).head.upgrade);
    CHECK_FALSE(Parsed(get_with("Connection: upgrade\r\n")).head.upgrade);
    CHECK_FALSE(Parsed(get_with("Upgrade: websocket\r\n")).head.upgrade);
    CHECK_FALSE(Parsed(get_with("Connection: upgrade\r\nUpgrade:\r\n")).head.upgrade);
    // RFC 9110 §7.8: ignored in HTTP/1.0.
    CHECK_FALSE(Parsed("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n").head.upgrade);
}

TEST_CASE("http1 parser: Expect", "[http1]") {
    CHECK(Parsed(get_with("Expect: 100-continue\r\n")).head.expect_continue);
    CHECK(Parsed(get_with("Expect: 100-Continue\r\n")).head.expect_continue);
    CHECK_FALSE(Parsed(get_with("")).head.expect_continue);
    CHECK(rejects(get_with("Expect: 200-ok\r\n"), 417) == "unsupported expectation");
    rejects(get_with("Expect: 100-continue, x\r\n"), 417);
    rejects(get_with("Expect:\r\n"), 417);
    // RFC 9110 §10.1.1: 100-continue in HTTP/1.0 is ignored.
    Parsed p("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    REQUIRE(p.status == Status::complete);
    CHECK_FALSE(p.head.expect_continue);
    // Framing errors win over 417.
    rejects(get_with("Expect: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n"), 400);
}

TEST_CASE("http1 parser: parse_request resets the head", "[http1]") {
    std::string a =
        "GET /a?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\n";
    std::string b = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
    RequestHead head;
    Headers headers;
    ParseError err;
    REQUIRE(parse_request(a.data(), a.size(), {}, head, headers, err) == Status::complete);
    headers.clear();
    REQUIRE(parse_request(b.data(), b.size(), {}, head, headers, err) == Status::complete);
    CHECK(head.query.empty());
    CHECK(head.framing == BodyFraming::none);
    CHECK(head.content_length == 0);
    CHECK(head.keep_alive);
}

// --- chunked -----------------------------------------------------------------------------

TEST_CASE("chunked decoder: decodes in place and stops after the trailer section", "[http1]") {
    std::string buf = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    ChunkedDecoder decoder;
    size_t consumed = 0, out_len = 0;
    ParseError err;
    REQUIRE(decoder.feed(buf.data(), buf.size(), &consumed, &out_len, err) ==
            ChunkedDecoder::Result::done);
    CHECK(std::string(buf.data(), out_len) == "hello world");
    CHECK(buf.substr(consumed) == "GET / HTTP/1.1\r\n");
    CHECK(decoder.body_size() == 11);
    // Once done, nothing more is consumed.
    REQUIRE(decoder.feed(buf.data() + consumed, buf.size() - consumed, &consumed, &out_len, err) ==
            ChunkedDecoder::Result::done);
    CHECK(consumed == 0);
    CHECK(out_len == 0);
    decoder.reset();
    CHECK(decoder.body_size() == 0);
}

TEST_CASE("chunked decoder: sizes", "[http1]") {
    CHECK(decode("000a\r\n0123456789\r\n0\r\n\r\n").body == "0123456789");
    CHECK(decode("A\r\n0123456789\r\n00\r\n\r\n").body == "0123456789");
    CHECK(decode("0000000000000001\r\nx\r\n0\r\n\r\n").body == "x"); // 16 digits
    CHECK(decode_rejects("00000000000000001\r\nx\r\n0\r\n\r\n", 400).reason ==
          "chunk size too long");
    CHECK(decode_rejects("8000000000000000\r\n", 400).reason == "chunk size too large");
    CHECK(decode_rejects("ffffffffffffffff\r\n", 400).reason == "chunk size too large");
    CHECK(decode("7fffffffffffffff\r\nabc").result == ChunkedDecoder::Result::more);
    for (const char* bad : {"\r\n", "g\r\n", "0x5\r\n", "+5\r\n", "-5\r\n", " 5\r\n", ";a\r\n"}) {
        INFO("chunk: " << bad);
        CHECK(decode_rejects(bad, 400).reason == "invalid chunk size");
    }
}

TEST_CASE("chunked decoder: line endings", "[http1]") {
    // Bare LF after the size line and in the trailer section is accepted (RFC 9112 §2.2).
    Decoded d = decode("3\nabc\r\n0\nX: y\n\n");
    CHECK(d.result == ChunkedDecoder::Result::done);
    CHECK(d.body == "abc");
    CHECK(decode_rejects("3\rabc\r\n0\r\n\r\n", 400).reason == "bare CR in chunk size line");
    // After chunk data exactly CRLF.
    CHECK(decode_rejects("3\r\nabcd\r\n0\r\n\r\n", 400).reason ==
          "chunk data not followed by CRLF");
    CHECK(decode_rejects("3\r\nabc\n0\r\n\r\n", 400).reason == "chunk data not followed by CRLF");
    CHECK(decode_rejects("3\r\nabc\r0\r\n\r\n", 400).reason == "chunk data not followed by CRLF");
    CHECK(decode_rejects("3\r\nab\r\n0\r\n\r\n", 400).reason == "chunk data not followed by CRLF");
    CHECK(decode_rejects("0\r\n\rX", 400).reason == "bare CR in trailer");
}

TEST_CASE("chunked decoder: extensions", "[http1]") {
    for (const char* ok : {"3;a\r\n", "3;a=b\r\n", "3;a=\"q \\\" x\"\r\n", "3 ; a = b\r\n",
                           "3;a;b=c;d=\"\"\r\n", "3\t;\ta\t=\t\"v\"\r\n", "3;a=\"\xff\"\r\n",
                           "3;a=b ;c\r\n", "3;a=\"x\" ;c\r\n", "3;a ;b\r\n"}) {
        Decoded d = decode(ok + "abc\r\n0;last\r\n\r\n"s);
        INFO("chunk: " << ok);
        CHECK(d.result == ChunkedDecoder::Result::done);
        CHECK(d.body == "abc");
    }
    for (const char* bad :
         {"3;\r\n", "3;=b\r\n", "3;a=\r\n", "3;a=\"x\r\n", "3;a=b c\r\n", "3 \r\n", "3;a \r\n",
          "3;a=b \r\n", "3;a=\"x\"y\r\n", "3;a=\"\x01\"\r\n", "3;a=\"\\\x01\"\r\n", "3;a=b=c\r\n",
          "3;a@b\r\n", "3 x\r\n", "3;a\rb\r\n"}) {
        Decoded d = decode(bad + "abc\r\n0\r\n\r\n"s);
        INFO("chunk: " << bad);
        CHECK(d.result == ChunkedDecoder::Result::error);
        CHECK(d.status == 400);
    }
    const std::string long_ext =
        "3;a=" + std::string(ChunkedDecoder::kMaxExtensionBytes - 2, 'x') + "\r\nabc\r\n0\r\n\r\n";
    // ";a=" and the value: one byte over the limit
    CHECK(decode_rejects(long_ext, 400).reason == "chunk extension too long");
    const std::string max_ext =
        "3;a=" + std::string(ChunkedDecoder::kMaxExtensionBytes - 3, 'x') + "\r\nabc\r\n0\r\n\r\n";
    CHECK(decode(max_ext).result == ChunkedDecoder::Result::done);
}

TEST_CASE("chunked decoder: trailers are validated and dropped", "[http1]") {
    const std::string message = "2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-Other:\tv v \r\n\r\nNEXT";
    Decoded d = decode(message);
    CHECK(d.result == ChunkedDecoder::Result::done);
    CHECK(d.body == "hi");
    CHECK(d.consumed == message.size() - 4);
    CHECK(decode_rejects("0\r\nX : v\r\n\r\n", 400).reason == "invalid trailer field");
    CHECK(decode_rejects("0\r\nX: v\r\n folded\r\n\r\n", 400).reason ==
          "obsolete line folding in trailer");
    CHECK(decode_rejects("0\r\n: v\r\n\r\n", 400).reason == "invalid trailer field");
    CHECK(decode_rejects("0\r\nNoColon\r\n\r\n", 400).reason == "invalid trailer field");
    CHECK(decode_rejects("0\r\nX: a\x01\r\n\r\n", 400).reason == "invalid trailer field");
    CHECK(decode_rejects("0\r\nX: a\rb\r\n\r\n", 400).reason == "bare CR in trailer");
    const std::string big = "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes, 'v');
    CHECK(decode_rejects(big, 431).reason == "chunked trailer section too large");
    // Exactly at the limit, including the final CRLF.
    const std::string fits =
        "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes - 7, 'v') + "\r\n\r\n";
    CHECK(decode(fits).result == ChunkedDecoder::Result::done);
}

TEST_CASE("chunked decoder: an error sticks", "[http1]") {
    ChunkedDecoder decoder;
    std::string bad = "z\r\n";
    size_t consumed = 0, out_len = 0;
    ParseError err;
    REQUIRE(decoder.feed(bad.data(), bad.size(), &consumed, &out_len, err) ==
            ChunkedDecoder::Result::error);
    CHECK(err.status == 400);
    ParseError again;
    std::string good = "0\r\n\r\n";
    CHECK(decoder.feed(good.data(), good.size(), &consumed, &out_len, again) ==
          ChunkedDecoder::Result::error);
    CHECK(again.status == 400);
    CHECK(std::string(again.reason) == err.reason);
}

namespace {
const std::vector<std::string>& chunked_messages() {
    static const std::vector<std::string> messages = {
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
        "1;a=b;c=\"d\\\"e\"\r\nx\r\nA\n0123456789\r\n0\r\nT: v\r\nU:w\n\r\nrest",
        "3 ; e = \"q\" \r\nabc\r\n0 ; z\r\n\r\n",
        "4\r\nabcd\r\n3\r\nefg\r\n0\r\nBad Trailer: x\r\n\r\n", // error in the trailer
        "4\r\nabcd\r\n3\r\nefgX\r\n0\r\n\r\n",                  // error after data
        "4\r\nabcd\r\n00000000000000003\r\nefg\r\n0\r\n\r\n",   // error in size
    };
    return messages;
}
} // namespace

TEST_CASE("chunked decoder: every split point gives the same result", "[http1]") {
    for (const std::string& message : chunked_messages()) {
        const Decoded whole = decode(message);
        INFO("message: " << message);
        for (size_t i = 0; i <= message.size(); ++i) {
            INFO("split at " << i);
            CHECK(decode(message, {i}) == whole);
            for (size_t j = i; j <= message.size(); j += 3)
                CHECK(decode(message, {i, j}) == whole);
        }
    }
    CHECK(decode(chunked_messages()[0]).body == "hello world");
    CHECK(decode(chunked_messages()[1]).body == "x0123456789");
    CHECK(decode(chunked_messages()[3]).status == 400);
}

TEST_CASE("chunked decoder: random splits of random messages give the same result", "[http1]") {
    std::mt19937 rng(12345);
    for (int round = 0; round < 200; ++round) {
        std::string message;
        std::string body;
        const int chunks = static_cast<int>(rng() % 6);
        for (int c = 0; c < chunks; ++c) {
            const size_t n = 1 + rng() % 300;
            char size[32];
            snprintf(size, sizeof size, rng() % 2 ? "%zx" : "%zX", n);
            message += size;
            if (rng() % 3 == 0)
                message += ";ext=\"v\\\"al\"";
            message += rng() % 4 == 0 ? "\n" : "\r\n";
            std::string data;
            for (size_t k = 0; k < n; ++k)
                data += static_cast<char>(rng() % 256);
            message += data + "\r\n";
            body += data;
        }
        message += "0\r\n";
        if (rng() % 2)
            message += "Trailer-" + std::to_string(round) + ": value\r\n";
        message += "\r\nPIPELINED";
        const Decoded whole = decode(message);
        REQUIRE(whole.result == ChunkedDecoder::Result::done);
        REQUIRE(whole.body == body);
        REQUIRE(whole.consumed == message.size() - 9);
        for (int trial = 0; trial < 20; ++trial) {
            std::vector<size_t> cuts;
            size_t at = 0;
            while (true) {
                at += 1 + rng() % 64;
                if (at >= message.size())
                    break;
                cuts.push_back(at);
            }
            CHECK(decode(message, cuts) == whole);
        }
    }
}
