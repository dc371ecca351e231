// The CrowdSec decisions every worker reads: a path-compressed binary trie (radix / PATRICIA)
// over address bits in one shared-memory zone (IPv4 as IPv4-mapped IPv6, so one 128-bit trie
// holds both families; a lookup visits at most one node per prefix length on the address's
// path), fixed-size pools of nodes and decision entries, per-entry expiry. Each decision adds at
// most two nodes (its own and one branching node), so the node pool of 2 × max_decisions + 1
// never runs out before the entry pool.
// One writer at a time (the pulling worker; a process-shared robust mutex orders writers of two
// generations that overlap during a reload), any number of readers in every worker under a
// seqlock: readers never wait for a lock and allocate nothing. docs/decisions.md, "CrowdSec".
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "common/cidr.h"

namespace wraith::crowdsec {

// What a decision asks for. Order is strength: a lookup that finds several answers the strongest.
enum class Remedy : uint8_t { none = 0, other = 1, throttle = 2, captcha = 3, ban = 4 };
constexpr size_t kRemedies = 5;
// Where a decision came from (LAPI's `origin`), for the held-decisions gauge.
enum class Origin : uint8_t { other = 0, crowdsec = 1, cscli = 2, capi = 3, lists = 4 };
constexpr size_t kOrigins = 5;

Remedy remedy_of(std::string_view type);
Origin origin_of(std::string_view origin);
const char* remedy_name(Remedy r);
const char* origin_name(Origin o);

constexpr uint32_t kNil = 0xffffffffu;
// Trie nodes per decision the pool holds: a decision's own node and at most one branch node.
constexpr uint32_t kNodesPerDecision = 2;
constexpr uint32_t kZoneVersion = 1;
constexpr uint32_t kCounterShards = 16; // by worker slot, so workers do not share a cache line

// A trie node: the prefix it stands for (`key`, 128 bits big-endian in two words, bits past
// `prefix` zero), children by the bit after the prefix, its parent (pruning), and the head of
// the list of decisions for exactly this prefix (kNil: a branch node only).
struct Node {
    uint64_t key[2];
    uint32_t child[2];
    uint32_t parent;
    uint32_t first;
    uint32_t prefix; // 0..128
    uint32_t pad;
};

// One decision. `epoch` is the full pull that last saw it (a startup pull removes the others).
struct Entry {
    int64_t expires_ms; // CLOCK_MONOTONIC milliseconds
    uint64_t id;        // the LAPI's decision id
    uint32_t next;      // the node's next entry, or the free list
    uint32_t node;
    uint32_t epoch;
    Remedy remedy;
    Origin origin;
    uint8_t in_use;
    uint8_t pad;
};

struct alignas(64) CounterShard {
    std::atomic<uint64_t> lookups{0};
    std::atomic<uint64_t> blocked{0};        // requests answered 403
    std::atomic<uint64_t> refused_accept{0}; // connections closed at accept
};

// The zone's head; the node pool and the entry pool follow it.
struct ZoneHeader {
    uint32_t magic;
    uint32_t node_capacity;
    uint32_t entry_capacity;
    std::atomic<uint32_t> seq; // odd while the writer changes the trie
    pthread_mutex_t writer;    // robust, process-shared
    // Written under `writer` only.
    uint32_t free_node, free_entry, nodes_used, entries_used, epoch;
    uint64_t writes; // every write section; a writer whose index is stale rebuilds it
    // Shared state.
    std::atomic<uint32_t> synced;     // a pull succeeded once: the fallback no longer applies
    std::atomic<uint32_t> lapi_state; // LapiState
    std::atomic<uint64_t> pulls_ok, pulls_failed, dropped_full, ignored_scope;
    std::atomic<uint32_t> held[kRemedies][kOrigins]; // decisions in force, by remedy and origin
    CounterShard shards[kCounterShards];
};

enum class LapiState : uint32_t { unknown = 0, up = 1, down = 2, refused = 3 };

// Bytes of a zone holding `max_decisions`.
size_t zone_size(uint32_t max_decisions);
// ZoneSpec::init: lays out fresh (zeroed) memory of `size` bytes.
void init_zone(void* mem, size_t size);

// A view of one zone. Readers call lookup(); the writer locks, changes, unlocks.
class DecisionTable {
public:
    DecisionTable() = default;
    DecisionTable(void* mem, size_t size);
    bool valid() const { return h_ != nullptr; }
    ZoneHeader& header() const { return *h_; }

    // The strongest remedy in force for `ip` at `now_ms` (Remedy::none: none). Allocates
    // nothing. `stable` turns false when a writer kept the trie busy too long to read it (then
    // the answer is none).
    Remedy lookup(const IpAddress& ip, int64_t now_ms, bool* stable = nullptr) const;

    // Writer side. lock() returns false when the previous writer died inside its section: the
    // trie was cleared (its state is unknown) and the caller should pull the full set again.
    bool lock();
    void unlock();
    // Adds or refreshes decision `id` for `net` (a host or a range). False: the pools are full.
    bool upsert(const Cidr& net, uint64_t id, Remedy remedy, Origin origin, int64_t expires_ms,
                uint32_t epoch);
    bool remove(uint64_t id);
    // Removes expired entries and, with `epoch`, those a full pull of that epoch did not see.
    size_t sweep(int64_t now_ms, uint32_t epoch = 0);
    void clear();
    // Recounts ZoneHeader::held.
    void recount(int64_t now_ms);
    size_t size() const { return h_ ? h_->entries_used : 0; }

private:
    Node* nodes() const;
    Entry* entries() const;
    void begin_write();
    void end_write();
    void rebuild_index();
    uint32_t alloc_node(uint32_t parent, const uint64_t key[2], uint32_t prefix);
    void unlink(uint32_t e);
    void prune(uint32_t n);
    void free_node(uint32_t n);

    ZoneHeader* h_ = nullptr;
    // The writer's id → entry index, rebuilt when another process wrote since.
    std::unordered_map<uint64_t, uint32_t> index_;
    uint64_t index_writes_ = ~0ull;
};

// CLOCK_MONOTONIC in milliseconds (the coarse clock: vDSO, no system call).
int64_t now_ms();
// IPv4 (or IPv4-mapped) as ::ffff:a.b.c.d, IPv6 as is: the trie's 128-bit key.
void trie_key(int family, const uint8_t* bytes, uint64_t out[2]);

} // namespace wraith::crowdsec
