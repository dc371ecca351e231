#include "modules/static/content_type.h"

#include <cstring>

namespace wraith::static_files {

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size())
        return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
        if (c != prefix[i])
            return false;
    }
    return true;
}

// The type/subtype without parameters or trailing whitespace.
std::string_view essence(std::string_view type) {
    size_t semi = type.find(';');
    if (semi != std::string_view::npos)
        type = type.substr(0, semi);
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
        type.remove_suffix(1);
    return type;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && iequals_prefix(s.substr(s.size() - suffix.size()), suffix);
}

bool equals_ci(std::string_view s, std::string_view t) {
    return s.size() == t.size() && iequals_prefix(s, t);
}

} // namespace

bool is_textual_type(std::string_view type) {
    std::string_view t = essence(type);
    if (iequals_prefix(t, "text/"))
        return true;
    static constexpr std::string_view kTextual[] = {
        "application/javascript",    "application/x-javascript", "application/ecmascript",
        "application/json",          "application/xml",          "application/xhtml+xml",
        "application/rss+xml",       "application/atom+xml",     "image/svg+xml",
        "application/manifest+json", "application/ld+json",      "application/x-sh",
    };
    for (std::string_view k : kTextual)
        if (equals_ci(t, k))
            return true;
    return ends_with_ci(t, "+json") || ends_with_ci(t, "+xml");
}

bool is_compressible_type(std::string_view type) {
    if (is_textual_type(type))
        return true;
    std::string_view t = essence(type);
    static constexpr std::string_view kBinary[] = {
        "application/wasm", "font/ttf",
        "font/otf",         "application/x-font-ttf",
        "image/x-icon",     "image/vnd.microsoft.icon",
        "image/bmp",        "application/vnd.ms-fontobject",
    };
    for (std::string_view k : kBinary)
        if (equals_ci(t, k))
            return true;
    return false;
}

std::string_view with_charset(std::string_view type, std::string_view charset, Arena& arena) {
    if (charset.empty() || type.find(';') != std::string_view::npos || !is_textual_type(type))
        return type;
    static constexpr std::string_view kParam = "; charset=";
    size_t n = type.size() + kParam.size() + charset.size();
    char* p = static_cast<char*>(arena.alloc(n, 1));
    std::memcpy(p, type.data(), type.size());
    std::memcpy(p + type.size(), kParam.data(), kParam.size());
    std::memcpy(p + type.size() + kParam.size(), charset.data(), charset.size());
    return {p, n};
}

} // namespace wraith::static_files
