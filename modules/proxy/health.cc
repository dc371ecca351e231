#include "modules/proxy/health.h"

#include <ctime>
#include <new>

#include "modules/proxy/balancer.h"

namespace wraith::proxy {

uint64_t monotonic_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); // the same clock in every process
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t monotonic_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

uint64_t Health::key(std::string_view upstream, std::string_view address) {
    uint64_t k = hash_key(std::string(upstream) + "\n" + std::string(address));
    return k ? k : 1; // 0 marks a free slot
}

Health::Slot* Health::slot(uint64_t key) {
    size_t start = key % kSlots;
    for (size_t i = 0; i < kSlots; ++i) {
        Slot& s = slots_[(start + i) % kSlots];
        uint64_t k = s.key.load(std::memory_order_acquire);
        if (k == key)
            return &s;
        if (k == 0) {
            uint64_t expected = 0;
            if (s.key.compare_exchange_strong(expected, key, std::memory_order_acq_rel))
                return &s;
            if (expected == key)
                return &s;
        }
    }
    return nullptr; // full: passive health is off for this server
}

bool Health::available(uint64_t key, uint64_t now_ms) {
    Slot* s = slot(key);
    return !s || s->down_until_ms.load(std::memory_order_relaxed) <= now_ms;
}

uint64_t Health::ejected_for(uint64_t key, uint64_t now_ms) {
    Slot* s = slot(key);
    uint64_t until = s ? s->down_until_ms.load(std::memory_order_relaxed) : 0;
    return until > now_ms ? until - now_ms : 0;
}

bool Health::failure(uint64_t key, uint32_t max_fails, uint64_t fail_timeout_ms, uint64_t now_ms) {
    if (max_fails == 0)
        return false;
    Slot* s = slot(key);
    if (!s)
        return false;
    uint64_t start = s->window_start_ms.load(std::memory_order_relaxed);
    if (now_ms - start > fail_timeout_ms) {
        s->window_start_ms.store(now_ms, std::memory_order_relaxed);
        s->fails.store(0, std::memory_order_relaxed);
    }
    if (s->fails.fetch_add(1, std::memory_order_relaxed) + 1 < max_fails)
        return false;
    s->fails.store(0, std::memory_order_relaxed);
    uint32_t n = s->ejections.fetch_add(1, std::memory_order_relaxed);
    uint64_t factor = 1ull << (n < 3 ? n : 3); // 1, 2, 4, 8
    s->down_until_ms.store(now_ms + fail_timeout_ms * factor, std::memory_order_relaxed);
    return true;
}

void Health::success(uint64_t key) {
    Slot* s = slot(key);
    if (s && s->ejections.load(std::memory_order_relaxed))
        s->ejections.store(0, std::memory_order_relaxed);
}

void Health::set_active(uint64_t key, bool up, uint64_t now_ms) {
    if (Slot* s = slot(key)) {
        s->active_down.store(up ? 0 : 1, std::memory_order_relaxed);
        s->active_checked_ms.store(now_ms, std::memory_order_relaxed);
    }
}

bool Health::active_up(uint64_t key, uint64_t now_ms, uint64_t stale_ms) {
    Slot* s = slot(key);
    if (!s || !s->active_down.load(std::memory_order_relaxed))
        return true;
    uint64_t at = s->active_checked_ms.load(std::memory_order_relaxed);
    return at < now_ms && now_ms - at > stale_ms; // another process's clock read may be newer
}

} // namespace wraith::proxy
