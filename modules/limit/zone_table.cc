#include "modules/limit/zone_table.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>
#include <sys/random.h>

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
            clear(s, t.h_->buckets);
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

void ZoneTable::layout(size_t size, uint32_t& shards, uint32_t& capacity, uint32_t& buckets,
                       size_t& shard_bytes) {
    // One shard per 64 KiB up to 16: a small zone is one list (exact LRU), a big one spreads
    // lock traffic of the workers over 16.
    shards = 1;
    while (shards < 16 && size / (shards * 2) >= 64 * 1024)
        shards *= 2;
    shard_bytes = ((size - header_bytes()) / shards) & ~size_t(63);
    const size_t room = shard_bytes - sizeof(Shard);
    const size_t most = room / (sizeof(Entry) + sizeof(uint32_t));
    buckets = 1;
    while (size_t(buckets) * 2 <= most)
        buckets *= 2; // at most one chain per entry, at least one per two
    capacity = static_cast<uint32_t>((room - buckets * sizeof(uint32_t)) / sizeof(Entry));
}

size_t ZoneTable::capacity_for(size_t size) {
    uint32_t shards, capacity, buckets;
    size_t shard_bytes;
    layout(size, shards, capacity, buckets, shard_bytes);
    return size_t(shards) * capacity;
}

void ZoneTable::init(void* mem, size_t size) {
    auto* h = new (mem) Header();
    size_t shard_bytes;
    layout(size, h->shard_count, h->capacity, h->buckets, shard_bytes);
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
        pthread_mutex_init(&s->mutex, &attr);
        clear(s, h->buckets);
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

uint32_t* ZoneTable::buckets(Shard* s) const {
    return reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(s) + sizeof(Shard));
}

ZoneTable::Entry* ZoneTable::entries(Shard* s) const {
    return reinterpret_cast<Entry*>(buckets(s) + h_->buckets);
}

void ZoneTable::clear(Shard* s, uint32_t buckets) {
    s->used = 0;
    s->free_head = kNone;
    s->newest = s->oldest = kNone;
    s->live = 0;
    std::memset(reinterpret_cast<char*>(s) + sizeof(Shard), 0xff, buckets * sizeof(uint32_t));
}

size_t ZoneTable::capacity() const {
    return size_t(h_->shard_count) * h_->capacity;
}

uint64_t ZoneTable::hash(std::string_view key) const {
    uint64_t v = siphash<1, 3>(h_->secret[0], h_->secret[1], key);
    return v ? v : 1;
}

uint32_t ZoneTable::find(Shard* s, uint64_t key) const {
    Entry* e = entries(s);
    for (uint32_t i = buckets(s)[key & (h_->buckets - 1)]; i != kNone; i = e[i].chain)
        if (e[i].key == key)
            return i;
    return kNone;
}

void ZoneTable::unlink_lru(Shard* s, uint32_t i) const {
    Entry* e = entries(s);
    if (e[i].newer != kNone)
        e[e[i].newer].older = e[i].older;
    else
        s->newest = e[i].older;
    if (e[i].older != kNone)
        e[e[i].older].newer = e[i].newer;
    else
        s->oldest = e[i].newer;
}

void ZoneTable::push_newest(Shard* s, uint32_t i) const {
    Entry* e = entries(s);
    e[i].newer = kNone;
    e[i].older = s->newest;
    if (s->newest != kNone)
        e[s->newest].newer = i;
    s->newest = i;
    if (s->oldest == kNone)
        s->oldest = i;
}

void ZoneTable::unlink_chain(Shard* s, uint32_t i) const {
    Entry* e = entries(s);
    uint32_t* link = &buckets(s)[e[i].key & (h_->buckets - 1)];
    while (*link != kNone && *link != i)
        link = &e[*link].chain;
    if (*link == i)
        *link = e[i].chain;
}

uint32_t ZoneTable::find_or_add(Shard* s, uint64_t key, int64_t now, bool* evicted_active) const {
    Entry* e = entries(s);
    uint32_t i = find(s, key);
    if (i != kNone) {
        if (s->newest != i) {
            unlink_lru(s, i);
            push_newest(s, i);
        }
        return i;
    }
    if (s->free_head != kNone) {
        i = s->free_head;
        s->free_head = e[i].chain;
    } else if (s->used < h_->capacity) {
        i = s->used++;
    } else {
        // Full: the least recently used key without live connections makes room. A few
        // steps only, so a shard full of connected keys refuses instead of walking it all.
        uint32_t victim = s->oldest;
        for (int steps = 0; victim != kNone && e[victim].conns != 0 && steps < 16; ++steps)
            victim = e[victim].newer;
        if (victim == kNone || e[victim].conns != 0)
            return kNone;
        const bool active = e[victim].tat > now;
        h_->counters.evicted.fetch_add(1, std::memory_order_relaxed);
        if (active) {
            h_->counters.evicted_active.fetch_add(1, std::memory_order_relaxed);
            if (evicted_active)
                *evicted_active = true;
        }
        unlink_chain(s, victim);
        unlink_lru(s, victim);
        --s->live;
        i = victim;
    }
    uint32_t* bucket = &buckets(s)[key & (h_->buckets - 1)];
    e[i] = Entry{key, 0, *bucket, kNone, kNone, 0};
    *bucket = i;
    push_newest(s, i);
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
    if (max_connections != 0 && e.conns >= max_connections) {
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
    ++e.conns;
    return v;
}

void ZoneTable::close_connection(uint64_t key, uint32_t epoch) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    if (epoch != h_->epoch.load(std::memory_order_relaxed))
        return; // counted before a reset, which already took it off
    uint32_t i = find(s, key);
    if (i != kNone && entries(s)[i].conns > 0)
        --entries(s)[i].conns;
}

uint32_t ZoneTable::recount_connection(uint64_t key, uint32_t epoch) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    uint32_t now_epoch = h_->epoch.load(std::memory_order_relaxed);
    if (epoch == now_epoch)
        return epoch;
    uint32_t i = find_or_add(s, key, monotonic_ns(), nullptr);
    if (i != kNone)
        ++entries(s)[i].conns;
    return now_epoch; // not counted when the shard is full of connected keys: it may run over
}

uint32_t ZoneTable::connections(uint64_t key) const {
    Shard* s = shard_of(key);
    Locked lock(*this, s);
    uint32_t i = find(s, key);
    return i == kNone ? 0 : entries(s)[i].conns;
}

void ZoneTable::reset_connections() const {
    // Every lock, in shard order (workers hold one at a time, so this cannot deadlock).
    for (uint32_t n = 0; n < h_->shard_count; ++n) {
        Shard* s = shard(n);
        int rc = pthread_mutex_lock(&s->mutex);
        if (rc == EOWNERDEAD) {
            pthread_mutex_consistent(&s->mutex);
            clear(s, h_->buckets);
        }
    }
    for (uint32_t n = 0; n < h_->shard_count; ++n) {
        Shard* s = shard(n);
        Entry* e = entries(s);
        for (uint32_t i = s->newest; i != kNone; i = e[i].older)
            e[i].conns = 0;
    }
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
