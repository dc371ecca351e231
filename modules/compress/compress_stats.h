// What on-the-fly compression did, in shared memory: the compress module's zone
// "compress.counts", one shard per worker slot (relaxed atomic adds on a line no other worker
// of the generation writes), summed by a scrape. Kept across reloads, handed over on upgrade.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/module.h"
#include "modules/compress/encoder.h"

namespace wraith {

constexpr int kCompressCodings = 3; // Coding: gzip, br, zstd

struct alignas(64) CompressShard {
    std::atomic<uint64_t> responses[kCompressCodings]; // bodies compressed, by coding
    std::atomic<uint64_t> bytes_in[kCompressCodings];  // identity bytes fed to the encoders
    std::atomic<uint64_t> bytes_out[kCompressCodings]; // encoded bytes they produced
};

struct CompressZone {
    static constexpr int kShards = 16;
    CompressShard shards[kShards];
};
constexpr std::string_view kCompressZone = "compress.counts";

// The module's per-worker state: the worker's shard (null when the zone is missing, as in
// unit tests: then nothing is counted).
class CompressWorker final : public ModuleWorker {
public:
    explicit CompressWorker(const WorkerContext& ctx);
    CompressShard* shard = nullptr;
};

inline void compress_count(std::atomic<uint64_t>& c, uint64_t n) {
    c.fetch_add(n, std::memory_order_relaxed);
}

// ModuleSpec::export_metrics / export_status.
void export_compress_metrics(const MetricsExport& ctx, std::string& out);
void export_compress_status(const MetricsExport& ctx, std::string& out);

} // namespace wraith
