// nginx-format mime.types parsing and the built-in fallback table (see mime.h).
#include "common/mime.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/hash.h"
#include "common/strings.h"

namespace wraith {

namespace {

struct Token {
    enum class Kind { word, open, close, semicolon, end };
    Kind kind = Kind::end;
    std::string text;
    int line = 1;
    int column = 1;
};

// Splits nginx config syntax into words, braces and semicolons; skips `#` comments.
class Lexer {
public:
    Lexer(std::string_view text, const std::string& name, Diagnostics& diag)
        : text_(text), name_(name), diag_(diag) {}

    Token next() {
        skip_space_and_comments();
        Token t;
        t.line = line_;
        t.column = column_;
        if (i_ >= text_.size())
            return t;
        char c = text_[i_];
        if (c == '{' || c == '}' || c == ';') {
            t.kind = c == '{'   ? Token::Kind::open
                     : c == '}' ? Token::Kind::close
                                : Token::Kind::semicolon;
            t.text = std::string(1, c);
            advance();
            return t;
        }
        t.kind = Token::Kind::word;
        if (c == '"' || c == '\'') {
            advance();
            while (i_ < text_.size() && text_[i_] != c) {
                if (text_[i_] == '\\' && i_ + 1 < text_.size())
                    advance();
                t.text += text_[i_];
                advance();
            }
            if (i_ >= text_.size()) {
                diag_.error(SourcePos{name_, t.line, t.column}, "unterminated quoted string");
                t.kind = Token::Kind::end;
                return t;
            }
            advance(); // closing quote
            return t;
        }
        while (i_ < text_.size() && !is_delimiter(text_[i_])) {
            t.text += text_[i_];
            advance();
        }
        return t;
    }

private:
    std::string_view text_;
    const std::string& name_;
    Diagnostics& diag_;
    size_t i_ = 0;
    int line_ = 1;
    int column_ = 1;

    static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
    static bool is_delimiter(char c) {
        return is_space(c) || c == '{' || c == '}' || c == ';' || c == '#' || c == '"' || c == '\'';
    }

    void advance() {
        if (text_[i_] == '\n') {
            ++line_;
            column_ = 1;
        } else {
            ++column_;
        }
        ++i_;
    }

    void skip_space_and_comments() {
        while (i_ < text_.size()) {
            if (is_space(text_[i_])) {
                advance();
            } else if (text_[i_] == '#') {
                while (i_ < text_.size() && text_[i_] != '\n')
                    advance();
            } else {
                break;
            }
        }
    }
};

std::string describe(const Token& t) {
    if (t.kind == Token::Kind::end)
        return "the end of the file";
    return "\"" + t.text + "\"";
}

bool is_media_type(std::string_view s) {
    size_t slash = s.find('/');
    return slash != std::string_view::npos && slash > 0 && slash + 1 < s.size() &&
           s.find('/', slash + 1) == std::string_view::npos;
}

} // namespace

void MimeTypes::add(std::string_view type, std::string_view ext) {
    Entry e;
    e.type = std::string(type);
    e.ext.reserve(ext.size());
    for (char c : ext)
        e.ext += ascii_lower(c);
    entries_.push_back(std::move(e));
}

void MimeTypes::seal() {
    std::stable_sort(entries_.begin(), entries_.end(),
                     [](const Entry& a, const Entry& b) { return a.ext < b.ext; });
    // Keep the last of each run of equal extensions: a later line overrides an earlier one.
    std::vector<Entry> unique;
    unique.reserve(entries_.size());
    for (size_t i = 0; i < entries_.size(); ++i) {
        if (i + 1 < entries_.size() && entries_[i + 1].ext == entries_[i].ext)
            continue;
        unique.push_back(std::move(entries_[i]));
    }
    entries_ = std::move(unique);
    // An open-addressing index (power-of-two size, at most half full) over the extensions,
    // so a lookup per response is a short hash and one compare, not a binary search.
    size_t n = 8;
    while (n < entries_.size() * 2)
        n *= 2;
    slots_.assign(n, 0);
    for (size_t i = 0; i < entries_.size(); ++i) {
        size_t at = ext_hash(entries_[i].ext) & (n - 1);
        while (slots_[at] != 0)
            at = (at + 1) & (n - 1);
        slots_[at] = static_cast<uint32_t>(i + 1);
    }
}

uint32_t MimeTypes::ext_hash(std::string_view lower_ext) {
    return static_cast<uint32_t>(fnv1a64(lower_ext));
}

std::shared_ptr<const MimeTypes> MimeTypes::parse(std::string_view text, const std::string& name,
                                                  Diagnostics& diag) {
    auto types = std::make_shared<MimeTypes>();
    size_t errors_before = diag.count();
    Lexer lex(text, name, diag);
    auto error = [&](const Token& t, std::string message) {
        diag.error(SourcePos{name, t.line, t.column}, std::move(message));
    };

    Token t = lex.next();
    if (t.kind != Token::Kind::word || t.text != "types") {
        error(t, "expected \"types {\", got " + describe(t));
        return nullptr;
    }
    t = lex.next();
    if (t.kind != Token::Kind::open) {
        error(t, "expected \"{\" after \"types\", got " + describe(t));
        return nullptr;
    }
    // Entries: TYPE EXT... ;   After an error, skip to the next ';' so every bad line is
    // reported in one pass.
    for (;;) {
        t = lex.next();
        if (t.kind == Token::Kind::close)
            break;
        if (t.kind == Token::Kind::end) {
            error(t, "unexpected end of file: the types block is missing its \"}\"");
            return nullptr;
        }
        if (t.kind != Token::Kind::word) {
            error(t, "expected a media type like \"text/html\", got " + describe(t));
            continue;
        }
        Token type = t;
        bool valid_type = is_media_type(type.text);
        if (!valid_type)
            error(type, "\"" + type.text + "\" is not a media type (expected type/subtype)");
        size_t extensions = 0;
        for (;;) {
            t = lex.next();
            if (t.kind != Token::Kind::word)
                break;
            if (t.text.find('/') != std::string::npos)
                error(t, "\"" + t.text +
                             "\" looks like a media type, not a file extension "
                             "(missing \";\" before it?)");
            else if (t.text.find('.') != std::string::npos)
                error(t, "\"" + t.text + "\" is not a file extension (write it without dots)");
            else if (valid_type)
                types->add(type.text, t.text);
            ++extensions;
        }
        if (t.kind == Token::Kind::semicolon) {
            if (extensions == 0)
                error(type, "media type \"" + type.text + "\" needs at least one extension");
            continue;
        }
        error(t,
              "expected \";\" after the extensions of \"" + type.text + "\", got " + describe(t));
        if (t.kind == Token::Kind::close)
            break;
        if (t.kind == Token::Kind::end)
            return nullptr;
    }
    t = lex.next();
    if (t.kind != Token::Kind::end)
        error(t, "unexpected " + describe(t) + " after the types block");
    if (diag.count() != errors_before)
        return nullptr;
    types->seal();
    return types;
}

std::shared_ptr<const MimeTypes> MimeTypes::load(const std::string& path, Diagnostics& diag) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.error(SourcePos{path, 0, 0},
                   "cannot read mime types: " + std::string(std::strerror(errno)));
        return nullptr;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        diag.error(SourcePos{path, 0, 0}, "cannot read mime types");
        return nullptr;
    }
    return parse(text.str(), path, diag);
}

