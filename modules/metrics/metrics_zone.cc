#include "modules/metrics/metrics_zone.h"

#include <cstring>

namespace wraith::metrics {

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
