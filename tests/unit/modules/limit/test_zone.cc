// The limit module's arithmetic and shared table (modules/limit): GCRA passes a burst then the
// rate, says when to retry and what remains; the zone table keys by SipHash, finds every key it
// holds however keys come and go, makes room from keys whose state ran out first (counting
// keys that still held state), never reuses a key that holds connections, counts connections
// exactly across a reset that follows a dead worker, and survives a process that died holding
// a shard's lock.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "modules/limit/flat_map.h"
#include "modules/limit/gcra.h"
#include "modules/limit/keyed_hash.h"
#include "modules/limit/zone_table.h"

using namespace wraith::limit;

namespace wraith::limit {
// Reaches a shard's lock as a dying process would hold it.
struct ZoneTableProbe {
    static void lock_and_die(const ZoneTable& t, uint64_t key) {
        pthread_mutex_lock(&t.shard_of(key)->mutex);
        _exit(0);
    }
    // Whether the table holds `key`, without adding it as check_rate() would.
    static bool holds(const ZoneTable& t, uint64_t key) {
        ZoneTable::Shard* s = t.shard_of(key);
        pthread_mutex_lock(&s->mutex);
        const bool held = t.find(s, key) != ZoneTable::kNone;
        pthread_mutex_unlock(&s->mutex);
        return held;
    }
};
} // namespace wraith::limit

namespace {

constexpr int64_t kMs = 1000000;
constexpr int64_t kSec = 1000 * kMs;

// A zone in memory shared with children (as the master's memfd is with workers).
struct SharedTable {
    size_t size;
    void* mem;
    ZoneTable table;
    explicit SharedTable(size_t bytes) : size(bytes) {
        mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        REQUIRE(mem != MAP_FAILED);
        ZoneTable::init(mem, size);
        table = ZoneTable(mem, size);
        REQUIRE(table.valid());
    }
    ~SharedTable() { munmap(mem, size); }
};

std::string key_name(size_t i, const char* prefix = "k") {
    char buf[32];
    snprintf(buf, sizeof(buf), "%s%zu", prefix, i);
    return buf;
}

// Fills the zone with keys k0, k1, ..., each checked once under `g`, a microsecond apart from
// `now` on (so k0 is the least recently used); returns their hashes.
std::vector<uint64_t> fill_limited(const ZoneTable& t, const Gcra& g, int64_t now) {
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < t.capacity(); ++i) {
        keys.push_back(t.hash(key_name(i)));
        REQUIRE(t.check_rate(keys.back(), now + int64_t(i) * 1000, g, true).allowed);
    }
    return keys;
}

Gcra rate(int64_t per_second, int64_t burst) {
    Gcra g;
    g.interval_ns = kSec / per_second;
    g.tolerance_ns = burst * g.interval_ns;
    return g;
}

} // namespace

TEST_CASE("limit: SipHash-2-4 matches the paper's test vector") {
    const uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    std::string msg;
    for (int i = 0; i < 15; ++i)
        msg += static_cast<char>(i);
    CHECK(siphash<2, 4>(k0, k1, msg) == 0xa129ca6149be45e5ull);
    CHECK(siphash<2, 4>(k0, k1, "") == 0x726fdb47dd0e0e31ull);
}

TEST_CASE("limit: GCRA passes the burst at once, then one request per interval") {
    const Gcra g = rate(10, 3); // 100 ms apart, 3 more at once
    int64_t tat = 0;
    const int64_t t0 = 1000 * kSec;
    for (int i = 0; i < 4; ++i) {
        RateVerdict v = gcra_check(tat, t0, g, true);
        REQUIRE(v.allowed);
        CHECK(v.remaining == 3 - i);
    }
    RateVerdict refused = gcra_check(tat, t0, g, true);
    CHECK_FALSE(refused.allowed);
    CHECK(refused.retry_ns == 100 * kMs);
    CHECK(refused.remaining == 0);
    // A refused request changes nothing: it still waits 100 ms, and one passes then.
    CHECK_FALSE(gcra_check(tat, t0 + 99 * kMs, g, true).allowed);
    CHECK(gcra_check(tat, t0 + 100 * kMs, g, true).allowed);
    CHECK_FALSE(gcra_check(tat, t0 + 150 * kMs, g, true).allowed);
    // Idle for a second: the whole burst is back, not more.
    int passed = 0;
    while (gcra_check(tat, t0 + 2 * kSec, g, true).allowed)
        ++passed;
    CHECK(passed == 4);
}

