// Precompressed sidecar files ("style.css.br" beside "style.css"): the codings they may carry
// and the order to try them in for a request's Accept-Encoding. The negotiation itself is the
// one on-the-fly compression uses (modules/compress/accept_encoding.h).
#pragma once

#include <cstddef>
#include <string_view>

namespace wraith::static_files {

// Content codings a sidecar can carry; declaration order is the server's preference among
// equal q-values.
enum class Coding { br, zstd, gzip };
inline constexpr size_t coding_count = 3;

// "br", "zstd", "gzip": the Content-Encoding token.
std::string_view coding_token(Coding c);
// ".br", ".zst", ".gz": the sidecar file's suffix.
std::string_view coding_extension(Coding c);
// "-br", "-zst", "-gz": appended inside the sidecar's ETag quotes.
std::string_view coding_etag_suffix(Coding c);

// Fills `out` with the codings the client accepts, best first (the answer choose_encoding
// gives, then its answer without that coding, and so on), so a missing sidecar falls back to
// the next best. An absent or empty field accepts none. Returns how many were filled.
size_t acceptable_codings(std::string_view accept_encoding, Coding out[coding_count]);

} // namespace wraith::static_files
