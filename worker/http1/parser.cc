// Strict HTTP/1.1 request head parser and chunked decoder (RFC 9112, RFC 9110).
//
// parse_request is stateless: it first finds the end of the head with memchr, and only when the
// whole head is buffered does it validate the field lines and append them to `headers`. While
// the head is incomplete it checks the limits (414/431) and the request line, so a client can't
// park a huge or garbage head in our buffers.
#include "worker/http1/parser.h"

#include "common/strings.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace wraith::http1 {
namespace {

enum : uint8_t {
    kTchar = 1 << 0,  // RFC 9110 §5.6.2 token characters
    kTarget = 1 << 1, // bytes allowed in a request-target: visible ASCII
    kValue = 1 << 2,  // field-vchar / SP / HTAB / obs-text (RFC 9110 §5.5)
    kHost = 1 << 3,   // reg-name characters we accept: ALPHA DIGIT - . _ ~
    kQdtext = 1 << 4, // RFC 9110 §5.6.4 qdtext
    kQpair = 1 << 5,  // second byte of a quoted-pair
    kHex = 1 << 6,
    kWs = 1 << 7, // SP / HTAB
};

constexpr bool one_of(const char* set, int c) {
    for (; *set; ++set)
        if (*set == c)
            return true;
    return false;
}

constexpr std::array<uint8_t, 256> kClass = [] {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        uint8_t f = 0;
        if (alpha || digit || one_of("!#$%&'*+-.^_`|~", c))
            f |= kTchar;
        if (c > 0x20 && c < 0x7f)
            f |= kTarget;
        if (c == '\t' || (c >= 0x20 && c != 0x7f))
            f |= kValue;
        if (alpha || digit || one_of("-._~", c))
            f |= kHost;
        if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
            (c >= 0x5d && c <= 0x7e) || c >= 0x80)
            f |= kQdtext;
        if (c == '\t' || (c >= 0x20 && c != 0x7f))
            f |= kQpair;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            f |= kHex;
        if (c == ' ' || c == '\t')
            f |= kWs;
        t[c] = f;
    }
    return t;
}();

inline bool is(char c, uint8_t cls) {
    return kClass[static_cast<unsigned char>(c)] & cls;
}

inline char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

inline int hex_value(char c) {
    if (c <= '9')
        return c - '0';
    return lower(c) - 'a' + 10;
}

constexpr uint64_t kMaxLength = INT64_MAX; // Content-Length and chunked body bound: 2^63-1

bool set_error(ParseError& err, int status, const char* reason) {
    err.status = status;
    err.reason = reason;
    return false;
}

Status reject(ParseError& err, int status, const char* reason) {
    set_error(err, status, reason);
    return Status::error;
}

// The request line, without its line terminator. With `partial`, `line` is the start of a line
// still arriving: running out of bytes is not an error, and only what is there is checked.
bool parse_request_line(std::string_view line, bool partial, const Limits& limits,
                        RequestHead& head, ParseError& err) {
    const char* p = line.data();
    size_t n = line.size();
    if (partial && n > 0 && p[n - 1] == '\r')
        --n; // may be the start of the CRLF
    size_t i = 0;
    // RFC 9112 §3: request-line = method SP request-target SP HTTP-version
    while (i < n && is(p[i], kTchar))
        ++i;
    if (i == n)
        return partial || set_error(err, 400, "malformed request line");
    if (i == 0 || p[i] != ' ')
        return set_error(err, 400, "invalid method");
    head.method = {p, i};
    const size_t t0 = ++i;
    while (i < n && p[i] != ' ') {
        if (!is(p[i], kTarget))
            return set_error(err, 400, "invalid character in request target");
        if (++i - t0 > limits.max_request_target)
            return set_error(err, 414, "request target too long");
    }
    if (i == n)
        return partial || set_error(err, 400, "malformed request line");
    if (i == t0)
        return set_error(err, 400, "empty request target");
    head.target = {p + t0, i - t0};
    if (partial)
        return true; // the version is checked once the line is complete
    ++i;
    // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
    const std::string_view version{p + i, n - i};
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) ||
        version[6] != '.' || !digit(version[7]))
        return set_error(err, 400, "malformed HTTP version");
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return set_error(err, 505, "HTTP version not supported");
    head.version_minor = version[7] - '0';

    if (head.method == "CONNECT")
        return set_error(err, 501, "CONNECT not supported");

    // RFC 9112 §3.2: origin-form, absolute-form, asterisk-form (authority-form is CONNECT only).
    const std::string_view target = head.target;
    if (target[0] == '/') {
        const size_t q = target.find('?');
        head.path = target.substr(0, q);
        if (q != std::string_view::npos)
            head.query = target.substr(q + 1);
        return true;
    }
    if (target == "*") {
        if (head.method != "OPTIONS")
            return set_error(err, 400, "asterisk-form target without OPTIONS");
        head.path = target;
        return true;
    }
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    const size_t colon = target.find("://");
    if (colon == std::string_view::npos)
        return set_error(err, 400, "invalid request target");
    const std::string_view scheme = target.substr(0, colon);
    if (iequals(scheme, "http"))
        head.scheme = "http";
    else if (iequals(scheme, "https"))
        head.scheme = "https";
    else
        return set_error(err, 400, "unsupported scheme in request target");
    std::string_view rest = target.substr(colon + 3);
    const size_t authority_end = rest.find_first_of("/?");
    head.authority = rest.substr(0, authority_end);
    // RFC 9110 §4.2.1: an http(s) URI has a non-empty host; userinfo is rejected (§4.2.4).
    if (!valid_authority(head.authority))
        return set_error(err, 400, "invalid authority in request target");
    rest =
        authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
    const size_t q = rest.find('?');
    head.path = rest.substr(0, q);
    if (q != std::string_view::npos)
        head.query = rest.substr(q + 1);
    if (head.path.empty())
        head.path = "/";
    return true;
}

