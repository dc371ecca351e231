// Rows of counters named by a pair of strings in shared memory: how metrics give a route
// (site, path) or an upstream server (pool, address) a row without a lock. Any worker of any
// generation claims a slot by its names and finds it again by the same names, after a reload
// too. Open addressing on a hash of the names; a slot's `key` is 0 while free, kClaiming while
// one process writes its names, then the hash (never 0 or 1). Slots are never freed, so a
// lookup stops at the first free slot. A full table answers -1.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/hash.h"

namespace wraith {

template <size_t FirstSize, size_t SecondSize> struct NameSlot {
    static constexpr uint64_t kClaiming = 1;
    std::atomic<uint64_t> key;
    char first[FirstSize];
    char second[SecondSize];

    bool claimed() const { return key.load(std::memory_order_acquire) > kClaiming; }
    // The names as stored: cut to fit their field (UTF-8 may end mid-character; labels and
    // JSON strings take any bytes).
    static std::string_view fit_first(std::string_view s) { return s.substr(0, FirstSize - 1); }
    static std::string_view fit_second(std::string_view s) { return s.substr(0, SecondSize - 1); }
};

namespace name_slots {

inline uint64_t key_of(std::string_view a, std::string_view b) {
    uint64_t key = mix64(fnv1a64(a) ^ mix64(fnv1a64(b) + 1));
    return key <= 1 ? key + 2 : key;
}

} // namespace name_slots

// The slot of (a, b) in `table` (`n` slots), claimed if it has none yet; -1 when every slot is
// taken by other names.
template <size_t A, size_t B>
int claim_slot(NameSlot<A, B>* table, int n, std::string_view a, std::string_view b) {
    using Slot = NameSlot<A, B>;
    a = Slot::fit_first(a);
    b = Slot::fit_second(b);
    const uint64_t key = name_slots::key_of(a, b);
    for (int probe = 0; probe < n; ++probe) {
        Slot& s = table[(key + static_cast<uint64_t>(probe)) % static_cast<uint64_t>(n)];
        for (int spins = 0; spins < 100000; ++spins) {
            uint64_t k = s.key.load(std::memory_order_acquire);
            if (k == Slot::kClaiming)
                continue; // another process is writing this slot's names: a few stores away
            if (k == 0) {
                uint64_t expected = 0;
                if (!s.key.compare_exchange_strong(expected, Slot::kClaiming,
                                                   std::memory_order_acq_rel))
                    continue; // taken meanwhile: look at it again
                std::memset(s.first, 0, sizeof(s.first));
                std::memset(s.second, 0, sizeof(s.second));
                if (!a.empty()) // an empty view may have no data() at all
                    std::memcpy(s.first, a.data(), a.size());
                if (!b.empty())
                    std::memcpy(s.second, b.data(), b.size());
                s.key.store(key, std::memory_order_release);
                return static_cast<int>(&s - table);
            }
            if (k == key && a == std::string_view(s.first) && b == std::string_view(s.second))
                return static_cast<int>(&s - table);
            break; // another name's slot: probe on
        }
    }
    return -1;
}

// The slot of (a, b) if one was claimed, else -1 (claims nothing).
template <size_t A, size_t B>
int find_slot(const NameSlot<A, B>* table, int n, std::string_view a, std::string_view b) {
    using Slot = NameSlot<A, B>;
    a = Slot::fit_first(a);
    b = Slot::fit_second(b);
    const uint64_t key = name_slots::key_of(a, b);
    for (int probe = 0; probe < n; ++probe) {
        const Slot& s = table[(key + static_cast<uint64_t>(probe)) % static_cast<uint64_t>(n)];
        const uint64_t k = s.key.load(std::memory_order_acquire);
        if (k == 0)
            return -1; // claims never leave a hole before their slot
        if (k == key && a == std::string_view(s.first) && b == std::string_view(s.second))
            return static_cast<int>(&s - table);
    }
    return -1;
}

} // namespace wraith
