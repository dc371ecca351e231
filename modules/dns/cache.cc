// The shared DNS cache (cache.h).
#include "modules/dns/cache.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>
#include <pthread.h>
#include <sys/random.h>

#include "modules/limit/keyed_hash.h"

namespace wraith::dns {

namespace {
constexpr uint64_t kMagic = 0x57524149544844ULL; // "WRAITHD"
constexpr int kWays = 8;
constexpr size_t kAlign = 8;
// Sizing: a typical entry (key + answer) is a few hundred bytes; twice as many slots as such
// entries, so a bucket is seldom full.
constexpr size_t kBytesPerEntry = 256;
constexpr size_t kEntriesPerBucket = kWays / 2;
// A slot's `pos` top bit: the entry was asked for since the bucket last needed room.
constexpr uint64_t kReferenced = uint64_t(1) << 63;
} // namespace

struct Cache::Header {
    uint64_t magic;
    uint32_t layout;
    uint32_t bucket_count;
    uint64_t ring_size;
    uint64_t secret[2];
    pthread_mutex_t mutex;
    uint64_t write_pos; // absolute: how many bytes the ring has written since init
    Counters counters;
};

struct Cache::Slot {
    uint64_t hash; // 0: free
    uint64_t pos;  // the entry's absolute position, and kReferenced
    uint64_t at() const { return pos & ~kReferenced; }
};

struct Cache::Entry {
    uint64_t hash;
    int64_t stored_ms;
    uint32_t size; // the whole entry, padded to kAlign
    uint32_t ttl_s;
    uint16_t key_len;
    uint16_t answer_len;
    uint32_t pad;
    // key bytes, then answer bytes
};

CacheKey::CacheKey(const Message& m) {
    std::memcpy(bytes, m.qname, m.qname_len);
    size_t n = m.qname_len;
    bytes[n++] = uint8_t(m.qtype >> 8);
    bytes[n++] = uint8_t(m.qtype);
    bytes[n++] = uint8_t(m.qclass >> 8);
    bytes[n++] = uint8_t(m.qclass);
    bytes[n++] = m.dnssec_ok ? 1 : 0;
    len = static_cast<uint16_t>(n);
}

int64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void Cache::init(void* mem, size_t size) {
    auto* h = new (mem) Header();
    h->layout = kLayoutVersion;
    const size_t avail = size - ((sizeof(Header) + 63) & ~size_t(63));
    const size_t per_bucket = kWays * sizeof(Slot) + kEntriesPerBucket * kBytesPerEntry;
    h->bucket_count = static_cast<uint32_t>(avail / per_bucket > 0 ? avail / per_bucket : 1);
    h->ring_size = (avail - h->bucket_count * kWays * sizeof(Slot)) & ~(kAlign - 1);
    if (getrandom(h->secret, sizeof h->secret, 0) != sizeof h->secret) {
        timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        h->secret[0] = uint64_t(ts.tv_nsec) * 0x9e3779b97f4a7c15ull;
        h->secret[1] = reinterpret_cast<uintptr_t>(mem) ^ uint64_t(ts.tv_sec);
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    h->magic = kMagic; // last: the cache is valid once complete
}

Cache::Cache(void* mem, size_t size) {
    auto* h = static_cast<Header*>(mem);
    if (!h || size < kMinSize || h->magic != kMagic || h->layout != kLayoutVersion)
        return;
    char* base = static_cast<char*>(mem) + ((sizeof(Header) + 63) & ~size_t(63));
    slots_ = reinterpret_cast<Slot*>(base);
    ring_ = base + size_t(h->bucket_count) * kWays * sizeof(Slot);
    if (ring_ + h->ring_size > static_cast<char*>(mem) + size)
        return;
    h_ = h;
}

Counters& Cache::counters() const {
    static Counters unshared; // no zone (a worker without one would be a bug; tests)
    return h_ ? h_->counters : unshared;
}

void Cache::lock() const {
    if (pthread_mutex_lock(&h_->mutex) == EOWNERDEAD) {
        // A worker died holding the lock, perhaps half-way through a write: forget everything
        // (an empty cache only costs upstream queries).
        std::memset(slots_, 0, size_t(h_->bucket_count) * kWays * sizeof(Slot));
        pthread_mutex_consistent(&h_->mutex);
    }
}

void Cache::unlock() const {
    pthread_mutex_unlock(&h_->mutex);
}

uint64_t Cache::hash(std::string_view key) const {
    const uint64_t v = limit::siphash<1, 3>(h_->secret[0], h_->secret[1], key);
    return v ? v : 1;
}

bool Cache::live(uint64_t pos) const {
    // Written over once the write position is a ring length past the entry's start (entries
    // never wrap around the ring's end, so its start is written over first).
    return h_->write_pos - pos <= h_->ring_size;
}

uint64_t Cache::append(uint64_t hash, const CacheKey& key, std::string_view answer, int64_t stored,
                       uint32_t ttl_s) {
    const size_t size = (sizeof(Entry) + key.len + answer.size() + kAlign - 1) & ~(kAlign - 1);
    uint64_t pos = h_->write_pos;
    const uint64_t offset = pos % h_->ring_size;
    if (offset + size > h_->ring_size)
        pos += h_->ring_size - offset; // no entry wraps: skip to the ring's start
    h_->write_pos = pos + size;
    char* at = ring_ + pos % h_->ring_size;
    Entry e{hash,  stored,  static_cast<uint32_t>(size),
            ttl_s, key.len, static_cast<uint16_t>(answer.size()),
            0};
    std::memcpy(at, &e, sizeof e);
    std::memcpy(at + sizeof e, key.bytes, key.len);
    std::memcpy(at + sizeof e + key.len, answer.data(), answer.size());
    return pos;
}

void Cache::store(const CacheKey& key, std::string_view answer, uint32_t ttl_s, int64_t now_ms) {
    if (!h_ || ttl_s == 0 || sizeof(Entry) + key.len + answer.size() > h_->ring_size / 8)
        return;
    const uint64_t hv = hash(key.view());
    Slot* bucket = slots_ + (hv % h_->bucket_count) * kWays;
    lock();
    Slot* target = nullptr;
    for (int i = 0; i < kWays && !target; ++i)
        if (bucket[i].hash == hv || bucket[i].hash == 0 || !live(bucket[i].at()))
            target = &bucket[i];
    // Every way holds a live entry: the oldest not asked for since the last time goes (a
    // second chance, as the ring gives), else the oldest; the marks are cleared.
    for (int pass = 0; pass < 2 && !target; ++pass) {
        for (int i = 0; i < kWays; ++i)
            if ((pass == 1 || !(bucket[i].pos & kReferenced)) &&
                (!target || bucket[i].at() < target->at()))
                target = &bucket[i];
    }
    for (int i = 0; i < kWays; ++i)
        bucket[i].pos &= ~kReferenced;
    target->pos = append(hv, key, answer, now_ms, ttl_s);
    target->hash = hv;
    unlock();
}

bool Cache::lookup(const CacheKey& key, int64_t now_ms, std::string& out, uint32_t& age_s,
                   uint32_t keep_stale_s, bool stale) {
    if (!h_)
        return false;
    const uint64_t hv = hash(key.view());
    Slot* bucket = slots_ + (hv % h_->bucket_count) * kWays;
    bool found = false;
    lock();
    for (int i = 0; i < kWays; ++i) {
        Slot& s = bucket[i];
        if (s.hash != hv || !live(s.at()))
            continue;
        const char* at = ring_ + s.at() % h_->ring_size;
        Entry e;
        std::memcpy(&e, at, sizeof e);
        if (e.hash != hv || e.key_len != key.len ||
            std::memcmp(at + sizeof e, key.bytes, key.len) != 0)
            continue;
        const int64_t expired_ms = now_ms - e.stored_ms - int64_t(e.ttl_s) * 1000;
        if (now_ms < e.stored_ms || expired_ms >= int64_t(keep_stale_s) * 1000) {
            s.hash = 0; // expired (and past serve_stale): the slot is free
            break;
        }
        if (expired_ms >= 0 && !stale)
            break; // kept for serve_stale, not fresh
        out.assign(at + sizeof e + e.key_len, e.answer_len);
        age_s = static_cast<uint32_t>((now_ms - e.stored_ms) / 1000);
        // Second chance: an entry in the ring's oldest quarter that is still asked for is
        // written again at the head (from the copy just made: the append may overwrite it).
        if (h_->write_pos - s.at() > h_->ring_size * 3 / 4)
            s.pos = append(hv, key, out, e.stored_ms, e.ttl_s);
        s.pos |= kReferenced;
        found = true;
        break;
    }
    unlock();
    return found;
}

} // namespace wraith::dns
