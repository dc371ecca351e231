#include "common/json_reader.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "common/strings.h"

namespace wraith::json {

const Value* Value::find(std::string_view key) const {
    if (type != Type::object)
        return nullptr;
    for (const Member& m : members)
        if (m.key == key)
            return &m.value;
    return nullptr;
}

const Value& Value::operator[](std::string_view key) const {
    static const Value null_value;
    const Value* v = find(key);
    return v ? *v : null_value;
}

uint64_t Value::as_uint(uint64_t fallback) const {
    return type == Type::number && is_uint ? integer : fallback;
}

double Value::as_double(double fallback) const {
    return type == Type::number ? number : fallback;
}

std::string_view Value::as_string() const {
    return type == Type::string ? std::string_view(text) : std::string_view();
}

std::string Error::describe() const {
    return "at byte " + std::to_string(offset) + ": " + message;
}

namespace {

constexpr int kDepthCap = 1000; // the recursion below stays well inside any thread's stack

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r'; // RFC 8259 §2
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

// The length of the well-formed UTF-8 sequence at `s` (RFC 3629 §4: no overlong forms, no
// surrogates, nothing past U+10FFFF), or 0.
size_t utf8_sequence(const unsigned char* s, size_t avail) {
    const unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; // the range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (avail < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; ++i)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

class Parser {
public:
    Parser(std::string_view text, const Limits& limits, Error* error)
        : text_(text), limits_(limits), error_(error),
          max_depth_(std::clamp(limits.max_depth, 1, kDepthCap)) {}

    bool document(Value& out) {
        if (text_.size() > limits_.max_size)
            return fail(limits_.max_size,
                        "larger than " + std::to_string(limits_.max_size) + " bytes");
        if (!value(out, 0))
            return false;
        skip_space();
        if (pos_ != text_.size())
            return fail(pos_, "unexpected data after the value");
        return true;
    }

private:
    bool fail(size_t at, std::string message) {
        error_->offset = at;
        error_->message = std::move(message);
        return false;
    }

    void skip_space() {
        while (pos_ < text_.size() && is_space(text_[pos_]))
            ++pos_;
    }

    bool at_end() const { return pos_ >= text_.size(); }

    bool value(Value& v, int depth) {
        skip_space();
        if (at_end())
            return fail(pos_, "unexpected end of input");
        if (++values_ > limits_.max_values)
            return fail(pos_, "more than " + std::to_string(limits_.max_values) + " values");
        switch (text_[pos_]) {
        case '{':
            return object(v, depth + 1);
        case '[':
            return array(v, depth + 1);
        case '"':
            v.type = Type::string;
            return string(v.text);
        case 't':
            v.type = Type::boolean;
            v.boolean = true;
            return literal("true");
        case 'f':
            v.type = Type::boolean;
            return literal("false");
        case 'n':
            v.type = Type::null;
            return literal("null");
        default:
            if (text_[pos_] == '-' || is_digit(text_[pos_]))
                return number(v);
            return fail(pos_, "unexpected character");
        }
    }

    bool literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word)
            return fail(pos_, "invalid literal");
        pos_ += word.size();
        return true;
    }

    bool enter(int depth) {
        if (depth > max_depth_)
            return fail(pos_, "nested deeper than " + std::to_string(max_depth_));
        ++pos_; // the '[' or '{'
        skip_space();
        return true;
    }

    // After an element: ',' (true, more follow) or `close` (true, `*done` set).
    bool next(char close, bool* done) {
        skip_space();
        if (at_end())
            return fail(pos_, "unexpected end of input");
        if (text_[pos_] == ',') {
            ++pos_;
            return true;
        }
        if (text_[pos_] == close) {
            ++pos_;
            *done = true;
            return true;
        }
        return fail(pos_, std::string("expected ',' or '") + close + "'");
    }

    bool array(Value& v, int depth) {
        v.type = Type::array;
        if (!enter(depth))
            return false;
        if (!at_end() && text_[pos_] == ']') {
            ++pos_;
            return true;
        }
        for (bool done = false; !done;) {
            v.items.emplace_back();
            if (!value(v.items.back(), depth) || !next(']', &done))
                return false;
        }
        return true;
    }

    bool object(Value& v, int depth) {
        v.type = Type::object;
        if (!enter(depth))
            return false;
        if (!at_end() && text_[pos_] == '}') {
            ++pos_;
            return true;
        }
        for (bool done = false; !done;) {
            skip_space();
            if (at_end())
                return fail(pos_, "unexpected end of input");
            if (text_[pos_] != '"')
                return fail(pos_, "expected a member name in double quotes");
            v.members.emplace_back();
            Member& m = v.members.back();
            if (!string(m.key))
                return false;
            skip_space();
            if (at_end() || text_[pos_] != ':')
                return fail(pos_, "expected ':' after the member name");
            ++pos_;
            if (!value(m.value, depth) || !next('}', &done))
                return false;
        }
        return true;
    }

    // Four hex digits after "\u" at pos_ (which is on the 'u').
    bool hex4(uint32_t* out) {
        if (text_.size() - pos_ < 5)
            return fail(pos_ - 1, "truncated \\u escape");
        uint32_t cp = 0;
        for (size_t i = 1; i <= 4; ++i) {
            int h = hex_digit_value(text_[pos_ + i]);
            if (h < 0)
                return fail(pos_ - 1, "\\u needs four hex digits");
            cp = cp << 4 | static_cast<uint32_t>(h);
        }
        pos_ += 5;
        *out = cp;
        return true;
    }

