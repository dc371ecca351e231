// Strict HTTP/1.1 request parser (RFC 9112). Security-critical: it never guesses. Anything
// ambiguous that could let two parsers disagree about message boundaries (request smuggling)
// is an error with the status the connection must answer before closing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/http.h"

namespace wraith::http1 {

struct Limits {
    size_t max_request_target = 8192; // 414 above
    size_t max_header_size = 32768;   // request line + all field lines; 431 above
    size_t max_headers = 100;         // 431 above
};

// Why a request was rejected: the status to answer (400, 414, 431, 501, 505, 413) and a short
// reason for the error log ("content-length and transfer-encoding").
struct ParseError {
    int status = 400;
    const char* reason = "";
};

enum class BodyFraming : uint8_t { none, content_length, chunked };

// The parsed request head. Views point into the caller's buffer.
struct RequestHead {
    std::string_view method;
    std::string_view target;    // as sent
    std::string_view path;      // origin-form path ("/a/b"), or "*" for OPTIONS *
    std::string_view query;     // without '?'
    std::string_view authority; // from an absolute-form target, else from Host
    std::string_view scheme;    // from an absolute-form target, else empty
    int version_minor = 1;      // HTTP/1.0 or HTTP/1.1
    BodyFraming framing = BodyFraming::none;
    uint64_t content_length = 0;
    bool keep_alive = true;       // after Connection tokens and version defaults
    bool expect_continue = false; // "Expect: 100-continue"
    bool upgrade = false;         // Connection: upgrade + Upgrade present
    size_t head_size = 0;         // bytes consumed by the head, including the final CRLF
};

enum class Status { complete, incomplete, error };

// Parses a request head from the start of `buf`. Header fields are appended to `headers`
// (names lower-cased in place in `buf`, which is why it is mutable; values without leading
// or trailing whitespace). Leading empty lines (RFC 9112 §2.2) are skipped.
// `incomplete` means: read more and call again with the longer buffer (nothing retained;
// `headers` is left untouched). If `buf` exceeds the limits before the head completes, returns
// error (414 or 431). On `error` the connection must answer err.status and close: the body
// framing is unknown, and `head`/`headers` may be partly filled.
// Statuses: 400 malformed, 414 target too long, 417 unsupported Expect, 431 head too big or too
// many fields, 501 CONNECT, 505 other HTTP versions.
// `scheme` is "http" or "https" (static, lower-case) for an absolute-form target; `path` is a
// static "/" when an absolute-form target has an empty path. Every other view is into `buf`.
// A Content-Length of 0 gives framing content_length with content_length 0.
Status parse_request(char* buf, size_t len, const Limits& limits, RequestHead& head,
                     Headers& headers, ParseError& err);

// True if `authority` is host[:port] with host a reg-name of ALPHA / DIGIT / "-" / "." / "_" /
// "~", or an "[IPv6]" literal, and port 1*5DIGIT <= 65535. No userinfo, no percent-encoding,
// no empty host or port. Used for Host and absolute-form targets (and by h2/h3 for :authority).
bool valid_authority(std::string_view authority);

// Incremental decoder for chunked transfer coding (RFC 9112 §7.1). Decodes in place:
// feed() rewrites `buf` so its first `*out_len` bytes are body data.
class ChunkedDecoder {
public:
    enum class Result { more, done, error };
    // Consumes up to len bytes of `buf`; sets *consumed (input bytes used) and *out_len (data
    // bytes now at the start of buf). `done` after the last chunk and trailer section; bytes
    // after that (a pipelined request) are left unconsumed.
    Result feed(char* buf, size_t len, size_t* consumed, size_t* out_len, ParseError& err);
    uint64_t body_size() const { return total_; }
    void reset() { *this = ChunkedDecoder{}; }
    // Upper bound for trailer section bytes; more is an error (431).
    static constexpr size_t kMaxTrailerBytes = 8192;
    static constexpr size_t kMaxExtensionBytes = 1024;

private:
    enum class State : uint8_t {
        size,           // chunk-size hex digits
        ext_ws,         // BWS after size or extension, before ";"
        ext_name_pre,   // BWS after ";"
        ext_name,       // chunk-ext-name
        ext_name_ws,    // BWS after name, before "=" or ";"
        ext_value_pre,  // BWS after "="
        ext_token,      // chunk-ext-val as token
        ext_quoted,     // chunk-ext-val as quoted-string
        ext_escape,     // after "\" in a quoted-string
        ext_quoted_end, // after the closing quote
        size_lf,        // CR seen at the end of the size line
        data,           // chunk-data, copied down in place
        data_cr,        // CRLF after chunk-data: exactly CR LF
        data_lf,        // LF after chunk-data
        trailer_start,  // start of a trailer field line, or the final empty line
        trailer_name,   // trailer field name, up to ":"
        trailer_value,  // trailer field value, up to the line end
        trailer_lf,     // CR seen at the end of a trailer field line
        end_lf,         // CR of the final empty line seen
        done,           // the whole chunked body was read
        error,          // a malformed body was seen; error_ says why
    };
    // Enters the error state and reports it in `err`; returns false.
    bool fail(ParseError& err, int status, const char* reason);
    // Ends a chunk-size line; false if the declared body size would pass 2^63-1.
    bool size_line_end();

    State state_ = State::size;
    uint64_t remaining_ = 0;   // chunk-size being read, then data bytes left in this chunk
    uint64_t total_ = 0;       // data bytes delivered
    uint64_t declared_ = 0;    // sum of chunk sizes seen, bounded to 2^63-1
    size_t line_bytes_ = 0;    // extension bytes in the current size line
    size_t trailer_bytes_ = 0; // trailer section bytes so far, including the final CRLF
    int size_digits_ = 0;      // hex digits in the current chunk-size
    ParseError error_{};       // repeated by feed() after an error
};

} // namespace wraith::http1
