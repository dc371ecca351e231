#include "modules/crowdsec/decision_table.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>
#include <type_traits>

#include "common/strings.h"

namespace wraith::crowdsec {

namespace {

constexpr uint32_t kMagic = 0x43534431; // "CSD1"
// A reader gives up after this many tries while a writer is in its section (a writer that died
// there leaves the sequence odd until the next writer repairs it).
constexpr int kReadTries = 4096;
// Decisions one node's list holds at most as far as a reader walks it (a torn read can loop).
constexpr int kMaxEntriesPerNode = 1024;

// Relaxed atomic access to fields a seqlock reader may read while the writer changes them
// (enums through their integer type: clang's builtins take integers only).
template <class T> T load(const T& v) {
    if constexpr (std::is_enum_v<T>)
        return static_cast<T>(__atomic_load_n(
            reinterpret_cast<const std::underlying_type_t<T>*>(&v), __ATOMIC_RELAXED));
    else
        return __atomic_load_n(&v, __ATOMIC_RELAXED);
}
template <class T> void store(T& v, T x) {
    if constexpr (std::is_enum_v<T>)
        __atomic_store_n(reinterpret_cast<std::underlying_type_t<T>*>(&v),
                         static_cast<std::underlying_type_t<T>>(x), __ATOMIC_RELAXED);
    else
        __atomic_store_n(&v, x, __ATOMIC_RELAXED);
}

size_t header_size() {
    return (sizeof(ZoneHeader) + 63) & ~size_t{63};
}

bool bit(const uint64_t key[2], uint32_t i) {
    return (key[i >> 6] >> (63 - (i & 63))) & 1;
}

// Bits `a` and `b` share from the top, at most `limit`.
uint32_t common_bits(const uint64_t a[2], const uint64_t b[2], uint32_t limit) {
    uint32_t n;
    if (a[0] != b[0])
        n = static_cast<uint32_t>(__builtin_clzll(a[0] ^ b[0]));
    else if (a[1] != b[1])
        n = 64 + static_cast<uint32_t>(__builtin_clzll(a[1] ^ b[1]));
    else
        n = 128;
    return n < limit ? n : limit;
}

// `key` with every bit from `prefix` on cleared.
void mask(uint64_t key[2], uint32_t prefix) {
    if (prefix >= 128)
        return;
    if (prefix >= 64) {
        key[1] &= prefix == 64 ? 0 : ~uint64_t{0} << (128 - prefix);
    } else {
        key[1] = 0;
        key[0] &= prefix == 0 ? 0 : ~uint64_t{0} << (64 - prefix);
    }
}

uint64_t be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = v << 8 | p[i];
    return v;
}

} // namespace

Remedy remedy_of(std::string_view type) {
    if (iequals(type, "ban"))
        return Remedy::ban;
    if (iequals(type, "captcha"))
        return Remedy::captcha;
    if (iequals(type, "throttle"))
        return Remedy::throttle;
    return Remedy::other;
}

Origin origin_of(std::string_view origin) {
    if (iequals(origin, "crowdsec"))
        return Origin::crowdsec;
    if (iequals(origin, "cscli"))
        return Origin::cscli;
    if (iequals(origin, "CAPI"))
        return Origin::capi;
    if (iequals(origin, "lists"))
        return Origin::lists;
    return Origin::other;
}

const char* remedy_name(Remedy r) {
    switch (r) {
    case Remedy::ban:
        return "ban";
    case Remedy::captcha:
        return "captcha";
    case Remedy::throttle:
        return "throttle";
    case Remedy::other:
        return "other";
    case Remedy::none:
        break;
    }
    return "none";
}

const char* origin_name(Origin o) {
    switch (o) {
    case Origin::crowdsec:
        return "crowdsec";
    case Origin::cscli:
        return "cscli";
    case Origin::capi:
        return "CAPI";
    case Origin::lists:
        return "lists";
    case Origin::other:
        break;
    }
    return "other";
}

int64_t now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

