// Live counters a worker publishes to the master through shared memory (for `wraith status`).
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace wraith {

enum class WorkerState : int32_t { free = 0, starting, serving, draining };

// One slot of the shared status table. The master assigns a free entry before fork and
// clears it after reaping; only the owning worker writes the counters.
struct WorkerStatus {
    std::atomic<int32_t> pid{0};
    std::atomic<WorkerState> state{WorkerState::free};
    int32_t slot = 0;
    uint32_t generation = 0;
    int64_t started_unix = 0;
    std::atomic<uint64_t> connections{0}; // open now
    std::atomic<uint64_t> requests{0};    // since start
    // Open now, by kind: connections (kConnectionKinds) and exchanges in flight (h1, h2, h3).
    std::atomic<uint32_t> open_by_kind[4] = {};
    std::atomic<uint32_t> exchanges[3] = {};
};

// What a connection carries, for the counts above: still before its protocol (a TLS handshake,
// a PROXY header) or a stream (L4) protocol; HTTP/1.1; HTTP/2; HTTP/3.
enum class ConnectionKind : uint8_t { other = 0, h1, h2, h3 };
constexpr std::string_view kConnectionKindNames[] = {"other", "h1", "h2", "h3"};

constexpr int kMaxWorkerStatus = 512;
// The master's shared-memory zone holding kMaxWorkerStatus entries (in every generation's
// zones, so modules may read it: the metrics module does).
constexpr std::string_view kStatusZoneName = "master.status";

} // namespace wraith
