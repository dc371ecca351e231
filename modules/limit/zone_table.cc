#include "modules/limit/zone_table.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "modules/limit/keyed_hash.h"

namespace wraith::limit {

int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); // the vDSO: no system call
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Holds a shard's lock. A previous holder that died (EOWNERDEAD) may have left the shard's
// links half-written: the shard starts empty.
class ZoneTable::Locked {
public:
    Locked(const ZoneTable& t, Shard* s) : s_(s) {
        int rc = pthread_mutex_lock(&s->mutex);
        if (rc == EOWNERDEAD) {
            pthread_mutex_consistent(&s->mutex);
            t.clear(s);
        }
    }
    ~Locked() { pthread_mutex_unlock(&s_->mutex); }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

private:
    Shard* s_;
};

size_t ZoneTable::header_bytes() {
    return (sizeof(Header) + 63) & ~size_t(63);
}

void ZoneTable::layout(size_t size, uint32_t& shards, uint32_t& capacity, uint32_t& slots,
                       size_t& shard_bytes) {
    // One shard per 64 KiB up to 16: a small zone is one table, a big one spreads the
    // workers' lock traffic over 16.
    shards = 1;
    while (shards < 16 && size / (shards * 2) >= 64 * 1024)
        shards *= 2;
    shard_bytes = ((size - header_bytes()) / shards) & ~size_t(63);
    slots = static_cast<uint32_t>((shard_bytes - sizeof(Shard)) / sizeof(Entry));
    capacity = slots - slots / 5;
}

size_t ZoneTable::capacity_for(size_t size) {
    uint32_t shards, capacity, slots;
    size_t shard_bytes;
    layout(size, shards, capacity, slots, shard_bytes);
    return size_t(shards) * capacity;
}

void ZoneTable::init(void* mem, size_t size) {
    auto* h = new (mem) Header();
    size_t shard_bytes;
    layout(size, h->shard_count, h->capacity, h->slots, shard_bytes);
    h->sweep = std::min<uint32_t>(64, h->slots);
    h->shard_bytes = shard_bytes;
    h->shard_shift = 64;
    for (uint32_t n = h->shard_count; n > 1; n >>= 1)
        --h->shard_shift;
    h->layout = kLayoutVersion;
    // The hash secret: per zone, kept with it across reloads and upgrades.
    if (getrandom(h->secret, sizeof(h->secret), 0) != sizeof(h->secret)) {
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts); // no entropy at all: still not a constant
        h->secret[0] = static_cast<uint64_t>(ts.tv_nsec) * 0x9e3779b97f4a7c15ull;
        h->secret[1] = reinterpret_cast<uintptr_t>(mem) ^ static_cast<uint64_t>(ts.tv_sec);
    }
    ZoneTable t;
    t.h_ = h;
    t.base_ = static_cast<char*>(mem);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    for (uint32_t i = 0; i < h->shard_count; ++i) {
        Shard* s = new (t.shard(i)) Shard();
        pthread_mutex_init(&s->mutex, &attr); // the slots are zero: empty
    }
    pthread_mutexattr_destroy(&attr);
    h->magic = kMagic; // last: a table is valid once complete
}

ZoneTable::ZoneTable(void* mem, size_t size) {
    auto* h = static_cast<Header*>(mem);
    if (!h || size < kMinSize || h->magic != kMagic || h->layout != kLayoutVersion ||
        header_bytes() + size_t(h->shard_count) * h->shard_bytes > size)
        return;
    h_ = h;
    base_ = static_cast<char*>(mem);
}

ZoneTable::Shard* ZoneTable::shard(size_t i) const {
    return reinterpret_cast<Shard*>(base_ + header_bytes() + i * h_->shard_bytes);
}

ZoneTable::Shard* ZoneTable::shard_of(uint64_t key) const {
    return shard(h_->shard_count > 1 ? key >> h_->shard_shift : 0);
}

ZoneTable::Entry* ZoneTable::entries(Shard* s) const {
    return reinterpret_cast<Entry*>(reinterpret_cast<char*>(s) + sizeof(Shard));
}

