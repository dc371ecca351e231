#include "modules/metrics/metrics_zone.h"

#include <cstring>

#include "common/hash.h"

namespace wraith::metrics {

namespace {

std::string_view fit(std::string_view s, size_t field) {
    return s.substr(0, field - 1); // room for the terminating NUL
}

bool same(const RouteName& r, std::string_view site, std::string_view route) {
    return site == std::string_view(r.site) && route == std::string_view(r.route);
}

} // namespace

std::string_view fit_site(std::string_view site) {
    return fit(site, sizeof(RouteName::site));
}

std::string_view fit_route(std::string_view route) {
    return fit(route, sizeof(RouteName::route));
}

void record_error(Zone& zone, int64_t time_ms, int status, int protocol, std::string_view method,
                  std::string_view host, std::string_view path) {
    const uint64_t n = zone.errors.next.fetch_add(1, std::memory_order_relaxed);
    RecentError& e = zone.errors.entries[n % kRecentErrors];
    e.seq.store(0, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    auto put = [](char* field, size_t size, std::string_view v) {
        v = v.substr(0, size - 1);
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

int claim_route(Zone& zone, std::string_view site, std::string_view route) {
    site = fit_site(site);
    route = fit_route(route);
    uint64_t key = mix64(fnv1a64(site) ^ mix64(fnv1a64(route)));
    if (key <= RouteName::kClaiming)
        key += 2;
    for (int probe = 0; probe < kRoutes; ++probe) {
        RouteName& r = zone.routes[(key + probe) % kRoutes];
        for (int spins = 0; spins < 100000; ++spins) {
            uint64_t k = r.key.load(std::memory_order_acquire);
            if (k == RouteName::kClaiming)
                continue; // another worker is writing this slot's names: a few stores away
            if (k == 0) {
                uint64_t expected = 0;
                if (!r.key.compare_exchange_strong(expected, RouteName::kClaiming,
                                                   std::memory_order_acq_rel))
                    continue; // taken meanwhile: look at it again
                std::memset(r.site, 0, sizeof(r.site));
                std::memset(r.route, 0, sizeof(r.route));
                std::memcpy(r.site, site.data(), site.size());
                std::memcpy(r.route, route.data(), route.size());
                r.key.store(key, std::memory_order_release);
                return static_cast<int>(&r - zone.routes);
            }
            if (k == key && same(r, site, route))
                return static_cast<int>(&r - zone.routes);
            break; // another route's slot: probe on
        }
    }
    return -1;
}

} // namespace wraith::metrics
