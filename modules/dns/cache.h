// The DNS answer cache every worker of every generation shares: one shared-memory zone
// (common/shm.h, "dns.cache") the master creates, so it survives reload while `cache_size`
// stands. Keyed by (QNAME lower-cased, QTYPE, QCLASS, DO bit).
//
// Layout: a header (a process-shared robust mutex, the hash secret, counters), a table of
// 8-way buckets (each slot: the key's hash and the entry's position), and a ring of entries
// written one after another. An entry is valid while the ring has not written over it (its
// absolute position is within one ring length of the write position), so nothing is ever
// freed or compacted: eviction is the ring's FIFO order, with a second chance (CLOCK-like):
// a hit on an entry in the oldest quarter of the ring writes it again at the head, so what is
// asked for stays. A bucket with no free slot takes the slot of its oldest entry not asked for
// since the bucket last made room (the same second chance, per bucket). Nothing here
// allocates; a lookup copies the answer out under the lock and the caller ages its TTLs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "modules/dns/message.h"

namespace wraith::dns {

// Counted by every worker, for the metrics endpoint and tests. Relaxed atomics: counts only.
struct Counters {
    std::atomic<uint64_t> queries{0};           // DoH queries answered or forwarded
    std::atomic<uint64_t> cache_hits{0};        // answered from the cache
    std::atomic<uint64_t> cache_misses{0};      // forwarded upstream
    std::atomic<uint64_t> upstream_failures{0}; // upstream tries that timed out or failed
    std::atomic<uint64_t> dropped{0};   // upstream answers refused: wrong source, ID or question
    std::atomic<uint64_t> blocked{0};   // answered from the block list
    std::atomic<uint64_t> malformed{0}; // refused with 400
    std::atomic<uint64_t> stale{0};     // answered from an expired entry (serve_stale)
};

// The cache's key: the question's identity.
struct CacheKey {
    uint8_t bytes[kMaxName + 5]; // QNAME (wire, lower-case), QTYPE, QCLASS, DO
    uint16_t len = 0;
    explicit CacheKey(const Message& m);
    std::string_view view() const { return {reinterpret_cast<const char*>(bytes), len}; }
};

class Cache {
public:
    static constexpr uint32_t kLayoutVersion = 2; // 2: Counters::stale
    static constexpr size_t kMinSize = 64 * 1024;

    // Prepares zero-filled memory (ZoneSpec::init).
    static void init(void* mem, size_t size);
    Cache() = default;
    Cache(void* mem, size_t size); // invalid (valid() false) when mem holds no cache
    bool valid() const { return h_ != nullptr; }

    // Stores `answer` under `key` for `ttl_s` seconds from `now_ms` (a monotonic clock).
    // Answers larger than an eighth of the ring are not stored.
    void store(const CacheKey& key, std::string_view answer, uint32_t ttl_s, int64_t now_ms);
    // Copies the answer for `key` into `out` (replacing it) when one is fresh at `now_ms`;
    // `age_s` is how long it has been in the cache, in whole seconds. An entry expired less
    // than `keep_stale_s` ago stays (serve-stale, RFC 8767), and with `stale` true it is
    // the answer too; an entry expired longer ago is dropped.
    bool lookup(const CacheKey& key, int64_t now_ms, std::string& out, uint32_t& age_s,
                uint32_t keep_stale_s = 0, bool stale = false);

    Counters& counters() const;

private:
    struct Header;
    struct Slot;
    struct Entry;
    Header* h_ = nullptr;
    Slot* slots_ = nullptr;
    char* ring_ = nullptr;

    uint64_t hash(std::string_view key) const;
    bool live(uint64_t pos) const;
    uint64_t append(uint64_t hash, const CacheKey& key, std::string_view answer, int64_t stored,
                    uint32_t ttl_s);
    void lock() const;
    void unlock() const;
};

// CLOCK_MONOTONIC in milliseconds: the same clock in every process of the machine.
int64_t monotonic_ms();

} // namespace wraith::dns
