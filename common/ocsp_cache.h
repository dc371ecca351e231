// The OCSP staples the master fetches (master/ocsp_fetcher.h), in the shared-memory zone
// "tls.ocsp" that every worker's handshakes read and the metrics scrape looks at: one slot per
// certificate, keyed by the certificate's SHA-256, each published with a seqlock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string_view>
#include <vector>

namespace wraith {

constexpr std::string_view kOcspZone = "tls.ocsp";

// One fetched response, published by the master with a seqlock; workers copy it out.
struct OcspSlot {
    static constexpr size_t kMaxResponse = 8192;
    std::atomic<uint32_t> seq{0};       // odd while the master writes
    unsigned char fingerprint[32] = {}; // SHA-256 of the certificate this slot belongs to
    bool used = false;
    uint32_t len = 0; // 0: nothing fetched (yet)
    int64_t next_update = 0;
    unsigned char der[kMaxResponse];
};

// Lives in MAP_SHARED memory made by the master before the first fork, so responses fetched
// after a worker started still reach it, and survive reloads (slots are keyed by certificate).
struct OcspCache {
    static constexpr int kSlots = 64;
    OcspSlot slots[kSlots];

    // Master: the slot for this certificate (same one across reloads), or -1 if full.
    int slot_for(const unsigned char fingerprint[32]);
    void publish(int slot, const std::vector<unsigned char>& der, time_t next_update);
    // Any process: the slot of this certificate, or -1 (read-only: claims nothing).
    int find(const unsigned char fingerprint[32]) const;
    // Worker: copies the current response; returns its length (0: none).
    size_t read(int slot, unsigned char* out, size_t cap, time_t* next_update) const;
};

} // namespace wraith