    // One escape; pos_ is on the backslash.
    bool escape(std::string& out) {
        const size_t start = pos_;
        if (++pos_ >= text_.size())
            return fail(start, "unexpected end of input in an escape");
        const char c = text_[pos_];
        const char* simple = nullptr;
        switch (c) {
        case '"':
            simple = "\"";
            break;
        case '\\':
            simple = "\\";
            break;
        case '/':
            simple = "/";
            break;
        case 'b':
            simple = "\b";
            break;
        case 'f':
            simple = "\f";
            break;
        case 'n':
            simple = "\n";
            break;
        case 'r':
            simple = "\r";
            break;
        case 't':
            simple = "\t";
            break;
        case 'u':
            break;
        default:
            return fail(start, "invalid escape");
        }
        if (simple) {
            out += *simple;
            ++pos_;
            return true;
        }
        uint32_t cp;
        if (!hex4(&cp))
            return false;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail(start, "low surrogate without a high one before it");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            // RFC 8259 §7: a character outside the BMP is a UTF-16 surrogate pair.
            if (text_.substr(pos_, 2) != "\\u")
                return fail(start, "high surrogate without a low one after it");
            ++pos_;
            uint32_t low;
            if (!hex4(&low))
                return false;
            if (low < 0xdc00 || low > 0xdfff)
                return fail(start, "high surrogate without a low one after it");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        append_utf8(out, cp);
        return true;
    }

    // A string; pos_ is on the opening quote. Runs without escapes are appended whole.
    bool string(std::string& out) {
        const size_t open = pos_++;
        size_t run = pos_;
        while (pos_ < text_.size()) {
            const auto c = static_cast<unsigned char>(text_[pos_]);
            if (c == '"' || c == '\\') {
                out.append(text_, run, pos_ - run);
                if (c == '"') {
                    ++pos_;
                    return true;
                }
                if (!escape(out))
                    return false;
                run = pos_;
            } else if (c < 0x20) {
                return fail(pos_, "control character in a string");
            } else if (c < 0x80) {
                ++pos_;
            } else {
                const size_t len =
                    utf8_sequence(reinterpret_cast<const unsigned char*>(text_.data()) + pos_,
                                  text_.size() - pos_);
                if (!len)
                    return fail(pos_, "invalid UTF-8");
                pos_ += len;
            }
        }
        return fail(open, "unterminated string");
    }

    // RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
    bool number(Value& v) {
        const size_t start = pos_;
        const bool negative = text_[pos_] == '-';
        if (negative)
            ++pos_;
        const size_t int_start = pos_;
        if (at_end() || !is_digit(text_[pos_]))
            return fail(pos_, "expected a digit");
        if (text_[pos_] == '0' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1]))
            return fail(pos_, "leading zero");
        while (!at_end() && is_digit(text_[pos_]))
            ++pos_;
        const size_t int_end = pos_;
        size_t frac_start = pos_, frac_end = pos_;
        if (!at_end() && text_[pos_] == '.') {
            frac_start = ++pos_;
            if (at_end() || !is_digit(text_[pos_]))
                return fail(pos_, "expected a digit after '.'");
            while (!at_end() && is_digit(text_[pos_]))
                ++pos_;
            frac_end = pos_;
        }
        int64_t exponent = 0;
        const bool has_exponent = !at_end() && (text_[pos_] == 'e' || text_[pos_] == 'E');
        if (has_exponent) {
            ++pos_;
            bool exp_negative = false;
            if (!at_end() && (text_[pos_] == '+' || text_[pos_] == '-'))
                exp_negative = text_[pos_++] == '-';
            if (at_end() || !is_digit(text_[pos_]))
                return fail(pos_, "expected a digit in the exponent");
            for (; !at_end() && is_digit(text_[pos_]); ++pos_)
                exponent = std::min<int64_t>(exponent * 10 + (text_[pos_] - '0'), 1'000'000'000);
            if (exp_negative)
                exponent = -exponent;
        }
        v.type = Type::number;
        const char* first = text_.data() + start;
        const char* last = text_.data() + pos_;
        auto [end, ec] = std::from_chars(first, last, v.number);
        if (ec == std::errc::result_out_of_range) {
            // Too small rounds to zero; too large is an error.
            if (magnitude(int_start, int_end, frac_start, frac_end, exponent) >= 0)
                return fail(start, "number out of range");
            v.number = negative ? -0.0 : 0.0;
        } else if (ec != std::errc() || end != last) {
            return fail(start, "invalid number"); // not reached: the grammar was checked
        }
        if (!negative && frac_end == frac_start && !has_exponent) {
            uint64_t n = 0;
            for (size_t i = int_start; i < int_end; ++i) {
                const auto d = static_cast<uint64_t>(text_[i] - '0');
                if (n > (UINT64_MAX - d) / 10)
                    return true; // exact only as far as 64 bits reach
                n = n * 10 + d;
            }
            v.is_uint = true;
            v.integer = n;
        }
        return true;
    }

    // The power of ten of a literal's first significant digit (0 for "1.5", -3 for "0.001"),
    // roughly: enough to tell an overflow from an underflow.
    int64_t magnitude(size_t int_start, size_t int_end, size_t frac_start, size_t frac_end,
                      int64_t exponent) const {
        if (text_[int_start] != '0')
            return static_cast<int64_t>(int_end - int_start) - 1 + exponent;
        size_t i = frac_start;
        while (i < frac_end && text_[i] == '0')
            ++i;
        return -static_cast<int64_t>(i - frac_start) - 1 + exponent;
    }

    std::string_view text_;
    const Limits& limits_;
    Error* error_;
    const int max_depth_;
    size_t pos_ = 0;
    size_t values_ = 0;
};

} // namespace

bool parse(std::string_view text, Value* out, Error* error, const Limits& limits) {
    *out = Value();
    Parser parser(text, limits, error);
    return parser.document(*out);
}

} // namespace wraith::json
