// Content negotiation on Accept-Encoding (RFC 9110 §12.5.3), shared by on-the-fly compression
// and by handlers that pick a precompressed file.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace wraith {

// Returns the element of `server_order` the client accepts with the highest q-value; among
// equal q-values the one that comes first in `server_order`. Returns an empty view when none
// is acceptable (then the response goes out unencoded).
//
// - Codings compare case-insensitively; "x-gzip" counts as "gzip" (RFC 9110 §8.4.1.3).
// - "q=0" excludes a coding; a coding listed more than once gets its lowest q-value.
// - "*" gives its q-value to every coding not listed by name.
// - A coding weighted below identity is not chosen; identity weighs what its own entry or,
//   failing that, "*" says. When neither names it, any coding with q > 0 beats it.
// - An element with a malformed q-value or coding token is ignored; other parameters are
//   ignored. Quoted strings in parameters may contain commas.
// - An empty header accepts nothing but identity. When several Accept-Encoding fields were
//   received, pass them joined with ", ".
std::string_view choose_encoding(std::string_view accept_encoding,
                                 std::span<const std::string> server_order);

// Parses an RFC 9110 §12.4.2 qvalue ("0", "0.5", "1.000") into thousandths; -1 if malformed.
int parse_qvalue(std::string_view text);

} // namespace wraith