void trie_key(int family, const uint8_t* bytes, uint64_t out[2]) {
    uint8_t b[16];
    if (family == AF_INET) {
        std::memset(b, 0, 10);
        b[10] = b[11] = 0xff;
        std::memcpy(b + 12, bytes, 4);
    } else {
        std::memcpy(b, bytes, 16);
    }
    out[0] = be64(b);
    out[1] = be64(b + 8);
}

size_t zone_size(uint32_t max_decisions) {
    const size_t nodes = size_t{max_decisions} * kNodesPerDecision + 1;
    return header_size() + nodes * sizeof(Node) + size_t{max_decisions} * sizeof(Entry);
}

void init_zone(void* mem, size_t size) {
    if (size < header_size() + sizeof(Node) + sizeof(Entry))
        return;
    auto* h = new (mem) ZoneHeader{};
    const size_t per = kNodesPerDecision * sizeof(Node) + sizeof(Entry);
    const size_t decisions = (size - header_size() - sizeof(Node)) / per;
    h->entry_capacity = static_cast<uint32_t>(decisions);
    h->node_capacity = static_cast<uint32_t>(decisions * kNodesPerDecision + 1);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->writer, &a);
    pthread_mutexattr_destroy(&a);
    h->magic = kMagic;
    DecisionTable(mem, size).clear();
}

DecisionTable::DecisionTable(void* mem, size_t size) {
    auto* h = static_cast<ZoneHeader*>(mem);
    if (!h || size < header_size() || h->magic != kMagic)
        return;
    const size_t need = header_size() + size_t{h->node_capacity} * sizeof(Node) +
                        size_t{h->entry_capacity} * sizeof(Entry);
    if (need > size || h->node_capacity == 0 || h->entry_capacity == 0)
        return;
    h_ = h;
}

Node* DecisionTable::nodes() const {
    return reinterpret_cast<Node*>(reinterpret_cast<char*>(h_) + header_size());
}

Entry* DecisionTable::entries() const {
    return reinterpret_cast<Entry*>(nodes() + h_->node_capacity);
}

Remedy DecisionTable::lookup(const IpAddress& ip, int64_t now, bool* stable) const {
    if (stable)
        *stable = true;
    if (!h_ || (ip.family != AF_INET && ip.family != AF_INET6))
        return Remedy::none;
    uint64_t key[2];
    trie_key(ip.family, ip.bytes, key);
    const Node* ns = nodes();
    const Entry* es = entries();
    const uint32_t ncap = h_->node_capacity, ecap = h_->entry_capacity;
    for (int attempt = 0; attempt < kReadTries; ++attempt) {
        const uint32_t s1 = h_->seq.load(std::memory_order_acquire);
        if (s1 & 1) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        Remedy best = Remedy::none;
        uint32_t n = 0; // the root: prefix 0
        // Prefixes grow strictly along a path, so 129 nodes at most (a torn read may not).
        for (int steps = 0; n < ncap && steps <= 128; ++steps) {
            const uint32_t prefix = load(ns[n].prefix);
            if (prefix > 128)
                break;
            const uint64_t node_key[2] = {load(ns[n].key[0]), load(ns[n].key[1])};
            if (common_bits(key, node_key, prefix) < prefix)
                break; // this node's prefix does not cover the address
            int walked = 0;
            for (uint32_t e = load(ns[n].first); e < ecap && walked < kMaxEntriesPerNode;
                 e = load(es[e].next), ++walked) {
                const Remedy r = load(es[e].remedy);
                if (load(es[e].expires_ms) > now && r > best)
                    best = r;
            }
            if (prefix == 128)
                break;
            n = load(ns[n].child[bit(key, prefix)]);
        }
        std::atomic_thread_fence(std::memory_order_acquire);
        if (h_->seq.load(std::memory_order_relaxed) == s1)
            return best;
    }
    if (stable)
        *stable = false;
    return Remedy::none;
}

bool DecisionTable::lock() {
    const int rc = pthread_mutex_lock(&h_->writer);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&h_->writer);
        clear(); // the dead writer may have left the trie half-changed
        return false;
    }
    if (h_->seq.load(std::memory_order_relaxed) & 1) {
        clear();
        return false;
    }
    if (h_->writes != index_writes_)
        rebuild_index();
    return true;
}

