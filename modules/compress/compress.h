// On-the-fly response compression (route key `compress`, on by default): a response-phase
// filter that wraps the writer of every request whose Accept-Encoding allows one of the
// configured codings, and compresses eligible 200 responses (see CompressWriter).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/module.h"
#include "modules/compress/encoder.h"

namespace wraith {

// A route's `compress = { ... }` table, with its defaults.
struct CompressOptions {
    std::vector<std::string> encodings{"zstd", "br", "gzip"}; // server preference order
    uint64_t min_size = 1024;       // skip bodies with a known length below this
    std::vector<std::string> types; // lower-case MIME types; "text/*" and "*/*" wildcards
    int gzip_level = 5;
    int brotli_level = 4;
    int zstd_level = 3;

    CompressOptions(); // fills `types` with default_compress_types()
};

// The MIME types compressed when `types` is not given: text formats and uncompressed fonts.
const std::vector<std::string>& default_compress_types();

class CompressFilter final : public Filter {
public:
    // `module_index`: the compress module's (BuildContext::module_index), which finds the
    // worker's CompressWorker (its counters) through Request::modules.
    explicit CompressFilter(CompressOptions options, size_t module_index = SIZE_MAX);
    unsigned phases() const override { return phase_bit(Phase::response); }
    ResponseWriter* wrap(Request& req, ResponseWriter& next) const override;

    // Whether a Content-Type value (parameters allowed) is one of `types`.
    bool type_matches(std::string_view content_type) const;
    int level(Coding c) const;
    const CompressOptions& options() const { return options_; }

private:
    CompressOptions options_;
    size_t module_index_;
};

// Builds the filter from a `compress` table; nullptr after reporting errors.
std::unique_ptr<Filter> build_compress(TableReader& options, BuildContext& ctx);

} // namespace wraith
