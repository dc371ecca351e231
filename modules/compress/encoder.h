// Streaming compressors behind one small interface: gzip (zlib), br (brotli), zstd. One encoder
// per compressed response, constructed in the request arena; its destructor (an arena cleanup)
// frees the library state, whether the response finished or was aborted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wraith {

class Arena;

// A content coding this server can produce (RFC 9110 §8.4.1, RFC 7932, RFC 8878).
enum class Coding : uint8_t { gzip, br, zstd };

std::optional<Coding> coding_from(std::string_view name);
std::string_view coding_name(Coding c); // "gzip", "br", "zstd"

// What the encoder may tune itself by.
struct EncoderParams {
    int level = 0;
    int64_t size_hint = -1; // the uncompressed length when known, -1 otherwise
    bool text = false;      // text-like content (brotli text mode)
    bool font = false;      // a font (brotli font mode)
};

class Encoder {
public:
    enum class Status { more, done, error };
    virtual ~Encoder() = default;
    // Compresses from `in` into `out`, advancing both pointers and shrinking both lengths. With
    // `finish` it also flushes and closes the stream, and returns `done` once the last byte is
    // out. `more` means call again (with more input, or a fresh output buffer when `out_len`
    // reached 0, or to keep finishing). After `error` the encoder is unusable.
    virtual Status run(const uint8_t*& in, size_t& in_len, uint8_t*& out, size_t& out_len,
                       bool finish) = 0;
};

// Constructs an encoder in `arena`; nullptr if the library could not set it up (out of memory).
Encoder* make_encoder(Arena& arena, Coding coding, const EncoderParams& params);

} // namespace wraith
