// The `static` handler: serves files below a document root with validators, conditional
// requests, byte ranges, precompressed sidecars, index files, try_files and autoindex.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/module.h"
#include "modules/static/open_file_cache.h"
#include "modules/static/root_dir.h"

namespace wraith {
class MimeTypes;
}

namespace wraith::static_files {

// The route's `static = { ... }` table, validated.
struct StaticOptions {
    std::string root;                             // absolute path of an existing directory
    std::vector<std::string> index{"index.html"}; // file names tried in a directory
    std::vector<std::string> try_files;           // empty: serve the request path as is
    bool autoindex = false;
    std::string charset = "utf-8"; // "" adds no charset parameter
    SymlinkPolicy follow_symlinks = SymlinkPolicy::within_root;
    bool hide_dotfiles = true; // except "/.well-known/"
    bool precompressed = true; // look for .br/.zst/.gz sidecars
    bool etag = true;
    std::optional<std::string> cache_control; // added to 200, 206 and 304
    OpenFileCacheOptions open_file_cache;     // the worker's cache of open files, or off
};

// Option checks shared by the config reader and make_static_handler: "" when valid, else
// what is wrong.
std::string check_index(const std::vector<std::string>& index);
std::string check_try_files(const std::vector<std::string>& try_files);

// Builds the handler; nullptr with `error` set when an option is invalid or the root cannot
// be opened. `mime` may be
// null (every file is then application/octet-stream).
// `module_index`: the static module's (BuildContext::module_index), which finds this worker's
// open-file cache through Request::modules; a request without module state (a unit test)
// opens files uncached.
std::unique_ptr<Handler> make_static_handler(const StaticOptions& options,
                                             std::shared_ptr<const MimeTypes> mime,
                                             std::string& error, size_t module_index);

// The document root of a handler make_static_handler() made; nullptr for other handlers.
const std::string* static_root(const Handler& handler);

// The static module's shared-memory zone: what every worker's open-file cache did.
// And what precompressed sidecars did: per worker slot, responses served from a sidecar by
// coding (Coding order: br, zstd, gzip), and lookups that found none for any coding the client
// accepts (the response went out identity, or compressed on the fly).
struct alignas(64) SharedPrecompressedStats {
    std::atomic<uint64_t> served[3];
    std::atomic<uint64_t> missed;
};
struct CacheZone {
    static constexpr int kShards = 16;
    SharedCacheStats shards[kShards];
    SharedPrecompressedStats precompressed[kShards];
};
constexpr uint32_t kCacheZoneVersion = 2;
constexpr std::string_view kCacheZone = "static.cache";

// The static module's per-worker state: the worker's open-file cache, counting into its
// shard of the zone.
class StaticWorker final : public ModuleWorker {
public:
    StaticWorker() = default; // counts only into the cache's own stats()
    explicit StaticWorker(const WorkerContext& ctx) {
        if (auto* zone = ctx.zones ? ctx.zones->get<CacheZone>(kCacheZone) : nullptr) {
            const unsigned shard = static_cast<unsigned>(ctx.slot) % CacheZone::kShards;
            cache.share_stats(&zone->shards[shard]);
            precompressed = &zone->precompressed[shard];
        }
    }
    OpenFileCache cache;
    SharedPrecompressedStats* precompressed = nullptr; // null: not counted
};

// ModuleSpec::export_metrics and export_status: the open-file caches' lookups by result.
void export_cache_metrics(const MetricsExport& ctx, std::string& out);
void export_cache_status(const MetricsExport& ctx, std::string& out);

} // namespace wraith::static_files
