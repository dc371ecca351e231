// The shared-memory table behind one [limit.NAME] zone: a key's GCRA state (gcra.h) and, for
// connection zones, how many connections it holds, for every worker of every generation
// (common/shm.h: the zone survives reload and binary upgrade while its definition stands).
//
// Keys are 64-bit SipHash values under a secret made when the zone was (keyed_hash.h), so
// clients cannot aim at one slot. The table is split into shards, each an open-addressing
// array (linear probing, entries in the slots) behind a process-shared robust mutex: a check
// reads one cache line in the common case, and the caller prefetches it before the lock
// (prefetch()). A full shard makes room from a short sweep of a clock hand: the first key whose
// state has run out (forgetting it loses nothing), else the least recently used key swept; a
// key holding connections is never taken. A worker that dies holding a shard's lock leaves
// the next locker EOWNERDEAD: that shard, perhaps half-written, starts empty (it forgets
// rates, which only lets clients through). Nothing here allocates.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <pthread.h>
#include <string_view>

#include "modules/limit/gcra.h"

namespace wraith::limit {

// Decisions of one zone, summed over every process that used it (for the metrics issue and
// tests). Relaxed atomics: counts, not synchronisation.
struct ZoneCounters {
    std::atomic<uint64_t> passed{0};   // requests (or connections) within the limit
    std::atomic<uint64_t> delayed{0};  // passed after a wait (mode "delay")
    std::atomic<uint64_t> rejected{0}; // answered with the zone's status, or refused at accept
    std::atomic<uint64_t> dry_run{0};  // would have been rejected (mode "dry_run")
    std::atomic<uint64_t> evicted{0};  // keys reused while the zone was full
    std::atomic<uint64_t> evicted_active{0}; // ... that still held state (the zone is too small)
    std::atomic<uint64_t> refused_connections{0}; // accept: too many connections for the key
    std::atomic<uint64_t> refused_rate{0};        // accept: new connections too fast
    std::atomic<uint64_t> refused_full{0};        // accept: no entry free for a new key
};

class ZoneTable {
public:
    static constexpr uint32_t kLayoutVersion = 2; // 2: open addressing (1: chains and an LRU)
    static constexpr size_t kMinSize = 32 * 1024;
    static constexpr size_t kMaxSize = size_t(1) << 30;

    // Prepares zero-filled memory of `size` bytes (ZoneSpec::init). Only the headers are
    // written (zero is an empty slot): pages are touched as keys arrive.
    static void init(void* mem, size_t size);
    // A handle on the table init() made in `mem`; invalid (valid() false) when `mem` is null or
    // holds no such table.
    ZoneTable() = default;
    ZoneTable(void* mem, size_t size);
    bool valid() const { return h_ != nullptr; }
    // How many keys a zone of `size` bytes holds.
    static size_t capacity_for(size_t size);

    // A key's hash under this zone's secret; never 0 (0 marks a free entry).
    uint64_t hash(std::string_view key) const;
    // Starts loading `key`'s slot into the cache, so the check that follows (under the shard's
    // lock, which orders memory) does not wait on it there.
    void prefetch(uint64_t key) const;

    // Checks a request for `key` (added when new) against `g`; see gcra_check(). `evicted` is
    // set when making room for a new key threw out one that still held state.
    RateVerdict check_rate(uint64_t key, int64_t now, const Gcra& g, bool commit,
                           bool* evicted_active = nullptr) const;
    // Gives back a request this zone passed (a later zone refused it).
    void refund(uint64_t key, int64_t interval_ns) const;

