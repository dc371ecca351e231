#include "common/ocsp_cache.h"

#include <algorithm>
#include <cstring>

namespace wraith {

int OcspCache::slot_for(const unsigned char fingerprint[32]) {
    int free_slot = -1;
    for (int i = 0; i < kSlots; ++i) {
        if (slots[i].used && std::memcmp(slots[i].fingerprint, fingerprint, 32) == 0)
            return i;
        if (!slots[i].used && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        OcspSlot& s = slots[free_slot];
        std::memcpy(s.fingerprint, fingerprint, 32);
        s.used = true;
        s.len = 0;
    }
    return free_slot;
}

void OcspCache::publish(int slot, const std::vector<unsigned char>& der, time_t next_update) {
    if (slot < 0 || der.size() > OcspSlot::kMaxResponse)
        return;
    OcspSlot& s = slots[slot];
    uint32_t g = s.seq.load(std::memory_order_relaxed);
    s.seq.store(g + 1, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(s.der, der.data(), der.size());
    s.len = static_cast<uint32_t>(der.size());
    s.next_update = next_update;
    std::atomic_thread_fence(std::memory_order_release);
    s.seq.store(g + 2, std::memory_order_release);
}

int OcspCache::find(const unsigned char fingerprint[32]) const {
    for (int i = 0; i < kSlots; ++i)
        if (slots[i].used && std::memcmp(slots[i].fingerprint, fingerprint, 32) == 0)
            return i;
    return -1;
}

size_t OcspCache::read(int slot, unsigned char* out, size_t cap, time_t* next_update) const {
    if (slot < 0)
        return 0;
    const OcspSlot& s = slots[slot];
    for (int attempt = 0; attempt < 100; ++attempt) {
        uint32_t before = s.seq.load(std::memory_order_acquire);
        if (before & 1)
            continue;
        std::atomic_thread_fence(std::memory_order_acquire);
        size_t len = std::min<size_t>(s.len, cap);
        std::memcpy(out, s.der, len);
        *next_update = s.next_update;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.seq.load(std::memory_order_acquire) == before)
            return len;
    }
    return 0; // the master keeps writing: staple nothing this time
}

} // namespace wraith
