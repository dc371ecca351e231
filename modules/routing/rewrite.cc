// `rewrite = { pattern = '^/old/(.*)$', replace = '/new/$1' }`: an internal rewrite. The
// pattern is searched in the decoded path; its groups become $1..$9; the replacement (with any
// request variable) becomes the new path, and a '?' in it the new query: the original
// arguments are appended unless the replacement ends with '?' (as NGINX's rewrite). A route
// with a rewrite and no handler sends the request through routing again (Router::resolve).
#include "modules/routing/routing.h"

#include <cstring>

#include "common/config_reader.h"
#include "common/path.h"
#include "common/regex.h"
#include "common/variables.h"

namespace wraith::routing {

namespace {

// Bytes a path may carry as they are (RFC 3986 pchar and '/'); the rest is percent-encoded,
// so the raw path the proxy forwards stays a valid request-target.
bool path_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr("-._~!$&'()*+,;=:@/", c) != nullptr;
}

std::string_view encode_path(std::string_view s, Arena& arena) {
    size_t n = 0;
    for (unsigned char c : s)
        n += path_char(c) ? 1 : 3;
    if (n == s.size())
        return arena.copy(s);
    char* out = static_cast<char*>(arena.alloc(n, 1));
    static constexpr char hex[] = "0123456789ABCDEF";
    size_t at = 0;
    for (unsigned char c : s) {
        if (path_char(c)) {
            out[at++] = static_cast<char>(c);
        } else {
            out[at++] = '%';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        }
    }
    return {out, n};
}

// A query from the replacement: control characters, spaces and '#' are encoded.
std::string_view clean_query(std::string_view s, Arena& arena) {
    size_t n = 0;
    for (unsigned char c : s)
        n += (c <= 0x20 || c >= 0x7f || c == '#') ? 3 : 1;
    if (n == s.size())
        return s;
    char* out = static_cast<char*>(arena.alloc(n, 1));
    static constexpr char hex[] = "0123456789ABCDEF";
    size_t at = 0;
    for (unsigned char c : s) {
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            out[at++] = '%';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        } else {
            out[at++] = static_cast<char>(c);
        }
    }
    return {out, n};
}

class Rewrite final : public RouteRewrite {
public:
    Rewrite(std::shared_ptr<const Regex> pattern, VarString replace)
        : pattern_(std::move(pattern)), replace_(std::move(replace)) {}

    bool matches(const Request& req) const override { return pattern_->search(req.decoded_path); }

    bool apply(Request& req, std::string& error) const override {
        Arena& arena = *req.arena;
        auto* caps = arena.make<Captures>();
        if (!pattern_->search(req.decoded_path, caps))
            return false;
        req.captures = caps; // the replacement and later rules see these groups
        std::string_view result = replace_.expand(req, arena);
        std::string_view path = result, query = req.query;
        if (size_t q = result.find('?'); q != std::string_view::npos) {
            path = result.substr(0, q);
            std::string_view added = result.substr(q + 1);
            if (q + 1 == result.size()) {
                query = {}; // "...?" drops the original arguments
            } else if (!req.query.empty()) {
                char* joined =
                    static_cast<char*>(arena.alloc(added.size() + 1 + req.query.size(), 1));
                std::memcpy(joined, added.data(), added.size());
                joined[added.size()] = '&';
                std::memcpy(joined + added.size() + 1, req.query.data(), req.query.size());
                query = {joined, added.size() + 1 + req.query.size()};
            } else {
                query = added;
            }
        }
        if (path.empty() || path.front() != '/') {
            error = "the result \"" + std::string(result.substr(0, 200)) +
                    "\" is not a path starting with \"/\"";
            return false;
        }
        std::string_view raw = encode_path(path, arena);
        std::string_view decoded;
        if (!normalize_path(raw, arena, decoded)) {
            error = "the result \"" + std::string(result.substr(0, 200)) +
                    "\" leaves the root (\"..\")";
            return false;
        }
        req.path = raw;
        req.decoded_path = decoded;
        req.query = clean_query(query, arena);
        return true;
    }

private:
    std::shared_ptr<const Regex> pattern_;
    VarString replace_;
};

} // namespace

std::unique_ptr<RouteRewrite> build_rewrite(TableReader& t, BuildContext& ctx) {
    const size_t errors = t.diag().count();
    std::shared_ptr<const Regex> pattern;
    if (std::optional<std::string> p = t.string("pattern")) {
        std::string why;
        if (p->empty())
            t.error("pattern", "must not be empty (\"^/old/(.*)$\")");
        else if (!(pattern = Regex::compile(*p, Regex::none, &why)))
            t.error("pattern", "bad regex \"" + *p + "\": " + why);
    } else if (!t.has("pattern")) {
        t.error("pattern", "required: the regex searched in the path, e.g. '^/old/(.*)$'");
    }
    VarString replace;
    if (std::optional<std::string> r = t.string("replace")) {
        std::string why;
        size_t at = 0;
        if (r->rfind("http://", 0) == 0 || r->rfind("https://", 0) == 0)
            t.error("replace", "a rewrite stays inside the server; for a URL use a route with "
                               "redirect = { to = \"" +
                                   *r + "\" }");
        else if (r->empty() || r->front() != '/')
            t.error("replace", "expected a path starting with \"/\", e.g. \"/new/$1\"");
        else if (!replace.compile(*r, &why, &at))
            t.error("replace", why + " (at character " + std::to_string(at + 1) + ")");
        else if (pattern && replace.highest_capture() > pattern->groups())
            t.error("replace", "$" + std::to_string(replace.highest_capture()) +
                                   " names a capture group the pattern does not have (it has " +
                                   std::to_string(pattern->groups()) + ")");
    } else if (!t.has("replace")) {
        t.error("replace", "required: the new path, e.g. \"/new/$1\"");
    }
    if (t.diag().count() != errors || !pattern)
        return nullptr;
    return std::make_unique<Rewrite>(std::move(pattern), std::move(replace));
}

} // namespace wraith::routing
