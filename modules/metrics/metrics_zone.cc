#include "modules/metrics/metrics_zone.h"

#include <cmath>
#include <cstring>

namespace wraith::metrics {

int native_bucket_index(uint64_t us) {
    if (us == 0)
        return -1;
    static_assert(kNativeSchema == 3, "the bounds below are schema 3's");
    // 2^(j/8 - 1), j = 0..7: where a frexp() fraction crosses into the next bucket.
    static constexpr double kBounds[8] = {0.5,
                                          0.5452538663326288,
                                          0.5946035575013605,
                                          0.6484197773255048,
                                          0.7071067811865476,
                                          0.7711054127039704,
                                          0.8408964152537145,
                                          0.9170040432046712};
    int exp = 0;
    const double frac = std::frexp(static_cast<double>(us) * 1e-6, &exp);
    int j = 0;
    while (j < 8 && kBounds[j] < frac)
        ++j;
    int key = j + (exp - 1) * 8;
    if (key < kNativeMinKey)
        key = kNativeMinKey;
    if (key > kNativeMaxKey)
        key = kNativeMaxKey;
    return key - kNativeMinKey;
}

void record_error(Zone& zone, int64_t time_ms, int status, int protocol, std::string_view method,
                  std::string_view host, std::string_view path) {
    const uint64_t n = zone.errors.next.fetch_add(1, std::memory_order_relaxed);
    RecentError& e = zone.errors.entries[n % kRecentErrors];
    e.seq.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    auto put = [](char* field, size_t size, std::string_view v) {
        v = v.substr(0, size - 1);
        if (!v.empty()) // an empty view may have no data() at all
            std::memcpy(field, v.data(), v.size());
        field[v.size()] = 0;
    };
    e.time_ms = time_ms;
    e.status = static_cast<uint16_t>(status);
    e.protocol = static_cast<uint8_t>(protocol);
    put(e.method, sizeof(e.method), method);
    put(e.host, sizeof(e.host), host);
    put(e.path, sizeof(e.path), path);
    e.seq.store(n + 1, std::memory_order_release);
}

} // namespace wraith::metrics
