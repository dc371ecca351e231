// Request-path normalisation: the one place a raw request path becomes the decoded, canonical
// path that routing and file handlers see (Request::decoded_path).
#pragma once

#include <string_view>

#include "common/arena.h"

namespace wraith {

// Percent-decodes `raw_path` once and resolves it to a canonical absolute path in `arena`:
// "//" collapses, "." segments vanish, ".." removes the previous segment, a trailing slash is
// kept (also after a final "." or ".."), and the result always starts with "/".
// Returns false (the caller answers 400) for a malformed %XX escape, a decoded NUL, an encoded
// slash (%2F), a backslash (raw or %5C), or a ".." that would climb above "/".
bool normalize_path(std::string_view raw_path, Arena& arena, std::string_view& out);

} // namespace wraith