// What the field lines said about framing and connection handling.
struct FieldSummary {
    size_t host_count = 0;
    std::string_view host;
    bool has_content_length = false;
    bool has_transfer_encoding = false;
    bool connection_close = false;
    bool connection_keep_alive = false;
    bool connection_upgrade = false;
    bool has_upgrade = false;
    bool expect_continue = false;
    bool expect_unsupported = false;
};

// RFC 9110 §7.6.1: Connection = #connection-option; empty list elements are allowed.
bool parse_connection(std::string_view value, FieldSummary& fields, ParseError& err) {
    size_t i = 0;
    while (i <= value.size()) {
        size_t end = value.find(',', i);
        if (end == std::string_view::npos)
            end = value.size();
        size_t a = i, b = end;
        while (a < b && is(value[a], kWs))
            ++a;
        while (b > a && is(value[b - 1], kWs))
            --b;
        const std::string_view option = value.substr(a, b - a);
        for (char c : option)
            if (!is(c, kTchar))
                return set_error(err, 400, "invalid connection header");
        if (iequals(option, "close"))
            fields.connection_close = true;
        else if (iequals(option, "keep-alive"))
            fields.connection_keep_alive = true;
        else if (iequals(option, "upgrade"))
            fields.connection_upgrade = true;
        i = end + 1;
    }
    return true;
}

// Acts on the fields that decide framing and connection handling.
bool note_field(std::string_view name, std::string_view value, RequestHead& head,
                FieldSummary& fields, ParseError& err) {
    switch (name.size()) {
    case 4:
        if (name == "host") {
            // RFC 9112 §3.2: exactly one Host with a valid value, else 400.
            if (++fields.host_count > 1)
                return set_error(err, 400, "duplicate host header");
            if (!valid_authority(value))
                return set_error(err, 400, "invalid host header");
            fields.host = value;
        }
        break;
    case 6:
        if (name == "expect") {
            // RFC 9110 §10.1.1: 100-continue is the only expectation; others get 417.
            if (iequals(value, "100-continue"))
                fields.expect_continue = true;
            else
                fields.expect_unsupported = true;
        }
        break;
    case 7:
        if (name == "upgrade" && !value.empty())
            fields.has_upgrade = true;
        break;
    case 10:
        if (name == "connection")
            return parse_connection(value, fields, err);
        break;
    case 14:
        if (name == "content-length") {
            // RFC 9112 §6.3: several Content-Length lines or a list are a framing error. We
            // reject them even when the values agree: two parsers must never disagree.
            if (fields.has_content_length)
                return set_error(err, 400, "multiple content-length headers");
            fields.has_content_length = true;
            if (value.empty())
                return set_error(err, 400, "invalid content-length");
            uint64_t n = 0;
            for (char c : value) {
                if (c < '0' || c > '9')
                    return set_error(err, 400, "invalid content-length");
                const uint64_t d = static_cast<uint64_t>(c - '0');
                if (n > (kMaxLength - d) / 10)
                    return set_error(err, 400, "content-length too large");
                n = n * 10 + d;
            }
            head.content_length = n;
        }
        break;
    case 17:
        if (name == "transfer-encoding") {
            // RFC 9112 §6.1: we only support a lone "chunked"; anything else would leave the
            // framing to guesswork.
            if (fields.has_transfer_encoding)
                return set_error(err, 400, "multiple transfer-encoding headers");
            fields.has_transfer_encoding = true;
            if (!iequals(value, "chunked"))
                return set_error(err, 400, "unsupported transfer-encoding");
        }
        break;
    default:
        break;
    }
    return true;
}

