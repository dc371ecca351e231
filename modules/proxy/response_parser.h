// A strict HTTP/1.1 *response* parser for the proxy: the status line and fields of an upstream's
// answer (RFC 9112 §4, §5) and the framing of its body (§6.3: Content-Length, chunked, or
// close-delimited). Anything ambiguous is an error, which the proxy turns into a 502: an
// upstream that cannot frame its response must not be able to smuggle a second one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http.h"

namespace wraith::proxy {

// Upper bound for a response head (status line + fields).
constexpr size_t kMaxResponseHead = 32 * 1024;

enum class Framing {
    none,    // no body: HEAD, 1xx, 204, 304
    length,  // Content-Length bytes
    chunked, // Transfer-Encoding: chunked
    close,   // until the upstream closes (the connection cannot be reused)
};

// A parsed response head. Views point into the text given to parse_response_head().
struct ParsedResponse {
    int status = 0;
    int version_minor = 1;
    std::string_view reason;
    Headers headers; // names lower-cased in place
    Framing framing = Framing::close;
    uint64_t content_length = 0; // the Content-Length value, when has_content_length
    bool has_content_length = false;
    bool keep_alive = false; // the upstream allows another request on the connection
};

enum class HeadStatus { incomplete, done, error };

// Length of the head at the start of `data` including its final CRLF CRLF, or 0 when the end
// has not arrived yet. A bare LF line ending is not accepted as an end (strict CRLF).
size_t response_head_length(std::string_view data);

// Parses a complete head (`head`, as measured by response_head_length, which the caller keeps
// alive and writable: field names are lower-cased in place). `request_was_head` selects
// Framing::none. On error, `error` names the problem for the log.
HeadStatus parse_response_head(char* head, size_t len, bool request_was_head, ParsedResponse& out,
                               const char*& error);

// Streams a body out of its framing. Feed it what arrived; it hands back payload pieces that
// point into the input.
class BodyDecoder {
public:
    enum class Result {
        data,      // `payload` holds body bytes (may be empty when only framing was consumed)
        need_more, // nothing more can be decoded from the input given
        done,      // the body is complete; bytes after `consumed` belong to no body
        error,     // malformed framing
    };

    void start(Framing framing, uint64_t content_length);
    // Decodes from `in`. Sets `consumed` (bytes of `in` used) and, for Result::data, `payload`.
    Result next(std::string_view in, size_t& consumed, std::string_view& payload);
    // The upstream closed: completes a close-delimited body, fails any other unfinished one.
    bool finish_on_eof() const { return framing_ == Framing::close || state_ == State::done; }
    bool done() const { return state_ == State::done; }
    Framing framing() const { return framing_; }
    const char* error() const { return error_; }
    // A chunked body's trailer fields (names lower-cased), once done(); views into this
    // decoder, valid until the next start().
    const Headers& trailers() const { return trailers_; }
    static constexpr size_t kMaxTrailers = 16 * 1024;

private:
    void index_trailers();
    enum class State { size_line, data, data_crlf, trailers, done };
    Framing framing_ = Framing::none;
    State state_ = State::done;
    uint64_t left_ = 0; // bytes left of the body (length) or of the current chunk
    const char* error_ = "";
    std::string trailer_text_; // "name:value\n" per field
    Headers trailers_;
};

} // namespace wraith::proxy
