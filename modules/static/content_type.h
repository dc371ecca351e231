// Content-Type decisions for static files: which types get a charset parameter and which are
// worth compressing (and so vary by Accept-Encoding).
#pragma once

#include <string_view>

#include "common/arena.h"

namespace wraith::static_files {

// Textual types: text/*, JavaScript, JSON, XML, SVG and the +json/+xml families.
bool is_textual_type(std::string_view type);

// Types a compressor shrinks: the textual ones plus a few binary formats (wasm, fonts
// without built-in compression, icons).
bool is_compressible_type(std::string_view type);

// `type` with "; charset=CHARSET" appended when it is textual, has no parameters yet, and
// `charset` is not empty; otherwise `type` itself. The result lives in `arena` or in `type`.
std::string_view with_charset(std::string_view type, std::string_view charset, Arena& arena);

} // namespace wraith::static_files
