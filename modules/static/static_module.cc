// Registration of the `static` route key and the parsing of its options table.
#include <string>

#include <toml++/toml.h>

#include "common/config.h"
#include "common/config_reader.h"
#include "common/http.h"
#include "common/metrics_text.h"
#include "common/module.h"
#include "modules/static/precompressed.h"
#include "modules/static/static_handler.h"

namespace wraith::static_files {

namespace {

// `open_file_cache = false`, `= true` (the defaults) or `= { max, valid, inactive }`.
void read_open_file_cache(TableReader& r, OpenFileCacheOptions& o) {
    const toml::node* n = r.node("open_file_cache");
    if (!n)
        return;
    if (const auto* b = n->as_boolean()) {
        o.enabled = b->get();
        return;
    }
    const toml::table* t = n->as_table();
    if (!t) {
        r.error("open_file_cache",
                "expected true, false or a table { max, valid, inactive }, got " +
                    describe_value(*n));
        return;
    }
    TableReader c(*t, r.diag(), "static.open_file_cache");
    o.max = static_cast<size_t>(c.integer("max", 1000, 1, 1000000));
    o.valid = c.duration("valid", o.valid);
    o.inactive = c.duration("inactive", o.inactive);
    if (o.inactive.count() == 0)
        c.error("inactive", "must be longer than 0 (use open_file_cache = false to turn the "
                            "cache off)");
    c.finish();
}

std::unique_ptr<Handler> build(TableReader& r, BuildContext& ctx) {
    const size_t errors_before = r.diag().list().size();
    StaticOptions o;

    std::optional<std::string> root = r.string("root");
    if (!root && !r.has("root"))
        r.diag().error(r.table_pos(), "static: \"root\" is required (the directory to serve)");

    if (auto index = r.strings("index")) {
        if (std::string e = check_index(*index); !e.empty())
            r.error("index", e);
        o.index = std::move(*index);
    }
    if (auto try_files = r.strings("try_files")) {
        if (std::string e = check_try_files(*try_files); !e.empty())
            r.error("try_files", e);
        o.try_files = std::move(*try_files);
    }
    o.autoindex = r.boolean("autoindex", false);
    o.charset = r.string("charset", "utf-8");
    if (!o.charset.empty() && !is_token(o.charset))
        r.error("charset", "must be a token such as \"utf-8\", or \"\" for none");
    std::string symlinks =
        r.choice("follow_symlinks", "within_root", {"within_root", "never", "any"});
    o.follow_symlinks = symlinks == "never" ? SymlinkPolicy::never
                        : symlinks == "any" ? SymlinkPolicy::any
                                            : SymlinkPolicy::within_root;
    o.hide_dotfiles = r.choice("dotfiles", "hide", {"hide", "allow"}) == "hide";
    o.precompressed = r.boolean("precompressed", true);
    o.etag = r.boolean("etag", true);
    if (auto cc = r.string("cache_control")) {
        if (cc->empty() || !is_clean_field_value(*cc))
            r.error("cache_control", "must be a non-empty header value "
                                     "without control characters");
        o.cache_control = std::move(*cc);
    }
    read_open_file_cache(r, o.open_file_cache);

    if (!root)
        return nullptr;
    o.root = resolve_path(ctx.config.dir, *root);
    std::string error;
    auto handler = make_static_handler(o, ctx.config.mime, error, ctx.module_index);
    if (!handler) {
        r.error("root", "must be an existing directory: " + error);
        return nullptr;
    }
    if (r.diag().list().size() != errors_before)
        return nullptr;
    return handler;
}

} // namespace

namespace {

// Sums of every worker's open-file cache: hits, revalidated, opens, evicted, expired; then
// precompressed sidecars served as br, zstd, gzip, and lookups that found none.
constexpr int kTotals = 9;
bool cache_totals(const MetricsExport& ctx, uint64_t (&n)[kTotals]) {
    const auto* zone = ctx.zones.get<CacheZone>(kCacheZone);
    if (!zone)
        return false;
    auto load = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    for (const SharedCacheStats& s : zone->shards) {
        n[0] += load(s.hits);
        n[1] += load(s.revalidated);
        n[2] += load(s.opens);
        n[3] += load(s.evicted);
        n[4] += load(s.expired);
    }
    for (const SharedPrecompressedStats& s : zone->precompressed) {
        for (int c = 0; c < 3; ++c)
            n[5 + c] += load(s.served[c]);
        n[8] += load(s.missed);
    }
    return true;
}

} // namespace

void export_cache_metrics(const MetricsExport& ctx, std::string& out) {
    uint64_t n[kTotals] = {};
    if (!cache_totals(ctx, n))
        return;
    metric_header(out, ctx.openmetrics, "wraith_open_file_cache_lookups_total", "counter",
                  "Open-file cache lookups of the static handler, by result: hit (no system "
                  "call), revalidated (older than `valid`, confirmed by one fstatat), open (a "
                  "miss or a changed file). Hit ratio: (hit + revalidated) / all.");
    const char* results[] = {"hit", "revalidated", "open"};
    for (int i = 0; i < 3; ++i)
        out += std::string("wraith_open_file_cache_lookups_total{result=\"") + results[i] + "\"} " +
               std::to_string(n[i]) + "\n";
    metric_header(out, ctx.openmetrics, "wraith_open_file_cache_drops_total", "counter",
                  "Entries the open-file caches dropped: evicted (the max bound) or expired "
                  "(unused for `inactive`).");
    out += "wraith_open_file_cache_drops_total{reason=\"evicted\"} " + std::to_string(n[3]) +
           "\nwraith_open_file_cache_drops_total{reason=\"expired\"} " + std::to_string(n[4]) +
           "\n";
    metric_header(out, ctx.openmetrics, "wraith_static_precompressed_total", "counter",
                  "Requests for a compressible file whose client accepts a coding, by the "
                  "precompressed sidecar served (br, zstd, gzip) or none (no sidecar for any "
                  "accepted coding). Hit ratio: 1 - none / all.");
    for (int c = 0; c < 3; ++c)
        out += "wraith_static_precompressed_total{coding=\"" +
               std::string(coding_token(static_cast<Coding>(c))) + "\"} " +
               std::to_string(n[5 + c]) + "\n";
    out += "wraith_static_precompressed_total{coding=\"none\"} " + std::to_string(n[8]) + "\n";
}

void export_cache_status(const MetricsExport& ctx, std::string& out) {
    uint64_t n[kTotals] = {};
    if (!cache_totals(ctx, n))
        return;
    out += ",\"caches\":{\"open_file\":{\"hits\":" + std::to_string(n[0]) +
           ",\"revalidated\":" + std::to_string(n[1]) + ",\"opens\":" + std::to_string(n[2]) +
           "},\"precompressed\":{\"hits\":" + std::to_string(n[5] + n[6] + n[7]) +
           ",\"misses\":" + std::to_string(n[8]) + "}}";
}

} // namespace wraith::static_files