void DecisionTable::unlock() {
    index_writes_ = h_->writes;
    pthread_mutex_unlock(&h_->writer);
}

void DecisionTable::begin_write() {
    const uint32_t s = h_->seq.load(std::memory_order_relaxed);
    h_->seq.store(s | 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
}

void DecisionTable::end_write() {
    const uint32_t s = h_->seq.load(std::memory_order_relaxed);
    h_->seq.store((s | 1) + 1, std::memory_order_release);
    ++h_->writes;
}

void DecisionTable::rebuild_index() {
    index_.clear();
    const Entry* es = entries();
    for (uint32_t i = 0; i < h_->entry_capacity; ++i)
        if (es[i].in_use)
            index_[es[i].id] = i;
}

void DecisionTable::clear() {
    begin_write();
    Node* ns = nodes();
    Entry* es = entries();
    ns[0] = Node{{0, 0}, {kNil, kNil}, kNil, kNil, 0, 0};
    for (uint32_t i = 1; i < h_->node_capacity; ++i)
        ns[i] = Node{{0, 0}, {i + 1 < h_->node_capacity ? i + 1 : kNil, kNil}, kNil, kNil, 0, 0};
    for (uint32_t i = 0; i < h_->entry_capacity; ++i)
        es[i] = Entry{
            0, 0, i + 1 < h_->entry_capacity ? i + 1 : kNil, kNil, 0, Remedy::none, Origin::other,
            0, 0};
    h_->free_node = h_->node_capacity > 1 ? 1 : kNil;
    h_->free_entry = 0;
    h_->nodes_used = 1;
    h_->entries_used = 0;
    index_.clear();
    for (auto& row : h_->held)
        for (auto& n : row)
            n.store(0, std::memory_order_relaxed);
    end_write();
    index_writes_ = h_->writes;
}

uint32_t DecisionTable::alloc_node(uint32_t parent, const uint64_t key[2], uint32_t prefix) {
    const uint32_t n = h_->free_node;
    if (n == kNil)
        return kNil;
    Node* ns = nodes();
    h_->free_node = ns[n].child[0];
    Node& x = ns[n];
    store(x.key[0], key[0]);
    store(x.key[1], key[1]);
    mask(x.key, prefix);
    store(x.prefix, prefix);
    store(x.child[0], kNil);
    store(x.child[1], kNil);
    store(x.first, kNil);
    x.parent = parent;
    ++h_->nodes_used;
    return n;
}

void DecisionTable::free_node(uint32_t n) {
    Node* ns = nodes();
    ns[n].parent = kNil;
    store(ns[n].first, kNil);
    store(ns[n].child[1], kNil);
    store(ns[n].child[0], h_->free_node);
    h_->free_node = n;
    --h_->nodes_used;
}

bool DecisionTable::upsert(const Cidr& net, uint64_t id, Remedy remedy, Origin origin,
                           int64_t expires_ms, uint32_t epoch) {
    Entry* es = entries();
    if (auto it = index_.find(id); it != index_.end()) {
        Entry& e = es[it->second];
        begin_write();
        store(e.expires_ms, expires_ms);
        store(e.remedy, remedy);
        e.origin = origin;
        e.epoch = epoch;
        end_write();
        return true;
    }
    // Two nodes at most are needed; the pool holds two per entry, so it has them whenever an
    // entry is free (checked anyway: a zone is shared, and cheap checks cost nothing).
    if (h_->free_entry == kNil || h_->nodes_used + 2 > h_->node_capacity)
        return false;
    uint64_t key[2];
    trie_key(net.family, net.addr, key);
    const uint32_t len =
        static_cast<uint32_t>(net.family == AF_INET ? 96 + net.prefix : net.prefix);
    mask(key, len);
    Node* ns = nodes();
    begin_write();
    uint32_t n = 0; // invariant: n's prefix covers key and is at most len
    while (ns[n].prefix < len) {
        const bool b = bit(key, ns[n].prefix);
        const uint32_t c = ns[n].child[b];
        if (c == kNil) {
            const uint32_t leaf = alloc_node(n, key, len);
            store(ns[n].child[b], leaf);
            n = leaf;
            break;
        }
        const uint32_t common = common_bits(key, ns[c].key, std::min(len, ns[c].prefix));
        if (common == ns[c].prefix) {
            n = c; // c covers key: go down
            continue;
        }
        // key leaves c's path after `common` bits: a node there takes c as its child.
        const uint32_t mid = alloc_node(n, key, common);
        store(ns[mid].child[bit(ns[c].key, common)], c);
        ns[c].parent = mid;
        store(ns[n].child[b], mid);
        if (common == len) {
            n = mid; // the decision's own prefix
        } else {
            const uint32_t leaf = alloc_node(mid, key, len);
            store(ns[mid].child[bit(key, common)], leaf);
            n = leaf;
        }
        break;
    }
    const uint32_t e = h_->free_entry;
    h_->free_entry = es[e].next;
    es[e] = Entry{expires_ms, id, ns[n].first, n, epoch, remedy, origin, 1, 0};
    store(ns[n].first, e);
    ++h_->entries_used;
    end_write();
    index_[id] = e;
    return true;
}

void DecisionTable::unlink(uint32_t e) {
    Node* ns = nodes();
    Entry* es = entries();
    const uint32_t n = es[e].node;
    if (ns[n].first == e) {
        store(ns[n].first, es[e].next);
    } else {
        for (uint32_t p = ns[n].first; p != kNil; p = es[p].next)
            if (es[p].next == e) {
                store(es[p].next, es[e].next);
                break;
            }
    }
    es[e].in_use = 0;
    store(es[e].expires_ms, int64_t{0});
    es[e].node = kNil;
    es[e].next = h_->free_entry;
    h_->free_entry = e;
    --h_->entries_used;
    prune(n);
}

// After `n` lost a decision or a child: a node without decisions that has no children goes, one
// with a single child is spliced out (its child takes its place), and the parent is looked at
// again. The root stays.
void DecisionTable::prune(uint32_t n) {
    Node* ns = nodes();
    while (n != 0 && n != kNil && ns[n].first == kNil) {
        const uint32_t parent = ns[n].parent;
        const uint32_t c0 = ns[n].child[0], c1 = ns[n].child[1];
        if (c0 != kNil && c1 != kNil)
            return; // a branch node: still needed
        const uint32_t only = c0 != kNil ? c0 : c1;
        Node& p = ns[parent];
        const int side = p.child[0] == n ? 0 : 1;
        store(p.child[side], only);
        if (only != kNil)
            ns[only].parent = parent;
        free_node(n);
        if (only != kNil)
            return; // the parent kept a child on that side: nothing changed for it
        n = parent;
    }
}

bool DecisionTable::remove(uint64_t id) {
    auto it = index_.find(id);
    if (it == index_.end())
        return false;
    const uint32_t e = it->second;
    index_.erase(it);
    begin_write();
    unlink(e);
    end_write();
    return true;
}

size_t DecisionTable::sweep(int64_t now, uint32_t epoch) {
    Entry* es = entries();
    size_t removed = 0;
    for (uint32_t i = 0; i < h_->entry_capacity; ++i) {
        if (!es[i].in_use)
            continue;
        const bool stale = epoch != 0 && es[i].epoch != epoch;
        if (es[i].expires_ms > now && !stale)
            continue;
        index_.erase(es[i].id);
        begin_write();
        unlink(i);
        end_write();
        ++removed;
    }
    return removed;
}

void DecisionTable::recount(int64_t now) {
    uint32_t held[kRemedies][kOrigins] = {};
    const Entry* es = entries();
    for (uint32_t i = 0; i < h_->entry_capacity; ++i)
        if (es[i].in_use && es[i].expires_ms > now)
            ++held[static_cast<size_t>(es[i].remedy)][static_cast<size_t>(es[i].origin)];
    for (size_t r = 0; r < kRemedies; ++r)
        for (size_t o = 0; o < kOrigins; ++o)
            h_->held[r][o].store(held[r][o], std::memory_order_relaxed);
}

} // namespace wraith::crowdsec