TEST_CASE("limit: GCRA without commit only looks") {
    const Gcra g = rate(1, 0);
    int64_t tat = 0;
    CHECK(gcra_check(tat, 5 * kSec, g, false).allowed);
    CHECK(tat == 0);
    CHECK(gcra_check(tat, 5 * kSec, g, true).allowed);
    CHECK_FALSE(gcra_check(tat, 5 * kSec, g, true).allowed);
}

TEST_CASE("limit: zone keys are keyed hashes, different per zone") {
    SharedTable a(64 * 1024), b(64 * 1024);
    CHECK(a.table.hash("198.51.100.7") == a.table.hash("198.51.100.7"));
    CHECK(a.table.hash("198.51.100.7") != a.table.hash("198.51.100.8"));
    CHECK(a.table.hash("198.51.100.7") != b.table.hash("198.51.100.7")); // secrets differ
    CHECK(a.table.hash("") != 0);
}

TEST_CASE("limit: zone size decides capacity; 32k is the least") {
    CHECK(ZoneTable::capacity_for(ZoneTable::kMinSize) > 500);
    CHECK(ZoneTable::capacity_for(1 << 20) > 25000);
    CHECK(ZoneTable::capacity_for(16 << 20) > 400000);
    SharedTable t(ZoneTable::kMinSize);
    CHECK(t.table.capacity() == ZoneTable::capacity_for(ZoneTable::kMinSize));
    // Garbage is not a table.
    std::vector<char> junk(64 * 1024, 'x');
    CHECK_FALSE(ZoneTable(junk.data(), junk.size()).valid());
    CHECK_FALSE(ZoneTable(nullptr, 0).valid());
}

TEST_CASE("limit: a full zone forgets one key per new key and counts what it lost") {
    SharedTable t(ZoneTable::kMinSize);
    REQUIRE(t.table.shards() == 1);
    const size_t cap = t.table.capacity();
    const Gcra g = rate(1, 0);
    const int64_t now = 100 * kSec;
    const std::vector<uint64_t> keys = fill_limited(t.table, g, now);
    // Every key is limited for a second: a new one takes the place of one of them.
    const int64_t later = now + 10 * kMs;
    bool evicted_active = false;
    CHECK(t.table.check_rate(t.table.hash("new"), later, g, true, &evicted_active).allowed);
    CHECK(evicted_active);
    CHECK(t.table.counters().evicted == 1);
    CHECK(t.table.counters().evicted_active == 1);
    CHECK(ZoneTableProbe::holds(t.table, t.table.hash("new")));
    size_t held = 0, refused = 0;
    for (uint64_t k : keys)
        if (ZoneTableProbe::holds(t.table, k)) {
            ++held;
            refused += !t.table.check_rate(k, later, g, false).allowed; // kept their state
        }
    CHECK(held == cap - 1);
    CHECK(refused == cap - 1);
    // Much later nothing holds state: making room loses nothing.
    evicted_active = false;
    CHECK(t.table.check_rate(t.table.hash("later"), now + 10 * kSec, g, true, &evicted_active)
              .allowed);
    CHECK_FALSE(evicted_active);
    CHECK(t.table.counters().evicted_active == 1);
}

TEST_CASE("limit: a full zone takes keys whose state ran out before keys still limited") {
    SharedTable t(ZoneTable::kMinSize);
    const size_t cap = t.table.capacity();
    const int64_t now = 100 * kSec;
    // Every other key is limited for a second; the rest for a millisecond.
    std::vector<uint64_t> limited;
    for (size_t i = 0; i < cap; ++i) {
        const uint64_t k = t.table.hash(key_name(i));
        const bool slow = i % 2 == 0;
        REQUIRE(t.table.check_rate(k, now, slow ? rate(1, 0) : rate(1000, 0), true).allowed);
        if (slow)
            limited.push_back(k);
    }
    const int64_t later = now + 10 * kMs;
    for (int i = 0; i < 100; ++i) {
        bool evicted_active = false;
        REQUIRE(t.table.check_rate(t.table.hash(key_name(i, "n")), later, rate(1, 0),
                                   true, &evicted_active)
                    .allowed);
        CHECK_FALSE(evicted_active);
    }
    CHECK(t.table.counters().evicted == 100);
    for (uint64_t k : limited)
        CHECK(ZoneTableProbe::holds(t.table, k));
}

