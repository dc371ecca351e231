// Byte ranges (RFC 9110 §14): parsing a Range header against a representation's length,
// and the exact framing of a multipart/byteranges body (§14.6).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/arena.h"

namespace wraith::static_files {

// Inclusive byte positions, already clamped to the representation.
struct ByteRange {
    uint64_t first = 0;
    uint64_t last = 0;
    uint64_t length() const { return last - first + 1; }
};

// Most parts a multipart/byteranges answer carries; more (after coalescing) get a 200.
inline constexpr size_t max_range_parts = 16;
// Most range-specs read from one header; a longer list is ignored as abusive.
inline constexpr size_t max_range_specs = 64;

enum class RangeOutcome {
    ignore,        // no usable Range: other unit, malformed, abusive, or empty file -> 200
    satisfiable,   // ranges[0..count) sorted, non-overlapping, non-adjacent -> 206
    unsatisfiable, // no range overlaps the representation -> 416
};

// Parses `field` ("bytes=0-99, -500, 1000-") for a representation of `size` bytes. Ranges
// that overlap or touch are coalesced (§14.1.1 allows it); the result is in ascending order.
// `ranges` must hold max_range_parts entries; more parts than that after coalescing answer
// `ignore`, as does an empty representation (nothing a range could select).
RangeOutcome parse_range(std::string_view field, uint64_t size, ByteRange* ranges, size_t& count);

// Framing of a multipart/byteranges body. Part headers live in the arena.
struct Multipart {
    std::string_view boundary;
    std::string_view content_type;          // "multipart/byteranges; boundary=..."
    std::string_view* part_heads = nullptr; // count entries: delimiter + part fields + CRLFCRLF
    std::string_view closing;               // "\r\n--boundary--\r\n"
    uint64_t content_length = 0;            // exact body length
};

// Builds the framing for `count` parts of a `size`-byte representation of `type`.
Multipart make_multipart(const ByteRange* ranges, size_t count, uint64_t size,
                         std::string_view type, Arena& arena);

// Writes "bytes FIRST-LAST/SIZE" into the arena.
std::string_view content_range(const ByteRange& r, uint64_t size, Arena& arena);
// Writes "bytes */SIZE" into the arena (416).
std::string_view unsatisfied_range(uint64_t size, Arena& arena);

} // namespace wraith::static_files
