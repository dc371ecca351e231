// Validators and preconditions for static files: ETag generation, entity-tag comparison and
// the RFC 9110 §13.2.2 evaluation order of If-Match, If-Unmodified-Since, If-None-Match,
// If-Modified-Since, plus If-Range (§13.1.5).
#pragma once

#include <cstddef>
#include <ctime>
#include <string_view>

#include <sys/stat.h>

#include "common/http.h"

namespace wraith::static_files {

// Longest ETag make_etag writes, quotes and suffix included, plus a NUL.
inline constexpr size_t etag_size = 32;

// Strong ETag "\"<13 base32 digits><suffix>\"": a 64-bit hash of the inode, the
// modification time in nanoseconds and the size, so it changes with any of them; short, as
// it goes out with every response (HTTP/2 and HTTP/3 send it as a literal each time).
// `suffix` (e.g. "-br") marks a precompressed variant. Returns the length written into `out`.
size_t make_etag(const struct stat& st, std::string_view suffix, char out[etag_size]);

// Whether any entity-tag in the list `field` (a "#entity-tag" value, or "*") matches `etag`.
// Strong comparison (If-Match, If-Range) treats weak tags as never matching; weak comparison
// (If-None-Match) ignores the W/ prefix on both sides. "*" matches any current representation.
bool etag_list_matches(std::string_view field, std::string_view etag, bool strong);

enum class Precondition {
    pass,         // serve normally (ranges may still apply)
    not_modified, // 304
    failed,       // 412
};

// RFC 9110 §13.2.2 steps 1-4 for a representation that exists. `safe` is true for GET and
// HEAD. Every line of a repeated field is considered. Unparseable dates are ignored (§13.1.3).
Precondition evaluate_preconditions(const Headers& headers, bool safe, std::string_view etag,
                                    time_t last_modified);

// RFC 9110 §13.1.5: whether a Range may be honoured given If-Range. True when the request has
// no If-Range; otherwise a strong ETag match, or a date exactly equal to Last-Modified.
bool if_range_allows(const Headers& headers, std::string_view etag, time_t last_modified);

} // namespace wraith::static_files
