// HTTP-date (RFC 9110 §5.6.7): Last-Modified, If-Modified-Since, Date, Expires.
#pragma once

#include <cstddef>
#include <ctime>
#include <optional>
#include <string_view>

namespace wraith {

// Longest output of format_http_date plus its NUL.
inline constexpr size_t http_date_size = 32;

// Writes `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") NUL-terminated into `out`.
// Returns the length (29), or 0 when the year does not fit in four digits. Never allocates.
size_t format_http_date(time_t t, char out[http_date_size]);

// Parses the three forms recipients must accept: IMF-fixdate, RFC 850 ("Sunday, 06-Nov-94
// 08:49:37 GMT"; a two-digit year more than 50 years ahead means the previous century) and
// asctime ("Sun Nov  6 08:49:37 1994"). Surrounding whitespace is ignored. Nullopt if invalid.
std::optional<time_t> parse_http_date(std::string_view s);

} // namespace wraith