// Validates the field lines in [pos, end) (complete lines; the last is the empty line ending
// the head), lower-cases names in place and appends the fields.
bool parse_fields(char* buf, size_t pos, size_t end, const Limits& limits, RequestHead& head,
                  Headers& headers, FieldSummary& fields, ParseError& err) {
    size_t count = 0;
    while (pos < end) {
        const char* lf = static_cast<const char*>(std::memchr(buf + pos, '\n', end - pos));
        const size_t next = static_cast<size_t>(lf - buf) + 1;
        size_t line_end = next - 1;
        if (line_end > pos && buf[line_end - 1] == '\r')
            --line_end;
        if (line_end == pos)
            break; // the empty line
        // RFC 9112 §5.2: obs-fold is rejected (also a first field line starting with SP).
        if (is(buf[pos], kWs))
            return set_error(err, 400, "obsolete line folding");
        size_t i = pos;
        while (i < line_end && is(buf[i], kTchar)) {
            buf[i] = lower(buf[i]);
            ++i;
        }
        if (i == line_end)
            return set_error(err, 400, "header line without colon");
        if (buf[i] != ':') {
            // RFC 9112 §5.1: no whitespace between field name and colon.
            if (is(buf[i], kWs))
                return set_error(err, 400, "whitespace before colon in header");
            return set_error(err, 400, "invalid character in header name");
        }
        if (i == pos)
            return set_error(err, 400, "empty header name");
        const std::string_view name{buf + pos, i - pos};
        size_t v = i + 1;
        size_t v_end = line_end;
        while (v < v_end && is(buf[v], kWs))
            ++v;
        while (v_end > v && is(buf[v_end - 1], kWs))
            --v_end;
        for (size_t k = v; k < v_end; ++k)
            if (!is(buf[k], kValue))
                return set_error(err, 400, "invalid character in header value");
        if (++count > limits.max_headers)
            return set_error(err, 431, "too many header fields");
        const std::string_view value{buf + v, v_end - v};
        headers.add(name, value);
        if (!note_field(name, value, head, fields, err))
            return false;
        pos = next;
    }
    return true;
}

} // namespace