    enum class ConnResult : uint8_t { ok, too_many, too_fast, full };
    struct ConnVerdict {
        ConnResult result = ConnResult::ok;
        int64_t retry_ns = 0; // too_fast: until a new connection would pass
        uint32_t epoch = 0;   // ok: pass it back to close_connection()
    };
    // A new connection for `key`: refused when it already holds `max_connections` (0: no cap)
    // or opens them faster than `rate` (null: no rate).
    ConnVerdict open_connection(uint64_t key, int64_t now, uint32_t max_connections,
                                const Gcra* rate) const;
    // A connection opened under `epoch` ended. Counted before a reset_connections(): nothing
    // to give back.
    void close_connection(uint64_t key, uint32_t epoch) const;
    // A live connection counted under an older epoch is counted again; returns the epoch now.
    uint32_t recount_connection(uint64_t key, uint32_t epoch) const;
    uint32_t epoch() const { return h_->epoch.load(std::memory_order_acquire); }
    // A process that held connections died without closing them: every count goes to zero and
    // the epoch moves on, so the live processes count theirs again (recount_connection) and
    // closes counted before it give nothing back. Exact because it holds every shard's lock.
    void reset_connections() const;
    // Connections `key` holds now (tests, status).
    uint32_t connections(uint64_t key) const;

    ZoneCounters& counters() const { return h_->counters; }
    // True for one caller per `interval_ns` across all processes: who logs "zone is full".
    bool claim_log(int64_t now, int64_t interval_ns) const;
    size_t capacity() const;
    size_t shards() const { return h_->shard_count; }

private:
    friend struct ZoneTableProbe; // tests: a lock held by a process that dies, lookups
    static constexpr uint32_t kNone = 0xffffffffu;
    static constexpr uint64_t kMagic = 0x77726169746c696dull; // "wraitlim"

    struct Header {
        uint64_t magic;
        uint32_t layout;
        uint32_t shard_count; // a power of two
        uint32_t shard_shift; // 64 - log2(shard_count): key >> shift picks the shard
        uint32_t capacity;    // keys per shard: 4/5 of the slots, so probe runs stay short
        uint32_t slots;       // per shard
        uint32_t sweep;       // slots a full shard's clock hand looks at for room
        uint64_t shard_bytes;
        uint64_t secret[2];
        std::atomic<uint32_t> epoch;
        std::atomic<int64_t> logged_at_ns;
        ZoneCounters counters;
    };
    struct Entry {
        uint64_t key;   // 0: an empty slot
        int64_t tat;    // GCRA theoretical arrival time (ns, CLOCK_MONOTONIC); 0: none yet
        uint32_t conns;       // connections held (connection zones), counted under ...
        uint32_t conns_epoch; // ... this epoch: under an older one, the count is 0
        int64_t used_ns;      // last checked; 32 bytes: two entries per line, none across two
    };
    struct alignas(64) Shard {
        pthread_mutex_t mutex; // process-shared, robust
        uint32_t live;         // keys held
        uint32_t hand;         // where the next sweep for room starts
    };
    class Locked;

    static size_t header_bytes();
    static void layout(size_t size, uint32_t& shards, uint32_t& capacity, uint32_t& slots,
                       size_t& shard_bytes);
    Shard* shard_of(uint64_t key) const;
    Shard* shard(size_t i) const;
    Entry* entries(Shard* s) const;
    uint32_t home(uint64_t key) const;
    void clear(Shard* s) const;
    // The entry's connection count under the current epoch (zeroed when counted under an
    // older one, so a reset needs no walk over the slots).
    uint32_t& conns(Entry& e) const;
    uint32_t next(uint32_t slot) const; // the probe order: the next slot, wrapping around
    uint32_t find(Shard* s, uint64_t key) const;
    uint32_t free_slot(Shard* s, uint64_t key) const; // where `key`, absent, would go
    // The entry for `key`, made when missing; kNone when the shard is full of keys holding
    // connections.
    uint32_t find_or_add(Shard* s, uint64_t key, int64_t now, bool* evicted_active) const;
    // A full shard's victim: see the top of this file; kNone when the sweep met only keys
    // holding connections.
    uint32_t sweep_for_room(Shard* s, int64_t now) const;
    // Empties slot `i`, moving later keys of its probe run back so no lookup stops short.
    void erase(Shard* s, uint32_t i) const;

    Header* h_ = nullptr;
    char* base_ = nullptr; // h_ as bytes: shards follow it
};

// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so a TAT written
// by one worker (or the old binary) means the same to all.
int64_t monotonic_ns();

} // namespace wraith::limit