TEST_CASE("limit: with every key limited, a full zone drops the least recently used") {
    SharedTable t(ZoneTable::kMinSize);
    const size_t cap = t.table.capacity();
    const Gcra g = rate(1, 0);
    const int64_t now = 100 * kSec;
    const std::vector<uint64_t> keys = fill_limited(t.table, g, now);
    // The oldest fifth is checked again (refused, but used): now the keys after it are older.
    const size_t fifth = cap / 5;
    for (size_t i = 0; i < fifth; ++i)
        REQUIRE_FALSE(t.table.check_rate(keys[i], now + 2 * kMs + int64_t(i), g, true).allowed);
    for (size_t i = 0; i < cap / 10; ++i)
        REQUIRE(t.table.check_rate(t.table.hash(key_name(i, "new")), now + 3 * kMs, g, true)
                    .allowed);
    CHECK(t.table.counters().evicted_active == cap / 10);
    for (size_t i = 0; i < fifth; ++i)
        CHECK(ZoneTableProbe::holds(t.table, keys[i]));
}

TEST_CASE("limit: every key held stays findable as keys come and go") {
    // Many more keys than room, at rising times: the table keeps taking the oldest state and
    // moving probe runs back; whatever it says it holds must still be found.
    SharedTable t(ZoneTable::kMinSize);
    const size_t cap = t.table.capacity();
    const Gcra g = rate(1, 0);
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < 6 * cap; ++i) {
        keys.push_back(t.table.hash(key_name(i, "churn")));
        REQUIRE(t.table.check_rate(keys.back(), kSec + int64_t(i) * kMs, g, true).allowed);
        if (i % 997 == 0 || i + 1 == 6 * cap) {
            size_t held = 0;
            for (uint64_t k : keys)
                held += ZoneTableProbe::holds(t.table, k);
            CHECK(held == std::min(keys.size(), cap));
        }
    }
    // A held key is one entry, not two: checking it again finds its state.
    const uint64_t last = keys.back();
    CHECK_FALSE(t.table.check_rate(last, kSec + int64_t(6 * cap) * kMs, g, true).allowed);
}

TEST_CASE("limit: a refund gives one request back") {
    SharedTable t(64 * 1024);
    const Gcra g = rate(1, 0);
    const uint64_t k = t.table.hash("client");
    CHECK(t.table.check_rate(k, kSec, g, true).allowed);
    CHECK_FALSE(t.table.check_rate(k, kSec, g, true).allowed);
    t.table.refund(k, g.interval_ns);
    CHECK(t.table.check_rate(k, kSec, g, true).allowed);
}

TEST_CASE("limit: connections are counted, capped and paced per key") {
    SharedTable t(64 * 1024);
    const uint64_t a = t.table.hash("a"), b = t.table.hash("b");
    const int64_t now = 50 * kSec;
    auto v1 = t.table.open_connection(a, now, 2, nullptr);
    auto v2 = t.table.open_connection(a, now, 2, nullptr);
    CHECK(v1.result == ZoneTable::ConnResult::ok);
    CHECK(v2.result == ZoneTable::ConnResult::ok);
    CHECK(t.table.open_connection(a, now, 2, nullptr).result == ZoneTable::ConnResult::too_many);
    CHECK(t.table.open_connection(b, now, 2, nullptr).result == ZoneTable::ConnResult::ok);
    t.table.close_connection(a, v1.epoch);
    CHECK(t.table.connections(a) == 1);
    CHECK(t.table.open_connection(a, now, 2, nullptr).result == ZoneTable::ConnResult::ok);

    const Gcra g = rate(2, 1); // 2 new connections a second, 1 more at once
    const uint64_t c = t.table.hash("c");
    CHECK(t.table.open_connection(c, now, 0, &g).result == ZoneTable::ConnResult::ok);
    CHECK(t.table.open_connection(c, now, 0, &g).result == ZoneTable::ConnResult::ok);
    auto fast = t.table.open_connection(c, now, 0, &g);
    CHECK(fast.result == ZoneTable::ConnResult::too_fast);
    CHECK(fast.retry_ns == 500 * kMs);
    CHECK(t.table.connections(c) == 2);
}

