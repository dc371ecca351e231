#include "modules/compress/compress_stats.h"

#include "common/metrics_text.h"
#include "common/shm.h"

namespace wraith {

CompressWorker::CompressWorker(const WorkerContext& ctx) {
    if (auto* zone = ctx.zones ? ctx.zones->get<CompressZone>(kCompressZone) : nullptr)
        shard = &zone->shards[static_cast<unsigned>(ctx.slot) % CompressZone::kShards];
}

namespace {

struct Totals {
    uint64_t responses[kCompressCodings] = {};
    uint64_t bytes_in[kCompressCodings] = {};
    uint64_t bytes_out[kCompressCodings] = {};
};

bool totals(const MetricsExport& ctx, Totals& t) {
    const auto* zone = ctx.zones.get<CompressZone>(kCompressZone);
    if (!zone)
        return false;
    for (const CompressShard& s : zone->shards)
        for (int c = 0; c < kCompressCodings; ++c) {
            t.responses[c] += s.responses[c].load(std::memory_order_relaxed);
            t.bytes_in[c] += s.bytes_in[c].load(std::memory_order_relaxed);
            t.bytes_out[c] += s.bytes_out[c].load(std::memory_order_relaxed);
        }
    return true;
}

std::string coding_label(int c) {
    return "coding=\"" + std::string(coding_name(static_cast<Coding>(c))) + "\"";
}

} // namespace

void export_compress_metrics(const MetricsExport& ctx, std::string& out) {
    Totals t;
    if (!totals(ctx, t))
        return;
    metric_header(out, ctx.openmetrics, "wraith_compress_responses_total", "counter",
                  "Response bodies compressed on the fly, by content coding.");
    for (int c = 0; c < kCompressCodings; ++c)
        out += "wraith_compress_responses_total{" + coding_label(c) + "} " +
               std::to_string(t.responses[c]) + "\n";
    metric_header(out, ctx.openmetrics, "wraith_compress_bytes_total", "counter",
                  "Bytes through the on-the-fly encoders, by coding: in (identity) and out "
                  "(encoded). Compression ratio: out / in.");
    for (int c = 0; c < kCompressCodings; ++c) {
        const std::string l = coding_label(c);
        out += "wraith_compress_bytes_total{" + l + ",direction=\"in\"} " +
               std::to_string(t.bytes_in[c]) + "\n";
        out += "wraith_compress_bytes_total{" + l + ",direction=\"out\"} " +
               std::to_string(t.bytes_out[c]) + "\n";
    }
}

void export_compress_status(const MetricsExport& ctx, std::string& out) {
    Totals t;
    if (!totals(ctx, t))
        return;
    uint64_t n = 0, in = 0, produced = 0;
    for (int c = 0; c < kCompressCodings; ++c) {
        n += t.responses[c];
        in += t.bytes_in[c];
        produced += t.bytes_out[c];
    }
    out += ",\"compression\":{\"responses\":" + std::to_string(n) +
           ",\"bytes_in\":" + std::to_string(in) + ",\"bytes_out\":" + std::to_string(produced) +
           "}";
}

} // namespace wraith