// The key's first slot: its low 32 bits scaled onto the slots (the high bits chose the shard).
uint32_t ZoneTable::home(uint64_t key) const {
    return static_cast<uint32_t>((uint64_t(uint32_t(key)) * h_->slots) >> 32);
}

void ZoneTable::clear(Shard* s) const {
    s->live = 0;
    s->hand = 0;
    // Whole pages go back to the kernel (read again as zeros) instead of being written, so a
    // big zone's untouched pages stay untouched; the edges are written.
    char* from = reinterpret_cast<char*>(entries(s));
    char* to = from + size_t(h_->slots) * sizeof(Entry);
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    char* a = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(from) + page - 1) & ~(page - 1));
    char* b = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(to) & ~(page - 1));
    if (a < b && madvise(a, static_cast<size_t>(b - a), MADV_REMOVE) == 0) {
        std::memset(from, 0, static_cast<size_t>(a - from));
        std::memset(b, 0, static_cast<size_t>(to - b));
    } else {
        std::memset(from, 0, static_cast<size_t>(to - from));
    }
}

uint32_t& ZoneTable::conns(Entry& e) const {
    const uint32_t epoch = h_->epoch.load(std::memory_order_relaxed); // stable under a lock
    if (e.conns_epoch != epoch) {
        e.conns = 0;
        e.conns_epoch = epoch;
    }
    return e.conns;
}

size_t ZoneTable::capacity() const {
    return size_t(h_->shard_count) * h_->capacity;
}

uint64_t ZoneTable::hash(std::string_view key) const {
    uint64_t v = siphash<1, 3>(h_->secret[0], h_->secret[1], key);
    return v ? v : 1;
}

void ZoneTable::prefetch(uint64_t key) const {
    Shard* s = shard_of(key);
    __builtin_prefetch(&entries(s)[home(key)], 1);
    __builtin_prefetch(s, 1);
}

uint32_t ZoneTable::next(uint32_t i) const {
    return i + 1 == h_->slots ? 0 : i + 1;
}

uint32_t ZoneTable::find(Shard* s, uint64_t key) const {
    const Entry* e = entries(s);
    // A run always ends: a shard holds at most `capacity` keys, fewer than its slots.
    for (uint32_t i = home(key);; i = next(i)) {
        if (e[i].key == key)
            return i;
        if (e[i].key == 0)
            return kNone;
    }
}

uint32_t ZoneTable::free_slot(Shard* s, uint64_t key) const {
    const Entry* e = entries(s);
    uint32_t i = home(key);
    while (e[i].key != 0)
        i = next(i);
    return i;
}

void ZoneTable::erase(Shard* s, uint32_t i) const {
    Entry* e = entries(s);
    // Backward shift: a later key of the run whose home is not between the hole and itself
    // (cyclically) would be cut off from its home by the hole: it moves into the hole.
    for (uint32_t j = next(i);; j = next(j)) {
        if (e[j].key == 0)
            break;
        const uint32_t h = home(e[j].key);
        const bool reachable = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!reachable) {
            e[i] = e[j];
            i = j;
        }
    }
    e[i] = Entry{};
    --s->live;
}

uint32_t ZoneTable::sweep_for_room(Shard* s, int64_t now) const {
    Entry* e = entries(s);
    uint32_t best = kNone;
    uint32_t i = s->hand;
    for (uint32_t step = 0; step < h_->sweep; ++step, i = next(i)) {
        if (e[i].key == 0 || conns(e[i]) != 0)
            continue;
        if (e[i].tat <= now) {
            best = i; // its state has run out: forgetting it loses nothing
            break;
        }
        if (best == kNone || e[i].used_ns < e[best].used_ns)
            best = i; // else the least recently used
    }
    s->hand = i; // the next sweep goes on from here
    return best;
}

