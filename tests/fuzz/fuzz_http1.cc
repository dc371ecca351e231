// libFuzzer target for the HTTP/1.1 request parser and the chunked decoder
// (worker/http1/parser.h). Besides memory safety it checks the parser's invariants: results
// stay inside the buffer, a complete head is incomplete at every shorter prefix and unchanged
// by trailing bytes, and chunked decoding gives the same result however the input is split.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "worker/http1/parser.h"

using namespace wraith;
using namespace wraith::http1;

namespace {

// Fuzzing must not be compiled out by NDEBUG, so no assert().
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

bool inside(std::string_view v, const char* buf, size_t len) {
    if (v.empty())
        return true;
    return v.data() >= buf && v.data() + v.size() <= buf + len;
}

struct Decoded {
    ChunkedDecoder::Result result = ChunkedDecoder::Result::more;
    std::string body;
    size_t consumed = 0;
    int status = 0;
    std::string reason;
    uint64_t body_size = 0;

    bool operator==(const Decoded& o) const {
        return result == o.result && body == o.body && consumed == o.consumed &&
               status == o.status && reason == o.reason && body_size == o.body_size;
    }
};

// Feeds `input` to a fresh decoder in pieces ending at `cuts` (ascending) and at the end, the way
// a connection would: unconsumed bytes stay at the front of its buffer.
Decoded decode(const uint8_t* input, size_t len, const std::vector<size_t>& cuts) {
    ChunkedDecoder decoder;
    Decoded d;
    std::vector<char> pending;
    size_t fed = 0;
    auto feed_to = [&](size_t end) {
        pending.insert(pending.end(), input + fed, input + end);
        fed = end;
        size_t consumed = 12345, out_len = 12345;
        ParseError err;
        const size_t n = pending.size();
        d.result = decoder.feed(pending.data(), n, &consumed, &out_len, err);
        FUZZ_CHECK(consumed <= n);
        FUZZ_CHECK(out_len <= consumed);
        // The decoder keeps its partial state: `more` means everything was taken.
        FUZZ_CHECK(d.result != ChunkedDecoder::Result::more || consumed == n);
        d.body.append(pending.data(), out_len);
        pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(consumed));
        d.consumed += consumed;
        if (d.result == ChunkedDecoder::Result::error) {
            FUZZ_CHECK(err.status == 400 || err.status == 431);
            FUZZ_CHECK(err.reason != nullptr && err.reason[0] != '\0');
            d.status = err.status;
            d.reason = err.reason;
        }
        return d.result == ChunkedDecoder::Result::more;
    };
    bool going = true;
    for (size_t cut : cuts)
        if (going && cut > fed && cut < len)
            going = feed_to(cut);
    if (going)
        feed_to(len);
    d.body_size = decoder.body_size();
    FUZZ_CHECK(d.body_size == d.body.size());
    FUZZ_CHECK(d.consumed <= len);
    return d;
}

// Decodes `input` whole, then split at points derived from `seed`; all must agree.
void check_chunked(const uint8_t* input, size_t len, uint32_t seed) {
    const Decoded whole = decode(input, len, {});
    std::vector<size_t> cuts;
    for (size_t i = 1; i < len; ++i)
        cuts.push_back(i); // one byte at a time
    FUZZ_CHECK(decode(input, len, cuts) == whole);
    for (int trial = 0; trial < 3; ++trial) {
        cuts.clear();
        size_t at = 0;
        uint32_t x = seed * 2654435761u + static_cast<uint32_t>(trial) * 40503u + 1;
        while (true) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            at += 1 + x % 17;
            if (at >= len)
                break;
            cuts.push_back(at);
        }
        FUZZ_CHECK(decode(input, len, cuts) == whole);
    }
}

Status parse(std::vector<char>& buf, size_t len, const Limits& limits, RequestHead& head,
             Headers& headers, ParseError& err) {
    const Status status = parse_request(buf.data(), len, limits, head, headers, err);
    if (status == Status::error) {
        const int s = err.status;
        FUZZ_CHECK(s == 400 || s == 414 || s == 417 || s == 431 || s == 501 || s == 505);
        FUZZ_CHECK(err.reason != nullptr && err.reason[0] != '\0');
    }
    return status;
}

