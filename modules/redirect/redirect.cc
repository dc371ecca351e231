#include "modules/redirect/redirect.h"

#include <algorithm>
#include <cstring>

#include "common/config_reader.h"

namespace wraith {

namespace {

struct VarName {
    std::string_view name;
    LocationTemplate::Var var;
};

constexpr VarName var_names[] = {
    {"scheme", LocationTemplate::Var::scheme},
    {"host", LocationTemplate::Var::host},
    {"request_uri", LocationTemplate::Var::request_uri},
    {"uri", LocationTemplate::Var::uri},
    {"query", LocationTemplate::Var::query},
};

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Bytes a URI cannot carry as they are (RFC 3986 §2: outside the reserved and unreserved sets,
// plus '%' when the text is already decoded).
bool needs_encoding(unsigned char c, bool decoded) {
    if (c <= 0x20 || c >= 0x7f)
        return true;
    if (std::strchr("\"<>\\^`{|}", c))
        return true;
    return decoded && (c == '%' || c == '?' || c == '#');
}

// Counts (out == nullptr) or writes the expansion.
class Sink {
public:
    explicit Sink(char* out) : out_(out) {}
    void raw(std::string_view s) {
        if (out_)
            std::memcpy(out_ + n_, s.data(), s.size());
        n_ += s.size();
    }
    void encoded(std::string_view s, bool decoded) {
        static constexpr char hex[] = "0123456789ABCDEF";
        for (char ch : s) {
            auto c = static_cast<unsigned char>(ch);
            if (!needs_encoding(c, decoded)) {
                if (out_)
                    out_[n_] = ch;
                ++n_;
                continue;
            }
            if (out_) {
                out_[n_] = '%';
                out_[n_ + 1] = hex[c >> 4];
                out_[n_ + 2] = hex[c & 15];
            }
            n_ += 3;
        }
    }
    size_t size() const { return n_; }

private:
    char* out_;
    size_t n_ = 0;
};

void expand_into(const std::vector<LocationTemplate::Part>& parts, const Request& req, Sink& sink) {
    using Var = LocationTemplate::Var;
    for (const auto& part : parts) {
        switch (part.var) {
        case Var::literal:
            sink.raw(part.text);
            break;
        case Var::scheme:
            sink.encoded(req.scheme, false);
            break;
        case Var::host:
            sink.encoded(req.host, false);
            break;
        case Var::request_uri:
            if (req.target.starts_with('/')) { // origin-form: exactly as received
                sink.encoded(req.target, false);
            } else {
                sink.encoded(req.path, false);
                if (!req.query.empty()) {
                    sink.raw("?");
                    sink.encoded(req.query, false);
                }
            }
            break;
        case Var::uri:
            if (req.decoded_path.empty()) // no router ran: the raw path is already encoded
                sink.encoded(req.path, false);
            else
                sink.encoded(req.decoded_path, true);
            break;
        case Var::query:
            sink.encoded(req.query, false);
            break;
        case Var::other:
            // Values come from the request (headers, query, captures of the decoded path):
            // encoded like $uri, so they cannot change the URL's structure.
            sink.encoded(part.get(req, part.text, *req.arena), true);
            break;
        }
    }
}

std::string_view reason(int status) {
    switch (status) {
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    }
    return "Redirect";
}

std::string_view concat(Arena& arena, std::initializer_list<std::string_view> pieces) {
    size_t n = 0;
    for (auto p : pieces)
        n += p.size();
    char* out = static_cast<char*>(arena.alloc(n ? n : 1, 1));
    size_t at = 0;
    for (auto p : pieces) {
        std::memcpy(out + at, p.data(), p.size());
        at += p.size();
    }
    return {out, n};
}

} // namespace

std::optional<LocationTemplate> LocationTemplate::parse(std::string_view text, std::string& error) {
    LocationTemplate t;
    std::string literal;
    auto flush = [&] {
        if (!literal.empty())
            t.parts_.push_back({Var::literal, std::move(literal)});
        literal.clear();
    };
    for (size_t i = 0; i < text.size();) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f || c == ' ') {
            error = "character " + std::to_string(i + 1) +
                    " is a space or control character; percent-encode it (\"%20\")";
            return std::nullopt;
        }
        if (c >= 0x80) {
            error = "character " + std::to_string(i + 1) +
                    " is not ASCII; percent-encode it (UTF-8 bytes as \"%XX\")";
            return std::nullopt;
        }
        if (c != '$') {
            literal += char(c);
            ++i;
            continue;
        }
        const size_t start = i;
        if (i + 1 < text.size() && text[i + 1] == '$') {
            literal += '$';
            i += 2;
            continue;
        }
        std::string_view name;
        if (i + 1 < text.size() && text[i + 1] == '{') {
            size_t close = text.find('}', i + 2);
            if (close == std::string_view::npos) {
                error = "character " + std::to_string(start + 1) + ": \"${\" without \"}\"";
                return std::nullopt;
            }
            name = text.substr(i + 2, close - i - 2);
            i = close + 1;
        } else if (i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '9') {
            name = text.substr(i + 1, 1); // "$1x" is $1 then "x"
            i += 2;
        } else {
            size_t end = i + 1;
            while (end < text.size() && is_name_char(text[end]))
                ++end;
            name = text.substr(i + 1, end - i - 1);
            i = end;
        }
        const VarName* found = nullptr;
        for (const auto& v : var_names)
            if (v.name == name)
                found = &v;
        std::string_view suffix;
        VariableGetter getter =
            found || name.empty() ? nullptr : Variables::instance().find(name, &suffix);
        if (!found && !getter) {
            error = "character " + std::to_string(start + 1) + ": " +
                    (name.empty() ? std::string("\"$\" without a variable name")
                                  : "unknown variable \"$" + std::string(name) + "\"") +
                    "; expected $scheme, $host, $request_uri, $uri, $query, another request "
                    "variable ($arg_NAME, $http_NAME, $1..$9; man wraith.toml), or $$ for a "
                    "literal \"$\"";
            return std::nullopt;
        }
        flush();
        if (found) {
            t.parts_.push_back({found->var, {}});
        } else {
            if (name.size() == 1 && name[0] >= '1' && name[0] <= '9')
                t.highest_capture_ = std::max(t.highest_capture_, name[0] - '0');
            t.parts_.push_back({Var::other, std::string(suffix), getter});
        }
    }
    flush();
    return t;
}