uint32_t ZoneTable::find_or_add(Shard* s, uint64_t key, int64_t now, bool* evicted_active) const {
    Entry* e = entries(s);
    uint32_t i = find(s, key);
    if (i != kNone) {
        e[i].used_ns = now; // the line is being written anyway
        return i;
    }
    if (s->live >= h_->capacity) {
        const uint32_t victim = sweep_for_room(s, now);
        if (victim == kNone)
            return kNone;
        h_->counters.evicted.fetch_add(1, std::memory_order_relaxed);
        if (e[victim].tat > now) {
            h_->counters.evicted_active.fetch_add(1, std::memory_order_relaxed);
            if (evicted_active)
                *evicted_active = true;
        }
        erase(s, victim);
    }
    i = free_slot(s, key); // after the erase: its shift may have moved this run's keys
    e[i] = Entry{key, 0, 0, h_->epoch.load(std::memory_order_relaxed), now};
    ++s->live;
    return i;
}

RateVerdict ZoneTable::check_rate(uint64_t key, int64_t now, const Gcra& g, bool commit,
                                  bool* evicted_active) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    uint32_t i = find_or_add(s, key, now, evicted_active);
    if (i == kNone) {
        int64_t tat = 0; // cannot happen in a request zone (no connections): judge it fresh
        return gcra_check(tat, now, g, false);
    }
    return gcra_check(entries(s)[i].tat, now, g, commit);
}

void ZoneTable::refund(uint64_t key, int64_t interval_ns) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    uint32_t i = find(s, key);
    if (i != kNone && entries(s)[i].tat != 0)
        entries(s)[i].tat -= interval_ns;
}

ZoneTable::ConnVerdict ZoneTable::open_connection(uint64_t key, int64_t now,
                                                  uint32_t max_connections,
                                                  const Gcra* rate) const {
    ConnVerdict v;
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    v.epoch = h_->epoch.load(std::memory_order_relaxed); // stable: resets hold every lock
    uint32_t i = find_or_add(s, key, now, nullptr);
    if (i == kNone) {
        v.result = ConnResult::full;
        return v;
    }
    Entry& e = entries(s)[i];
    if (max_connections != 0 && conns(e) >= max_connections) {
        v.result = ConnResult::too_many;
        return v;
    }
    if (rate) {
        RateVerdict r = gcra_check(e.tat, now, *rate, true);
        if (!r.allowed) {
            v.result = ConnResult::too_fast;
            v.retry_ns = r.retry_ns;
            return v;
        }
    }
    ++conns(e);
    return v;
}

void ZoneTable::close_connection(uint64_t key, uint32_t epoch) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    if (epoch != h_->epoch.load(std::memory_order_relaxed))
        return; // counted before a reset, which already took it off
    uint32_t i = find(s, key);
    if (i != kNone && conns(entries(s)[i]) > 0)
        --conns(entries(s)[i]);
}

uint32_t ZoneTable::recount_connection(uint64_t key, uint32_t epoch) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    uint32_t now_epoch = h_->epoch.load(std::memory_order_relaxed);
    if (epoch == now_epoch)
        return epoch;
    uint32_t i = find_or_add(s, key, monotonic_ns(), nullptr);
    if (i != kNone)
        ++conns(entries(s)[i]);
    return now_epoch; // not counted when the shard is full of connected keys: it may run over
}

uint32_t ZoneTable::connections(uint64_t key) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    uint32_t i = find(s, key);
    return i == kNone ? 0 : conns(entries(s)[i]);
}

void ZoneTable::reset_connections() const {
    // Every lock, in shard order (workers hold one at a time, so this cannot deadlock).
    for (uint32_t n = 0; n < h_->shard_count; ++n) {
        Shard* s = shard(n);
        int rc = pthread_mutex_lock(&s->mutex);
        if (rc == EOWNERDEAD) {
            pthread_mutex_consistent(&s->mutex);
            clear(s);
        }
    }
    // Every count taken under the old epoch reads as 0 from now on (conns()).
    h_->epoch.fetch_add(1, std::memory_order_release);
    for (uint32_t n = h_->shard_count; n-- > 0;)
        pthread_mutex_unlock(&shard(n)->mutex);
}

bool ZoneTable::claim_log(int64_t now, int64_t interval_ns) const {
    int64_t last = h_->logged_at_ns.load(std::memory_order_relaxed);
    if (last != 0 && now - last < interval_ns)
        return false;
    return h_->logged_at_ns.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

} // namespace wraith::limit
