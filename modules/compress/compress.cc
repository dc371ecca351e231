#include "modules/compress/compress.h"
#include "common/strings.h"

#include <algorithm>
#include <cctype>

#include "common/config_reader.h"
#include "modules/compress/accept_encoding.h"
#include "modules/compress/compress_stats.h"
#include "modules/compress/compress_writer.h"

namespace wraith {

namespace {

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Whether `s` is "type/subtype", "type/*" or "*/*" made of token characters.
bool valid_type_pattern(std::string_view s) {
    size_t slash = s.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size())
        return false;
    std::string_view type = s.substr(0, slash), sub = s.substr(slash + 1);
    auto token = [](std::string_view t) {
        for (char c : t)
            if (!(std::isalnum(static_cast<unsigned char>(c)) ||
                  std::string_view("!#$&-^_.+").find(c) != std::string_view::npos))
                return false;
        return true;
    };
    if (type == "*")
        return sub == "*";
    return token(type) && (sub == "*" || token(sub));
}

} // namespace

const std::vector<std::string>& default_compress_types() {
    // Formats that compress well and are not compressed already (no images but SVG, no woff).
    static const std::vector<std::string> types{
        "text/html",
        "text/css",
        "text/plain",
        "text/xml",
        "text/javascript",
        "text/markdown",
        "text/csv",
        "text/calendar",
        "text/vtt",
        "text/x-component",
        "application/javascript",
        "application/x-javascript",
        "application/json",
        "application/ld+json",
        "application/geo+json",
        "application/problem+json",
        "application/manifest+json",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/wasm",
        "application/vnd.ms-fontobject",
        "application/x-font-ttf",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "image/bmp",
        "font/ttf",
        "font/otf",
        "font/eot",
    };
    return types;
}

CompressOptions::CompressOptions() : types(default_compress_types()) {}

CompressFilter::CompressFilter(CompressOptions options, size_t module_index)
    : options_(std::move(options)), module_index_(module_index) {}

bool CompressFilter::type_matches(std::string_view content_type) const {
    std::string_view type = trim(content_type.substr(0, content_type.find(';')));
    if (type.empty())
        return false;
    for (const std::string& pattern : options_.types) {
        if (pattern == "*/*")
            return true;
        if (pattern.ends_with("/*")) {
            // "text/*": the type and its slash match, any subtype.
            std::string_view prefix(pattern.data(), pattern.size() - 1);
            if (type.size() > prefix.size() && iequals(type.substr(0, prefix.size()), prefix))
                return true;
        } else if (iequals(type, pattern)) {
            return true;
        }
    }
    return false;
}

int CompressFilter::level(Coding c) const {
    switch (c) {
    case Coding::gzip:
        return options_.gzip_level;
    case Coding::br:
        return options_.brotli_level;
    case Coding::zstd:
        return options_.zstd_level;
    }
    return 0;
}

ResponseWriter* CompressFilter::wrap(Request& req, ResponseWriter& next) const {
    if (!req.upgrade.empty())
        return &next; // a tunnel's bytes are no representation to encode
    std::string_view accept;
    size_t fields = req.headers.count("accept-encoding");
    if (fields == 0)
        return &next;
    if (fields == 1) {
        accept = req.headers.get("accept-encoding");
    } else {
        // RFC 9110 §5.3: several field lines are one comma-separated list.
        size_t total = 0;
        for (const Header& h : req.headers)
            if (h.name == "accept-encoding")
                total += h.value.size() + 1;
        char* p = static_cast<char*>(req.arena->alloc(total, 1));
        size_t n = 0;
        for (const Header& h : req.headers) {
            if (h.name != "accept-encoding")
                continue;
            if (n)
                p[n++] = ',';
            std::copy(h.value.begin(), h.value.end(), p + n);
            n += h.value.size();
        }
        accept = {p, n};
    }
    std::string_view chosen = choose_encoding(accept, options_.encodings);
    if (chosen.empty())
        return &next;
    std::optional<Coding> coding = coding_from(chosen);
    if (!coding)
        return &next; // not reachable: build_compress accepts known names only
    CompressShard* shard = nullptr;
    if (req.modules)
        if (auto* w = req.modules->get<CompressWorker>(module_index_))
            shard = w->shard;
    return req.arena->make<CompressWriter>(*this, req, next, *coding, shard);
}

std::unique_ptr<Filter> build_compress(TableReader& t, BuildContext& ctx) {
    const size_t errors_before = t.diag().count();
    CompressOptions o;

    if (auto list = t.strings("encodings")) {
        if (list->empty())
            t.error("encodings", "expected at least one of \"zstd\", \"br\", \"gzip\" "
                                 "(use compress = false to turn compression off)");
        std::vector<std::string> seen;
        for (const std::string& name : *list) {
            if (!coding_from(name))
                t.error("encodings",
                        "unknown encoding \"" + name + "\"; expected \"zstd\", \"br\" or \"gzip\"");
            else if (std::find(seen.begin(), seen.end(), name) != seen.end())
                t.error("encodings", "encoding \"" + name + "\" is listed twice");
            else
                seen.push_back(name);
        }
        o.encodings = std::move(seen);
    }

    o.min_size = t.size("min_size", 1024);

    if (auto list = t.strings("types")) {
        if (list->empty())
            t.error("types", "expected at least one MIME type such as \"text/html\"");
        o.types.clear();
        for (std::string type : *list) {
            std::transform(type.begin(), type.end(), type.begin(), lower);
            if (!valid_type_pattern(type))
                t.error("types", "\"" + type +
                                     "\" is not a MIME type; expected "
                                     "\"type/subtype\", \"type/*\" or \"*/*\"");
            else
                o.types.push_back(std::move(type));
        }
    }

    o.gzip_level = int(t.integer("gzip_level", 5, 1, 9));
    o.brotli_level = int(t.integer("brotli_level", 4, 0, 11));
    // 1..19: higher levels need windows beyond what HTTP zstd decoders must accept.
    o.zstd_level = int(t.integer("zstd_level", 3, 1, 19));

    if (t.diag().count() != errors_before)
        return nullptr;
    return std::make_unique<CompressFilter>(std::move(o), ctx.module_index);
}

// Wraps close to the protocol (high order) so it sees headers set by other response filters.
// On-the-fly gzip, brotli and zstd response compression, on by default.
const ModuleSpec& compress_module() {
    static const ModuleSpec spec{
        .key = "compress",
        .order = 800,
        .build_filter = build_compress,
        .default_on = true,
        // Zeros to start; kept across reloads and handed over on upgrade.
        .zones =
            [](const Config&, std::vector<ZoneSpec>& out) {
                out.push_back({std::string(kCompressZone), sizeof(CompressZone), 1, nullptr, true});
            },
        .worker_start = [](const WorkerContext& ctx) -> std::unique_ptr<ModuleWorker> {
            return std::make_unique<CompressWorker>(ctx);
        },
        .export_metrics = export_compress_metrics,
        .export_status = export_compress_status};
    return spec;
}

} // namespace wraith
