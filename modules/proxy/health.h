// Passive and active health of upstream servers, shared by every worker of every generation:
// a table in the shared-memory zone "proxy.health" (common/shm.h), so failures seen by one
// worker take a server out for all of them, and the state survives reloads and binary
// upgrades. A slot per (upstream name, server address), claimed by compare-and-swap; counts are
// relaxed atomics (an extra failure counted or missed under a race is harmless).
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace wraith::proxy {

class Health {
public:
    static constexpr size_t kSlots = 4096;
    // The zone's layout version: bump it when Slot changes, so a binary upgrade makes a fresh
    // zone instead of reading the old layout.
    static constexpr uint32_t kLayoutVersion = 1;

    // Stable key of a server of an upstream.
    static uint64_t key(std::string_view upstream, std::string_view address);
    // Whether the server may be tried now (not ejected, or its ejection is over).
    bool available(uint64_t key, uint64_t now_ms);
    // A failure (connect error, timeout, reset before a response): `max_fails` of them within
    // `fail_timeout_ms` eject the server for fail_timeout, doubling per repeated ejection up
    // to 8x. Returns true when this failure ejected it.
    bool failure(uint64_t key, uint32_t max_fails, uint64_t fail_timeout_ms, uint64_t now_ms);
    // A complete response head: the server is well again.
    void success(uint64_t key);
    // Milliseconds left of the server's ejection (0 when in service), for status and logs.
    uint64_t ejected_for(uint64_t key, uint64_t now_ms);

    // Active checks: the checking worker records each verdict (up after `rise` successes,
    // down after `fall` failures). Readers honour a "down" only while it is fresher than
    // `stale_ms`, so a checker that died or a check removed by a reload cannot keep a server
    // out for ever.
    void set_active(uint64_t key, bool up, uint64_t now_ms);
    bool active_up(uint64_t key, uint64_t now_ms, uint64_t stale_ms);

private:
    struct Slot {
        std::atomic<uint64_t> key{0};
        std::atomic<uint32_t> fails{0};
        std::atomic<uint32_t> ejections{0};
        std::atomic<uint64_t> window_start_ms{0};
        std::atomic<uint64_t> down_until_ms{0};
        std::atomic<uint32_t> active_down{0};
        std::atomic<uint64_t> active_checked_ms{0};
    };
    Slot* slot(uint64_t key);
    Slot slots_[kSlots];
};

uint64_t monotonic_ms();
// The same clock in microseconds: the timings of upstream tries (upstream_trace.h).
uint64_t monotonic_us();

} // namespace wraith::proxy
