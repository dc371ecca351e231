#include "modules/static/precompressed.h"

#include <span>
#include <string>
#include <utility>

#include "modules/compress/accept_encoding.h"

namespace wraith::static_files {

std::string_view coding_token(Coding c) {
    switch (c) {
    case Coding::br:
        return "br";
    case Coding::zstd:
        return "zstd";
    case Coding::gzip:
        return "gzip";
    }
    return {};
}

std::string_view coding_extension(Coding c) {
    switch (c) {
    case Coding::br:
        return ".br";
    case Coding::zstd:
        return ".zst";
    case Coding::gzip:
        return ".gz";
    }
    return {};
}

std::string_view coding_etag_suffix(Coding c) {
    switch (c) {
    case Coding::br:
        return "-br";
    case Coding::zstd:
        return "-zst";
    case Coding::gzip:
        return "-gz";
    }
    return {};
}

size_t acceptable_codings(std::string_view accept_encoding, Coding out[coding_count]) {
    if (accept_encoding.empty())
        return 0;
    // Short tokens: small-string storage, no heap allocation.
    std::string names[coding_count];
    Coding codings[coding_count];
    for (size_t k = 0; k < coding_count; ++k) {
        codings[k] = static_cast<Coding>(k);
        names[k] = coding_token(codings[k]);
    }
    size_t remaining = coding_count;
    size_t n = 0;
    while (remaining > 0) {
        std::string_view chosen =
            choose_encoding(accept_encoding, std::span<const std::string>(names, remaining));
        if (chosen.empty())
            break;
        size_t k = 0;
        while (k < remaining && names[k] != chosen)
            ++k;
        if (k == remaining)
            break;
        out[n++] = codings[k];
        // Drop it, keeping the others in preference order.
        for (size_t j = k + 1; j < remaining; ++j) {
            std::swap(names[j - 1], names[j]);
            std::swap(codings[j - 1], codings[j]);
        }
        --remaining;
    }
    return n;
}

} // namespace wraith::static_files
