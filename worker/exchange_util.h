// Small pieces every protocol adapter (worker/http1, worker/http2, worker/http3) needs when it
// maps its wire format onto the shared exchange: one definition each.
#pragma once

#include <cstdint>
#include <ctime>
#include <string_view>

#include "common/arena.h"

namespace wraith {

// Microseconds on the monotonic clock: exchange durations in logs.
inline uint64_t monotonic_us() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000ull +
           static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// Stamps the start of an exchange (Request::start, Request::start_mono_us) with one clock
// read: the wall-clock time is the monotonic one plus an offset read again at most once a
// second, so a stepped system clock shows in the logs within a second.
inline void stamp_start(timespec& wall, uint64_t& mono_us) {
    static uint64_t synced_us = 0;  // when the offset was taken (monotonic), 0: never
    static int64_t offset_us = 0;   // realtime - monotonic
    mono_us = monotonic_us();
    if (synced_us == 0 || mono_us - synced_us >= 1000000) {
        timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        offset_us = static_cast<int64_t>(rt.tv_sec) * 1000000 + rt.tv_nsec / 1000 -
                    static_cast<int64_t>(mono_us);
        synced_us = mono_us;
    }
    int64_t us = static_cast<int64_t>(mono_us) + offset_us;
    wall.tv_sec = static_cast<time_t>(us / 1000000);
    wall.tv_nsec = static_cast<long>(us % 1000000) * 1000;
}

// RFC 9110 §6.4.1: 1xx, 204 and 304 responses have no content.
inline bool status_has_body(int status) {
    return status >= 200 && status != 204 && status != 304;
}

// RFC 9113 §8.2.2, RFC 9114 §4.2: fields that only mean something to one HTTP/1 connection,
// malformed in HTTP/2 and HTTP/3 messages.
inline bool connection_specific(std::string_view name) {
    return name == "connection" || name == "keep-alive" || name == "transfer-encoding" ||
           name == "upgrade" || name == "proxy-connection";
}

// "Example.COM:8443" -> "example.com"; "[::1]:80" -> "[::1]": the authority's host, lower-cased
// into `arena`.
inline std::string_view host_of(std::string_view authority, Arena& arena) {
    std::string_view host = authority;
    if (!host.empty() && host.front() == '[') {
        size_t close = host.find(']');
        host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
    } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
        host = host.substr(0, colon);
    }
    host = arena.copy(host);
    char* p = const_cast<char*>(host.data());
    for (size_t i = 0; i < host.size(); ++i)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = static_cast<char>(p[i] + 32);
    return host;
}

} // namespace wraith
