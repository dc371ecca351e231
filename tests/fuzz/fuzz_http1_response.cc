// libFuzzer target for the proxy's HTTP/1.1 response parser: what an upstream sends is
// untrusted. Parses a head, then decodes the rest as the body its framing says, whole and in
// random pieces, and checks the invariants the proxy relies on. A 101 also goes through the
// WebSocket handshake checks (modules/proxy/websocket.h) the proxy makes before tunnelling.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modules/proxy/response_parser.h"
#include "modules/proxy/websocket.h"

using namespace wraith::proxy;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

namespace {

// Decodes `body` feeding `step` bytes at a time (0: all at once); returns the payload.
std::string decode(const ParsedResponse& r, std::string_view body, size_t step, bool* failed,
                   bool* complete) {
    BodyDecoder d;
    d.start(r.framing, r.content_length);
    std::string payload;
    std::string pending;
    size_t fed = 0;
    *failed = *complete = false;
    for (int guard = 0; guard < 1000000; ++guard) {
        if (d.done()) {
            *complete = true;
            break;
        }
        size_t take = step ? std::min(step, body.size() - fed) : body.size() - fed;
        pending.append(body.substr(fed, take));
        fed += take;
        size_t consumed = 0;
        std::string_view piece;
        auto res = d.next(pending, consumed, piece);
        CHECK(consumed <= pending.size());
        if (res == BodyDecoder::Result::error) {
            *failed = true;
            break;
        }
        if (res == BodyDecoder::Result::data) {
            if (!piece.empty())
                CHECK(piece.data() >= pending.data() &&
                      piece.data() + piece.size() <= pending.data() + pending.size());
            payload.append(piece);
        }
        pending.erase(0, consumed);
        if (res == BodyDecoder::Result::done) {
            *complete = true;
            // Trailer fields: bounded, names lower-case tokens, values without CR/LF.
            size_t bytes = 0;
            for (const wraith::Header& h : d.trailers()) {
                CHECK(!h.name.empty());
                for (char c : h.name)
                    CHECK(!(c >= 'A' && c <= 'Z'));
                CHECK(h.value.find_first_of("\r\n") == std::string_view::npos);
                bytes += h.name.size() + h.value.size();
            }
            CHECK(bytes <= BodyDecoder::kMaxTrailers);
            break;
        }
        if (res == BodyDecoder::Result::need_more && fed == body.size())
            break;
    }
    if (r.framing == Framing::length && *complete)
        CHECK(payload.size() == r.content_length);
    return payload;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string input(reinterpret_cast<const char*>(data), size);
    size_t head_len = response_head_length(input);
    if (head_len == 0)
        return 0;
    CHECK(head_len <= input.size());
    std::string head = input.substr(0, head_len);
    ParsedResponse r;
    const char* error = "";
    // Some inputs are parsed as the answer to a HEAD request (no body whatever the fields say).
    bool head_request = size % 7 == 0;
    auto st = parse_response_head(head.data(), head.size(), head_request, r, error);
    if (st != HeadStatus::done)
        return 0;
    CHECK(r.status >= 100 && r.status <= 999);
    for (const auto& h : r.headers) {
        CHECK(!h.name.empty());
        for (char c : h.name)
            CHECK(!(c >= 'A' && c <= 'Z'));
        CHECK(h.value.find('\r') == std::string_view::npos);
        CHECK(h.value.find('\n') == std::string_view::npos);
    }
    // Framing rules the proxy relies on: never both a length and chunked.
    CHECK(!(r.framing == Framing::chunked && r.has_content_length));
    if (r.status == 101) {
        // What open_tunnel() looks at: token lists and the accept value against a key.
        bool upgrade = field_lists(r.headers, "upgrade", "websocket");
        bool connection = field_lists(r.headers, "connection", "upgrade");
        std::string accept = websocket_accept(r.headers.get("sec-websocket-key"));
        CHECK(accept.size() == 28);
        if (upgrade)
            CHECK(r.headers.find("upgrade") != nullptr);
        if (connection)
            CHECK(r.headers.find("connection") != nullptr);
        (void)(r.headers.get("sec-websocket-accept") == accept);
    }
    std::string_view body(input.data() + head_len, input.size() - head_len);
    bool failed1, complete1, failed2, complete2;
    std::string whole = decode(r, body, 0, &failed1, &complete1);
    std::string pieces = decode(r, body, 1 + (size % 5), &failed2, &complete2);
    // Splitting the input never changes the outcome.
    CHECK(failed1 == failed2);
    if (!failed1 && complete1 && complete2)
        CHECK(whole == pieces);
    return 0;
}
