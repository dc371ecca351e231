// Reading parts of a request the way routing rules name them: a header by name (any of its
// fields), a query argument, a cookie (across every Cookie field, as HTTP/2 splits them). All
// views into the request; nothing is allocated or decoded.
#pragma once

#include <optional>
#include <string_view>

#include "common/http.h"

namespace wraith::routing {

// The first field `name` (lower-case); nullopt when there is none.
std::optional<std::string_view> header_value(const Request& req, std::string_view name);
// Query argument `name` as sent (the first one); nullopt when absent, "" for "?name" or "?name=".
std::optional<std::string_view> query_value(std::string_view query, std::string_view name);
// Cookie `name` from the request's Cookie fields; nullopt when absent.
std::optional<std::string_view> cookie_value(const Request& req, std::string_view name);

} // namespace wraith::routing
