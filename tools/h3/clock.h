// Monotonic time in nanoseconds, the unit ngtcp2 timestamps use.
#pragma once

#include <cstdint>
#include <ctime>

namespace h3 {

inline uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

} // namespace h3
