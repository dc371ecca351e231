#include "modules/proxy/response_parser.h"

#include "common/strings.h"

#include <cstring>

namespace wraith::proxy {

namespace {

bool is_tchar(unsigned char c) {
    // RFC 9110 §5.6.2 token characters.
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// A field value may hold visible characters, SP, HTAB and obs-text; no other controls.
bool valid_value(std::string_view v) {
    for (unsigned char c : v)
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    return true;
}

std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    return v;
}

// True when the comma-separated list `v` holds `token` (case-insensitive).
bool list_has(std::string_view v, std::string_view token) {
    while (!v.empty()) {
        size_t comma = v.find(',');
        if (iequals(trim(v.substr(0, comma)), token))
            return true;
        if (comma == std::string_view::npos)
            break;
        v.remove_prefix(comma + 1);
    }
    return false;
}

bool parse_u64(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 18)
        return false;
    uint64_t v = 0;
    for (char c : s) {
        if (!is_digit(c))
            return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    out = v;
    return true;
}

} // namespace

size_t response_head_length(std::string_view data) {
    size_t end = data.find("\r\n\r\n");
    return end == std::string_view::npos ? 0 : end + 4;
}

HeadStatus parse_response_head(char* head, size_t len, bool request_was_head, ParsedResponse& out,
                               const char*& error) {
    out = ParsedResponse{};
    std::string_view text(head, len);
    if (len < 4 || text.substr(len - 4) != "\r\n\r\n") {
        error = "incomplete response head";
        return HeadStatus::incomplete;
    }
    text.remove_suffix(2); // keep one CRLF per line
    // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    size_t eol = text.find("\r\n");
    std::string_view line = text.substr(0, eol);
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !is_digit(line[7]) ||
        line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) ||
        (line.size() > 12 && line[12] != ' ')) {
        error = "malformed status line";
        return HeadStatus::error;
    }
    if (line[7] != '0' && line[7] != '1') {
        error = "unsupported HTTP version";
        return HeadStatus::error;
    }
    out.version_minor = line[7] - '0';
    out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (out.status < 100 || out.status > 599) {
        error = "status code out of range";
        return HeadStatus::error;
    }
    out.reason = line.size() > 12 ? line.substr(13) : std::string_view{};
    if (!valid_value(out.reason)) {
        error = "control character in reason phrase";
        return HeadStatus::error;
    }
    text.remove_prefix(eol + 2);

    bool have_length = false, chunked = false, close = false, keep_alive_token = false;
    uint64_t length = 0;
    while (!text.empty()) {
        eol = text.find("\r\n");
        line = text.substr(0, eol);
        text.remove_prefix(eol + 2);
        if (line.find('\n') != std::string_view::npos ||
            line.find('\r') != std::string_view::npos) {
            error = "bare CR or LF in response head";
            return HeadStatus::error;
        }
        if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
            error = "obsolete line folding in response head"; // RFC 9112 §5.2
            return HeadStatus::error;
        }
        size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos) {
            error = "malformed header field";
            return HeadStatus::error;
        }
        char* name = const_cast<char*>(line.data());
        for (size_t i = 0; i < colon; ++i) {
            // RFC 9112 §5.1: no whitespace between field name and colon.
            if (!is_tchar(static_cast<unsigned char>(name[i]))) {
                error = "malformed header field name";
                return HeadStatus::error;
            }
            if (name[i] >= 'A' && name[i] <= 'Z')
                name[i] = static_cast<char>(name[i] + 32);
        }
        std::string_view n(name, colon);
        std::string_view v = trim(line.substr(colon + 1));
        if (!valid_value(v)) {
            error = "control character in header field value";
            return HeadStatus::error;
        }
        if (n == "content-length") {
            // A list of identical values is one length (RFC 9110 §8.6); anything else is not.
            std::string_view rest = v;
            while (true) {
                size_t comma = rest.find(',');
                uint64_t value = 0;
                if (!parse_u64(trim(rest.substr(0, comma)), value) ||
                    (have_length && value != length)) {
                    error = "invalid or conflicting Content-Length";
                    return HeadStatus::error;
                }
                have_length = true;
                length = value;
                if (comma == std::string_view::npos)
                    break;
                rest.remove_prefix(comma + 1);
            }
        } else if (n == "transfer-encoding") {
            // Only "chunked", once, is accepted: other codings could not be re-framed safely.
            if (chunked || !iequals(v, "chunked")) {
                error = "unsupported Transfer-Encoding";
                return HeadStatus::error;
            }
            chunked = true;
        } else if (n == "connection") {
            close = close || list_has(v, "close");
            keep_alive_token = keep_alive_token || list_has(v, "keep-alive");
        }
        out.headers.add(n, v);
    }
    if (chunked && have_length) {
        // RFC 9112 §6.3 ¶3: ought to be handled as an error (response splitting).
        error = "both Transfer-Encoding and Content-Length";
        return HeadStatus::error;
    }
    if (chunked && out.version_minor == 0) {
        error = "Transfer-Encoding in an HTTP/1.0 response";
        return HeadStatus::error;
    }
    if (request_was_head || out.status < 200 || out.status == 204 || out.status == 304)
        out.framing = Framing::none;
    else if (chunked)
        out.framing = Framing::chunked;
    else if (have_length)
        out.framing = Framing::length;
    else
        out.framing = Framing::close;
    out.content_length = length;
    out.has_content_length = have_length;
    out.keep_alive =
        out.framing != Framing::close && !close && (out.version_minor == 1 || keep_alive_token);
    return HeadStatus::done;
}