bool valid_authority(std::string_view authority) {
    const size_t n = authority.size();
    size_t i = 0;
    if (n > 0 && authority[0] == '[') {
        // RFC 3986 §3.2.2 IP-literal; IPvFuture and zone identifiers are not accepted.
        const size_t close = authority.find(']');
        if (close == std::string_view::npos || close < 3 || close > 46)
            return false;
        char literal[48];
        for (size_t k = 1; k < close; ++k) {
            const char c = authority[k];
            if (!is(c, kHex) && c != ':' && c != '.')
                return false;
            literal[k - 1] = c;
        }
        literal[close - 1] = '\0';
        in6_addr addr;
        if (inet_pton(AF_INET6, literal, &addr) != 1)
            return false;
        i = close + 1;
    } else {
        while (i < n && is(authority[i], kHost))
            ++i;
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (authority[i] != ':')
        return false;
    const size_t digits = n - i - 1;
    if (digits == 0 || digits > 5)
        return false;
    unsigned port = 0;
    for (size_t k = i + 1; k < n; ++k) {
        if (authority[k] < '0' || authority[k] > '9')
            return false;
        port = port * 10 + static_cast<unsigned>(authority[k] - '0');
    }
    return port <= 65535;
}

Status parse_request(char* buf, size_t len, const Limits& limits, RequestHead& head,
                     Headers& headers, ParseError& err) {
    head = RequestHead{};
    // Pass 1: find the request line and the empty line that ends the head. RFC 9112 §2.2: lines
    // end in CRLF or a bare LF; empty lines before the request line are skipped.
    constexpr size_t npos = static_cast<size_t>(-1);
    size_t pos = 0;
    size_t line_start = npos, line_end = 0, fields_start = 0, head_end = npos;
    size_t field_lines = 0;
    while (pos < len) {
        const char* lf = static_cast<const char*>(std::memchr(buf + pos, '\n', len - pos));
        if (!lf)
            break;
        const size_t next = static_cast<size_t>(lf - buf) + 1;
        size_t end = next - 1;
        if (end > pos && buf[end - 1] == '\r') {
            --end;
            if (end > pos && buf[end - 1] == '\r') // CR CR LF: caught early, as a bare CR
                return reject(err, 400, "bare CR before line end");
        }
        const bool empty = end == pos;
        if (line_start == npos) {
            if (!empty) {
                line_start = pos;
                line_end = end;
                fields_start = next;
            }
        } else if (empty) {
            head_end = next;
            break;
        } else {
            ++field_lines;
        }
        pos = next;
    }

    if (head_end == npos) {
        // Incomplete: enforce the limits now rather than buffering more.
        if (len > limits.max_header_size)
            return reject(err, 431, "request header too large");
        RequestHead partial_head;
        const bool line_done = line_start != npos;
        const std::string_view line =
            line_done ? std::string_view{buf + line_start, line_end - line_start}
                      : std::string_view{buf + pos, len - pos};
        if (!parse_request_line(line, !line_done, limits, partial_head, err))
            return Status::error;
        if (field_lines > limits.max_headers)
            return reject(err, 431, "too many header fields");
        return Status::incomplete;
    }

    if (head_end > limits.max_header_size)
        return reject(err, 431, "request header too large");
    if (!parse_request_line({buf + line_start, line_end - line_start}, false, limits, head, err))
        return Status::error;
    FieldSummary fields;
    if (!parse_fields(buf, fields_start, head_end, limits, head, headers, fields, err))
        return Status::error;

    const bool http11 = head.version_minor == 1;
    if (http11 && fields.host_count == 0)
        return reject(err, 400, "missing host header");
    // RFC 9112 §6.1 and §6.3: the framing must be unambiguous.
    if (fields.has_transfer_encoding) {
        if (!http11)
            return reject(err, 400, "transfer-encoding in HTTP/1.0");
        if (fields.has_content_length)
            return reject(err, 400, "content-length and transfer-encoding");
        head.framing = BodyFraming::chunked;
    } else if (fields.has_content_length) {
        head.framing = BodyFraming::content_length;
    }
    if (fields.expect_unsupported)
        return reject(err, 417, "unsupported expectation");
    // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
    head.expect_continue = http11 && fields.expect_continue;
    // RFC 9112 §9.3: persistence defaults by version; "close" always wins.
    head.keep_alive = !fields.connection_close && (http11 || fields.connection_keep_alive);
    // RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored.
    head.upgrade = http11 && fields.connection_upgrade && fields.has_upgrade;
    // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
    if (head.scheme.empty())
        head.authority = fields.host;
    head.head_size = head_end;
    return Status::complete;
}

// ---------------------------------------------------------------------------------------------
// ChunkedDecoder. Every check happens on the byte that decides it, so the result (body, status
// and reason) does not depend on how the input is split across feed() calls.

bool ChunkedDecoder::fail(ParseError& err, int status, const char* reason) {
    state_ = State::error;
    error_.status = status;
    error_.reason = reason;
    err = error_;
    return false;
}

// The size line ended: start the chunk data, or the trailer section after the last chunk.
bool ChunkedDecoder::size_line_end() {
    if (remaining_ == 0) {
        state_ = State::trailer_start;
        return true;
    }
    if (remaining_ > kMaxLength - declared_)
        return false;
    declared_ += remaining_;
    state_ = State::data;
    return true;
}

ChunkedDecoder::Result ChunkedDecoder::feed(char* buf, size_t len, size_t* consumed,
                                            size_t* out_len, ParseError& err) {
    size_t in = 0;  // next input byte
    size_t out = 0; // next body byte goes here; out <= in always
    *consumed = 0;
    *out_len = 0;
    if (state_ == State::error) {
        err = error_;
        return Result::error;
    }
    auto error = [&](int status, const char* reason) {
        fail(err, status, reason);
        *consumed = in;
        *out_len = out;
        return Result::error;
    };

    while (in < len && state_ != State::done) {
        if (state_ == State::data) {
            size_t n = len - in;
            if (n > remaining_)
                n = static_cast<size_t>(remaining_);
            if (out != in)
                std::memmove(buf + out, buf + in, n);
            in += n;
            out += n;
            remaining_ -= n;
            total_ += n;
            if (remaining_ == 0)
                state_ = State::data_cr;
            continue;
        }
        const char c = buf[in++];
        if (state_ >= State::ext_ws && state_ <= State::ext_quoted_end && c != '\r' && c != '\n' &&
            ++line_bytes_ > kMaxExtensionBytes)
            return error(400, "chunk extension too long");
        if (state_ >= State::trailer_start && state_ <= State::end_lf &&
            ++trailer_bytes_ > kMaxTrailerBytes)
            return error(431, "chunked trailer section too large");

        switch (state_) {
        case State::size:
            if (is(c, kHex)) {
                // RFC 9112 §7.1: at most 16 hex digits; and sizes stay below 2^63.
                if (++size_digits_ > 16)
                    return error(400, "chunk size too long");
                remaining_ = remaining_ << 4 | static_cast<uint64_t>(hex_value(c));
                if (remaining_ > kMaxLength)
                    return error(400, "chunk size too large");
                break;
            }
            if (size_digits_ == 0)
                return error(400, "invalid chunk size");
            if (c == ';') {
                line_bytes_ = 1;
                state_ = State::ext_name_pre;
            } else if (is(c, kWs)) {
                line_bytes_ = 1;
                state_ = State::ext_ws;
            } else if (c == '\r') {
                state_ = State::size_lf;
            } else if (c == '\n') {
                if (!size_line_end())
                    return error(400, "chunked body too large");
            } else {
                return error(400, "invalid chunk size");
            }
            break;
        // RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
        case State::ext_ws:
            if (c == ';')
                state_ = State::ext_name_pre;
            else if (!is(c, kWs))
                return error(400, "invalid chunk extension");
            break;
        case State::ext_name_pre:
            if (is(c, kTchar))
                state_ = State::ext_name;
            else if (!is(c, kWs))
                return error(400, "invalid chunk extension");
            break;
        case State::ext_name:
        case State::ext_token:
        case State::ext_quoted_end:
            if (state_ != State::ext_quoted_end && is(c, kTchar))
                break;
            if (c == ';')
                state_ = State::ext_name_pre;
            else if (c == '=' && state_ == State::ext_name)
                state_ = State::ext_value_pre;
            else if (is(c, kWs))
                state_ = state_ == State::ext_name ? State::ext_name_ws : State::ext_ws;
            else if (c == '\r')
                state_ = State::size_lf;
            else if (c == '\n') {
                if (!size_line_end())
                    return error(400, "chunked body too large");
            } else
                return error(400, "invalid chunk extension");
            break;
        case State::ext_name_ws:
            if (c == ';')
                state_ = State::ext_name_pre;
            else if (c == '=')
                state_ = State::ext_value_pre;
            else if (!is(c, kWs))
                return error(400, "invalid chunk extension");
            break;
        case State::ext_value_pre:
            if (c == '"')
                state_ = State::ext_quoted;
            else if (is(c, kTchar))
                state_ = State::ext_token;
            else if (!is(c, kWs))
                return error(400, "invalid chunk extension");
            break;
        case State::ext_quoted:
            if (c == '"')
                state_ = State::ext_quoted_end;
            else if (c == '\\')
                state_ = State::ext_escape;
            else if (!is(c, kQdtext))
                return error(400, "invalid chunk extension");
            break;
        case State::ext_escape:
            if (!is(c, kQpair))
                return error(400, "invalid chunk extension");
            state_ = State::ext_quoted;
            break;
        case State::size_lf:
            if (c != '\n')
                return error(400, "bare CR in chunk size line");
            if (!size_line_end())
                return error(400, "chunked body too large");
            break;
        case State::data_cr:
            if (c != '\r')
                return error(400, "chunk data not followed by CRLF");
            state_ = State::data_lf;
            break;
        case State::data_lf:
            if (c != '\n')
                return error(400, "chunk data not followed by CRLF");
            state_ = State::size;
            size_digits_ = 0;
            line_bytes_ = 0;
            break;
        // RFC 9112 §7.1.2: trailer fields are validated like header fields, then dropped.
        case State::trailer_start:
            if (c == '\r')
                state_ = State::end_lf;
            else if (c == '\n')
                state_ = State::done;
            else if (is(c, kWs))
                return error(400, "obsolete line folding in trailer");
            else if (is(c, kTchar))
                state_ = State::trailer_name;
            else
                return error(400, "invalid trailer field");
            break;
        case State::trailer_name:
            if (c == ':')
                state_ = State::trailer_value;
            else if (!is(c, kTchar))
                return error(400, "invalid trailer field");
            break;
        case State::trailer_value:
            if (c == '\r')
                state_ = State::trailer_lf;
            else if (c == '\n')
                state_ = State::trailer_start;
            else if (!is(c, kValue))
                return error(400, "invalid trailer field");
            break;
        case State::trailer_lf:
            if (c != '\n')
                return error(400, "bare CR in trailer");
            state_ = State::trailer_start;
            break;
        case State::end_lf:
            if (c != '\n')
                return error(400, "bare CR in trailer");
            state_ = State::done;
            break;
        case State::data:
        case State::done:
        case State::error:
            break; // handled above
        }
    }
    *consumed = in;
    *out_len = out;
    return state_ == State::done ? Result::done : Result::more;
}

} // namespace wraith::http1