namespace wraith {

// Serves files below a root: validators, conditional and range requests, precompressed
// sidecars, index, try_files, autoindex, and a per-worker open-file cache.
const ModuleSpec& static_module() {
    static const ModuleSpec spec{
        .key = "static",
        .is_handler = true,
        .build_handler = &static_files::build,
        // Zeros to start; kept across reloads and handed over on upgrade.
        .zones =
            [](const Config&, std::vector<ZoneSpec>& out) {
                out.push_back({std::string(static_files::kCacheZone),
                               sizeof(static_files::CacheZone), static_files::kCacheZoneVersion,
                               nullptr, true});
            },
        .worker_start = [](const WorkerContext& ctx) -> std::unique_ptr<ModuleWorker> {
            return std::make_unique<static_files::StaticWorker>(ctx);
        },
        // Landlock: every route's root, read-only.
        .sandbox_paths =
            [](const Config& config, std::vector<SandboxPath>& out) {
                for (const auto& site : config.sites)
                    for (const Route& route : site->routes)
                        if (route.handler)
                            if (const std::string* root = static_files::static_root(*route.handler))
                                out.push_back({*root, false});
            },
        .export_metrics = static_files::export_cache_metrics,
        .export_status = static_files::export_cache_status};
    return spec;
}

} // namespace wraith