void check_head(const std::vector<char>& buf, size_t len, const RequestHead& head,
                const Headers& headers, const Limits& limits) {
    const char* b = buf.data();
    FUZZ_CHECK(head.head_size > 0 && head.head_size <= len);
    FUZZ_CHECK(head.head_size <= limits.max_header_size);
    FUZZ_CHECK(!head.method.empty() && inside(head.method, b, head.head_size));
    FUZZ_CHECK(!head.target.empty() && inside(head.target, b, head.head_size));
    FUZZ_CHECK(head.target.size() <= limits.max_request_target);
    FUZZ_CHECK(inside(head.query, b, head.head_size));
    FUZZ_CHECK(inside(head.authority, b, head.head_size));
    FUZZ_CHECK(head.path == "/" || inside(head.path, b, head.head_size));
    FUZZ_CHECK(head.scheme.empty() || head.scheme == "http" || head.scheme == "https");
    FUZZ_CHECK(head.path == "*" || (!head.path.empty() && head.path[0] == '/'));
    FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
    FUZZ_CHECK(head.method != "CONNECT");
    if (head.framing == BodyFraming::chunked)
        FUZZ_CHECK(head.version_minor == 1 && headers.count("content-length") == 0);
    if (head.framing != BodyFraming::content_length)
        FUZZ_CHECK(head.content_length == 0);
    FUZZ_CHECK(head.content_length <= static_cast<uint64_t>(INT64_MAX));
    FUZZ_CHECK(headers.count("host") <= 1);
    FUZZ_CHECK(head.version_minor == 0 || headers.count("host") == 1);
    FUZZ_CHECK(headers.size() <= limits.max_headers);
    for (const Header& h : headers) {
        FUZZ_CHECK(!h.name.empty() && inside(h.name, b, head.head_size));
        FUZZ_CHECK(inside(h.value, b, head.head_size));
        for (char c : h.name)
            FUZZ_CHECK(!(c >= 'A' && c <= 'Z') && c != ':' && c != ' ' && c != '\r');
        for (char c : h.value)
            FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
        if (!h.value.empty()) {
            FUZZ_CHECK(h.value.front() != ' ' && h.value.front() != '\t');
            FUZZ_CHECK(h.value.back() != ' ' && h.value.back() != '\t');
        }
    }
    if (!head.authority.empty())
        FUZZ_CHECK(valid_authority(head.authority));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Small limits half of the time so the 414/431 paths are reachable.
    Limits limits;
    if (size > 0 && (data[0] & 1)) {
        limits.max_request_target = 64;
        limits.max_header_size = 256;
        limits.max_headers = 4;
    }
    std::vector<char> buf(data, data + size);
    RequestHead head;
    Headers headers;
    ParseError err;
    const Status status = parse(buf, size, limits, head, headers, err);
    if (status == Status::incomplete)
        FUZZ_CHECK(headers.size() == 0);

    if (status == Status::complete) {
        check_head(buf, size, head, headers, limits);
        const size_t head_size = head.head_size;

        // Parsing again (names now lower-case) gives the same head.
        {
            RequestHead again;
            Headers again_headers;
            ParseError again_err;
            FUZZ_CHECK(parse(buf, size, limits, again, again_headers, again_err) ==
                       Status::complete);
            FUZZ_CHECK(again.head_size == head_size && again.framing == head.framing &&
                       again.content_length == head.content_length &&
                       again.keep_alive == head.keep_alive && again.upgrade == head.upgrade &&
                       again.expect_continue == head.expect_continue &&
                       again_headers.size() == headers.size());
        }
        // Every shorter prefix is incomplete; exactly the head is complete.
        std::vector<char> prefix_buf(data, data + size);
        for (size_t n = 0; n < head_size; n += 1 + n / 8) {
            RequestHead h;
            Headers hs;
            ParseError e;
            const Status s = parse(prefix_buf, n, limits, h, hs, e);
            if (s != Status::incomplete)
                std::fprintf(stderr, "prefix %zu of %zu: status %d %s\n", n, head_size, e.status,
                             e.reason);
            FUZZ_CHECK(s == Status::incomplete);
            FUZZ_CHECK(hs.size() == 0);
        }
        {
            RequestHead h;
            Headers hs;
            ParseError e;
            FUZZ_CHECK(parse(prefix_buf, head_size, limits, h, hs, e) == Status::complete);
            FUZZ_CHECK(h.head_size == head_size && hs.size() == headers.size());
        }

        if (head.framing == BodyFraming::chunked) {
            const uint8_t* body = data + head_size;
            check_chunked(body, size - head_size, static_cast<uint32_t>(size));
        }
        // A pipelined request after the body gets parsed from its own offset.
        if (head.framing == BodyFraming::content_length && head.content_length <= size &&
            head_size + head.content_length < size) {
            const size_t next = head_size + static_cast<size_t>(head.content_length);
            RequestHead h;
            Headers hs;
            ParseError e;
            std::vector<char> rest(buf.begin() + static_cast<ptrdiff_t>(next), buf.end());
            if (parse(rest, rest.size(), limits, h, hs, e) == Status::complete)
                check_head(rest, rest.size(), h, hs, limits);
        }
    }

    // The decoder straight on the input, so it is explored without a valid head in front.
    check_chunked(data, size, size > 0 ? data[size - 1] : 0);
    return 0;
}
