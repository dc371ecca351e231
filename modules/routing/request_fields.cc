#include "modules/routing/request_fields.h"

namespace wraith::routing {

std::optional<std::string_view> header_value(const Request& req, std::string_view name) {
    if (const Header* h = req.headers.find(name))
        return h->value;
    return std::nullopt;
}

std::optional<std::string_view> query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        if (amp == std::string_view::npos)
            break;
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

std::optional<std::string_view> cookie_value(const Request& req, std::string_view name) {
    // One pass over each Cookie field: linear in its size however many cookies it holds.
    for (const Header& h : req.headers) {
        if (h.name != "cookie")
            continue;
        if (auto value = find_cookie(h.value, name))
            return value;
    }
    return std::nullopt;
}

} // namespace wraith::routing