std::string_view LocationTemplate::expand(const Request& req, Arena& arena) const {
    Sink count(nullptr);
    expand_into(parts_, req, count);
    char* out = static_cast<char*>(arena.alloc(count.size() ? count.size() : 1, 1));
    Sink write(out);
    expand_into(parts_, req, write);
    return {out, write.size()};
}

std::string_view html_escape(std::string_view s, Arena& arena) {
    size_t n = 0;
    for (char c : s) {
        switch (c) {
        case '&':
            n += 5;
            break; // &amp;
        case '<':
        case '>':
            n += 4;
            break; // &lt; &gt;
        case '"':
        case '\'':
            n += 5;
            break; // &#34; &#39;
        default:
            n += 1;
        }
    }
    if (n == s.size())
        return s;
    char* out = static_cast<char*>(arena.alloc(n, 1));
    size_t at = 0;
    auto put = [&](std::string_view t) {
        std::memcpy(out + at, t.data(), t.size());
        at += t.size();
    };
    for (char c : s) {
        switch (c) {
        case '&':
            put("&amp;");
            break;
        case '<':
            put("&lt;");
            break;
        case '>':
            put("&gt;");
            break;
        case '"':
            put("&#34;");
            break;
        case '\'':
            put("&#39;");
            break;
        default:
            out[at++] = c;
        }
    }
    return {out, n};
}

RedirectHandler::RedirectHandler(LocationTemplate to, int status)
    : to_(std::move(to)), status_(status) {}

void RedirectHandler::handle(Request& req, BodyReader& body, ResponseWriter& out) const {
    Arena& arena = *req.arena;
    if (req.has_body)
        body.discard();
    std::string_view location = to_.expand(req, arena);
    std::string_view href = html_escape(location, arena);
    char code[4] = {char('0' + status_ / 100), char('0' + status_ / 10 % 10),
                    char('0' + status_ % 10), 0};
    std::string_view why = reason(status_);
    std::string_view html = concat(arena, {"<!DOCTYPE html>\n<html><head><title>",
                                           {code, 3},
                                           " ",
                                           why,
                                           "</title></head>\n<body><h1>",
                                           why,
                                           "</h1><p><a href=\"",
                                           href,
                                           "\">",
                                           href,
                                           "</a></p></body></html>\n"});

    auto* head = arena.make<ResponseHead>();
    head->status = status_;
    head->headers.add("location", location);
    head->headers.add("content-type", "text/html; charset=utf-8");
    head->content_length = int64_t(html.size());
    if (req.method_id == Method::head) {
        out.send_headers(*head, true);
        return;
    }
    out.send_headers(*head, false);
    out.send_body(html, true);
}

std::unique_ptr<Handler> build_redirect(TableReader& t, BuildContext& ctx) {
    const size_t errors_before = t.diag().count();
    std::optional<LocationTemplate> to;
    if (!t.has("to")) {
        t.error("to", "missing: the redirect target is required, e.g. "
                      "to = \"https://example.com$request_uri\"");
    } else if (auto text = t.string("to")) {
        std::string error;
        if (text->empty())
            t.error("to", "empty; expected a URL such as \"https://example.com/\"");
        else if (!(to = LocationTemplate::parse(*text, error)))
            t.error("to", error);
        else if (std::string bad = check_captures(to->highest_capture(), ctx); !bad.empty())
            t.error("to", bad);
    }
    int64_t status = t.integer("status", 301, 300, 399);
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        t.error("status", "redirect status " + std::to_string(status) +
                              " is not one of 301, 302, 303, 307, 308");
    if (t.diag().count() != errors_before || !to)
        return nullptr;
    return std::make_unique<RedirectHandler>(std::move(*to), int(status));
}

// Answers with a 301/302/303/307/308 redirect.
const ModuleSpec& redirect_module() {
    static const ModuleSpec spec{
        .key = "redirect", .is_handler = true, .build_handler = build_redirect};
    return spec;
}

} // namespace wraith