std::shared_ptr<const MimeTypes> MimeTypes::builtin() {
    static const std::shared_ptr<const MimeTypes> table = [] {
        static constexpr std::pair<std::string_view, std::string_view> common[] = {
            {"text/html", "html"},        {"text/html", "htm"},
            {"text/css", "css"},          {"text/javascript", "js"},
            {"text/javascript", "mjs"},   {"application/json", "json"},
            {"application/json", "map"},  {"application/manifest+json", "webmanifest"},
            {"application/xml", "xml"},   {"text/plain", "txt"},
            {"text/markdown", "md"},      {"text/csv", "csv"},
            {"image/svg+xml", "svg"},     {"image/png", "png"},
            {"image/jpeg", "jpg"},        {"image/jpeg", "jpeg"},
            {"image/gif", "gif"},         {"image/webp", "webp"},
            {"image/avif", "avif"},       {"image/x-icon", "ico"},
            {"font/woff", "woff"},        {"font/woff2", "woff2"},
            {"font/ttf", "ttf"},          {"font/otf", "otf"},
            {"application/wasm", "wasm"}, {"application/pdf", "pdf"},
            {"application/zip", "zip"},   {"application/gzip", "gz"},
            {"video/mp4", "mp4"},         {"video/webm", "webm"},
            {"audio/mpeg", "mp3"},        {"audio/ogg", "ogg"},
        };
        auto t = std::make_shared<MimeTypes>();
        for (const auto& [type, ext] : common)
            t->add(type, ext);
        t->seal();
        return std::shared_ptr<const MimeTypes>(std::move(t));
    }();
    return table;
}

std::string_view MimeTypes::lookup(std::string_view ext) const {
    char lower[32];
    if (ext.empty() || ext.size() > sizeof lower)
        return default_type;
    copy_ascii_lower(lower, ext.data(), ext.size());
    std::string_view key(lower, ext.size());
    if (slots_.empty())
        return default_type;
    const size_t mask = slots_.size() - 1;
    for (size_t at = ext_hash(key) & mask; slots_[at] != 0; at = (at + 1) & mask) {
        const Entry& e = entries_[slots_[at] - 1];
        if (e.ext == key)
            return e.type;
    }
    return default_type;
}

std::string_view MimeTypes::for_path(std::string_view path) const {
    size_t slash = path.rfind('/');
    std::string_view file = slash == std::string_view::npos ? path : path.substr(slash + 1);
    size_t dot = file.rfind('.');
    if (dot == std::string_view::npos || dot == 0) // no extension, or a dot file like ".env"
        return default_type;
    return lookup(file.substr(dot + 1));
}

} // namespace wraith