void BodyDecoder::start(Framing framing, uint64_t content_length) {
    trailers_.clear();
    trailer_text_.clear();
    framing_ = framing;
    error_ = "";
    left_ = content_length;
    switch (framing) {
    case Framing::none:
        state_ = State::done;
        break;
    case Framing::length:
        state_ = content_length == 0 ? State::done : State::data;
        break;
    case Framing::chunked:
        state_ = State::size_line;
        break;
    case Framing::close:
        state_ = State::data;
        break;
    }
}

BodyDecoder::Result BodyDecoder::next(std::string_view in, size_t& consumed,
                                      std::string_view& payload) {
    consumed = 0;
    payload = {};
    constexpr size_t kMaxLine = 4096; // chunk size line with extensions, or one trailer line
    switch (state_) {
    case State::done:
        return Result::done;
    case State::data: {
        if (in.empty())
            return Result::need_more;
        size_t n = in.size();
        if (framing_ != Framing::close && n > left_)
            n = static_cast<size_t>(left_);
        payload = in.substr(0, n);
        consumed = n;
        if (framing_ != Framing::close) {
            left_ -= n;
            if (left_ == 0)
                state_ = framing_ == Framing::chunked ? State::data_crlf : State::done;
        }
        return Result::data;
    }
    case State::data_crlf:
        if (in.empty())
            return Result::need_more;
        if (in[0] != '\r' || (in.size() >= 2 && in[1] != '\n')) {
            error_ = "missing CRLF after chunk data";
            return Result::error;
        }
        if (in.size() < 2)
            return Result::need_more;
        consumed = 2;
        state_ = State::size_line;
        return Result::data;
    case State::size_line: {
        size_t eol = in.find("\r\n");
        if (eol == std::string_view::npos) {
            if (in.size() > kMaxLine) {
                error_ = "chunk size line too long";
                return Result::error;
            }
            return Result::need_more;
        }
        std::string_view line = in.substr(0, eol);
        // RFC 9112 §7.1: chunk-size = 1*HEXDIG, then optional extensions after ';'.
        size_t i = 0;
        uint64_t size = 0;
        for (; i < line.size(); ++i) {
            char c = line[i];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0)
                break;
            if (i >= 15) {
                error_ = "chunk size too large";
                return Result::error;
            }
            size = size * 16 + static_cast<uint64_t>(d);
        }
        std::string_view rest = line.substr(i);
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t'))
            rest.remove_prefix(1);
        if (i == 0 || (!rest.empty() && rest.front() != ';') || !valid_value(rest)) {
            error_ = "malformed chunk size line";
            return Result::error;
        }
        consumed = eol + 2;
        if (size == 0) {
            state_ = State::trailers;
        } else {
            left_ = size;
            state_ = State::data;
        }
        return Result::data;
    }
    case State::trailers: {
        // Trailer fields are kept (copied: the input moves on) for trailers(); the empty line
        // ends the body.
        size_t eol = in.find("\r\n");
        if (eol == std::string_view::npos) {
            if (in.size() > kMaxLine) {
                error_ = "trailer line too long";
                return Result::error;
            }
            return Result::need_more;
        }
        std::string_view line = in.substr(0, eol);
        consumed = eol + 2;
        if (line.empty()) {
            state_ = State::done;
            index_trailers();
            return Result::done;
        }
        size_t colon = line.find(':');
        if (colon == 0 || colon == std::string_view::npos || !valid_value(line)) {
            error_ = "malformed trailer field";
            return Result::error;
        }
        for (size_t k = 0; k < colon; ++k)
            if (!is_tchar(static_cast<unsigned char>(line[k]))) {
                error_ = "malformed trailer field";
                return Result::error;
            }
        if (trailer_text_.size() + line.size() > kMaxTrailers) {
            error_ = "trailer section too large";
            return Result::error;
        }
        for (size_t k = 0; k < colon; ++k) {
            char c = line[k];
            trailer_text_.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
        }
        trailer_text_.append(line.substr(colon));
        trailer_text_.push_back('\n');
        return Result::data;
    }
    }
    return Result::error;
}

void BodyDecoder::index_trailers() {
    // "name:value\n" lines -> fields; values trimmed of optional whitespace (RFC 9110 §5.5).
    std::string_view text = trailer_text_;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        size_t colon = line.find(':');
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
            value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
            value.remove_suffix(1);
        trailers_.add(line.substr(0, colon), value);
    }
}

} // namespace wraith::proxy
