#include "modules/static/validators.h"

#include <cstdint>
#include <optional>

#include "common/http_date.h"
#include "common/hash.h"

namespace wraith::static_files {

namespace {

// One splitmix64 step: the golden-ratio increment, then the finaliser.
uint64_t mix(uint64_t x) {
    return mix64(x + 0x9e3779b97f4a7c15ull);
}

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ows(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back()))
        s.remove_suffix(1);
    return s;
}

// Strips "W/" and reports whether it was there.
std::string_view opaque(std::string_view tag, bool& weak) {
    weak = tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/';
    if (weak)
        tag.remove_prefix(2);
    return tag;
}

// Calls fn(value) for each line of `name`, stopping early when fn returns true.
template <class Fn> bool any_line(const Headers& headers, std::string_view name, Fn fn) {
    for (const Header& h : headers)
        if (h.name == name && fn(h.value))
            return true;
    return false;
}

std::optional<time_t> first_date(const Headers& headers, std::string_view name) {
    // A repeated date field is invalid; use the first and ignore it if it does not parse.
    const Header* h = headers.find(name);
    if (!h)
        return std::nullopt;
    return parse_http_date(h->value);
}

} // namespace

size_t make_etag(const struct stat& st, std::string_view suffix, char out[etag_size]) {
    const uint64_t mtime_ns = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                              static_cast<uint64_t>(st.st_mtim.tv_nsec);
    uint64_t h = mix(static_cast<uint64_t>(st.st_ino));
    h = mix(h ^ mtime_ns);
    h = mix(h ^ static_cast<uint64_t>(st.st_size));
    // Lower-case base32: tools that lower-case header text (wrongly, ETags are
    // case-sensitive) still match, and QPACK/HPACK Huffman codes these digits short.
    static constexpr char kDigits[] = "abcdefghijklmnopqrstuvwxyz234567";
    char* p = out;
    *p++ = '"';
    for (int shift = 60; shift >= 0; shift -= 5) // 13 digits of 5 bits, the first of 4
        *p++ = kDigits[(h >> shift) & 31];
    // 13 digits + 2 quotes; the suffix is short ("-zst").
    if (suffix.size() > etag_size - 16)
        suffix = suffix.substr(0, etag_size - 16);
    for (char c : suffix)
        *p++ = c;
    *p++ = '"';
    *p = '\0';
    return static_cast<size_t>(p - out);
}

bool etag_list_matches(std::string_view field, std::string_view etag, bool strong) {
    bool etag_weak;
    std::string_view want = opaque(etag, etag_weak);
    if (strong && etag_weak)
        return false;
    if (trim(field) == "*")
        return true;
    // entity-tag = [ W/ ] DQUOTE *etagc DQUOTE; an opaque tag cannot contain '"' so the
    // list splits on commas outside quotes.
    size_t i = 0;
    while (i < field.size()) {
        while (i < field.size() && (is_ows(field[i]) || field[i] == ','))
            ++i;
        if (i >= field.size())
            break;
        size_t start = i;
        if (field.substr(i, 2) == "W/")
            i += 2;
        if (i >= field.size() || field[i] != '"') {
            // Malformed element: skip to the next comma.
            while (i < field.size() && field[i] != ',')
                ++i;
            continue;
        }
        size_t close = field.find('"', i + 1);
        if (close == std::string_view::npos)
            return false;
        std::string_view tag = field.substr(start, close + 1 - start);
        i = close + 1;
        bool weak;
        std::string_view op = opaque(tag, weak);
        if (strong && weak)
            continue;
        if (op == want)
            return true;
        // Weak comparison also matches the tag the compress filter gave a compressed copy of
        // this representation ("abc-gzip" for "abc"), so such copies revalidate to 304.
        if (!strong && op.size() > 2 && want.size() > 2) {
            std::string_view op_in = op.substr(0, op.size() - 1); // without closing quote
            std::string_view want_in = want.substr(0, want.size() - 1);
            for (std::string_view suffix : {"-gzip", "-br", "-zstd"}) {
                if (op_in.size() == want_in.size() + suffix.size() && op_in.ends_with(suffix) &&
                    op_in.starts_with(want_in))
                    return true;
            }
        }
    }
    return false;
}

Precondition evaluate_preconditions(const Headers& headers, bool safe, std::string_view etag,
                                    time_t last_modified) {
    // Step 1: If-Match, else step 2: If-Unmodified-Since.
    if (headers.find("if-match")) {
        bool match = !etag.empty() && any_line(headers, "if-match", [&](std::string_view v) {
            return etag_list_matches(v, etag, true);
        });
        // "*" matches any existing representation even without an ETag.
        if (!match && etag.empty())
            match =
                any_line(headers, "if-match", [](std::string_view v) { return trim(v) == "*"; });
        if (!match)
            return Precondition::failed;
    } else if (auto since = first_date(headers, "if-unmodified-since")) {
        if (last_modified > *since)
            return Precondition::failed;
    }
    // Step 3: If-None-Match, else step 4: If-Modified-Since (GET/HEAD only).
    if (headers.find("if-none-match")) {
        bool match = any_line(headers, "if-none-match", [&](std::string_view v) {
            return trim(v) == "*" || (!etag.empty() && etag_list_matches(v, etag, false));
        });
        if (match)
            return safe ? Precondition::not_modified : Precondition::failed;
    } else if (safe) {
        if (auto since = first_date(headers, "if-modified-since")) {
            if (last_modified <= *since)
                return Precondition::not_modified;
        }
    }
    return Precondition::pass;
}

bool if_range_allows(const Headers& headers, std::string_view etag, time_t last_modified) {
    const Header* h = headers.find("if-range");
    if (!h)
        return true;
    std::string_view v = trim(h->value);
    if (v.empty())
        return false;
    if (v.front() == '"' || v.starts_with("W/")) {
        // A single entity-tag, compared strongly (a weak one never matches).
        if (etag.empty() || v.front() != '"' || v.size() < 2 || v.back() != '"')
            return false;
        bool weak;
        opaque(etag, weak);
        return !weak && v == etag;
    }
    auto date = parse_http_date(v);
    return date && *date == last_modified;
}

} // namespace wraith::static_files