TEST_CASE("limit: a key that holds connections is never reused; a zone full of them refuses") {
    SharedTable t(ZoneTable::kMinSize);
    const size_t cap = t.table.capacity();
    for (size_t i = 0; i < cap; ++i)
        REQUIRE(t.table.open_connection(t.table.hash(std::to_string(i)), kSec, 0, nullptr)
                    .result == ZoneTable::ConnResult::ok);
    CHECK(t.table.open_connection(t.table.hash("one more"), kSec, 0, nullptr).result ==
          ZoneTable::ConnResult::full);
    for (size_t i = 0; i < cap; ++i)
        CHECK(t.table.connections(t.table.hash(std::to_string(i))) == 1);
}

TEST_CASE("limit: after a reset, closes of older connections give nothing back and recounts "
          "restore the live ones exactly") {
    SharedTable t(64 * 1024);
    const uint64_t k = t.table.hash("10.0.0.1");
    auto live = t.table.open_connection(k, kSec, 10, nullptr);    // a survivor's
    auto dead = t.table.open_connection(k, kSec, 10, nullptr);    // a dead worker's
    auto closing = t.table.open_connection(k, kSec, 10, nullptr); // closes after the reset
    (void)dead;
    REQUIRE(t.table.connections(k) == 3);
    t.table.reset_connections();
    CHECK(t.table.epoch() == live.epoch + 1);
    CHECK(t.table.connections(k) == 0);
    t.table.close_connection(k, closing.epoch); // counted before the reset: nothing to give
    CHECK(t.table.connections(k) == 0);
    uint32_t e = t.table.recount_connection(k, live.epoch);
    CHECK(e == t.table.epoch());
    CHECK(t.table.recount_connection(k, e) == e); // counted once only
    CHECK(t.table.connections(k) == 1);
    t.table.close_connection(k, e);
    CHECK(t.table.connections(k) == 0);
}

TEST_CASE("limit: a process that dies holding a shard's lock does not stop the others") {
    SharedTable t(64 * 1024);
    const Gcra g = rate(1, 0);
    const uint64_t k = t.table.hash("x");
    REQUIRE(t.table.check_rate(k, kSec, g, true).allowed);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        ZoneTableProbe::lock_and_die(t.table, k);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    // The lock is recovered and the shard, perhaps half-written, starts empty.
    CHECK(t.table.check_rate(k, kSec, g, true).allowed);
    CHECK_FALSE(t.table.check_rate(k, kSec, g, true).allowed);
}

TEST_CASE("limit: workers sharing a zone are held to one rate together") {
    SharedTable t(64 * 1024);
    const Gcra g = rate(1000, 99); // 100 at once, then nothing for the rest of this instant
    const uint64_t k = t.table.hash("shared");
    const int64_t now = 7 * kSec;
    constexpr int kChildren = 4, kTries = 200;
    int* passed = static_cast<int*>(mmap(nullptr, sizeof(int) * kChildren, PROT_READ | PROT_WRITE,
                                         MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    for (int c = 0; c < kChildren; ++c) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int n = 0;
            for (int i = 0; i < kTries; ++i)
                n += t.table.check_rate(k, now, g, true).allowed;
            passed[c] = n;
            _exit(0);
        }
    }
    for (int c = 0; c < kChildren; ++c) {
        int status;
        REQUIRE(wait(&status) > 0);
    }
    int total = 0;
    for (int c = 0; c < kChildren; ++c)
        total += passed[c];
    CHECK(total == 100);
    munmap(passed, sizeof(int) * kChildren);
}

TEST_CASE("limit: FlatMap agrees with std::unordered_map under random inserts and erases") {
    FlatMap m;
    std::unordered_map<uint64_t, uint32_t> ref;
    std::mt19937_64 rng(42);
    for (int i = 0; i < 200000; ++i) {
        uint64_t key = rng() % 5000 + 1;
        if (rng() % 3 == 0) {
            m.erase(key);
            ref.erase(key);
        } else {
            uint32_t v = static_cast<uint32_t>(rng());
            m.insert(key, v);
            ref[key] = v;
        }
    }
    REQUIRE(m.size() == ref.size());
    for (uint64_t key = 1; key <= 5000; ++key) {
        auto it = ref.find(key);
        CHECK(m.find(key) == (it == ref.end() ? FlatMap::kMissing : it->second));
    }
}
