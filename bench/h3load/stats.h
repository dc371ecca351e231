// h3load's measurements and their report, printed in h2load's format so that
// bench/report.py reads both tools' outputs the same way.
#pragma once

#include <cstdint>
#include <cstdio>
#include <vector>

namespace h3load {

// Bytes received, cumulative; a window's traffic is the difference of two snapshots.
struct Traffic {
    uint64_t total = 0;           // `total` is all stream (frame) bytes received.
    uint64_t headers = 0;         // `headers` is response header bytes as sent (compressed).
    uint64_t headers_decoded = 0; // `headers_decoded` is the same headers decoded.
    uint64_t data = 0;            // `data` is response body bytes.

    Traffic operator-(const Traffic& o) const {
        return {total - o.total, headers - o.headers, headers_decoded - o.headers_decoded,
                data - o.data};
    }
    Traffic& operator+=(const Traffic& o) {
        total += o.total;
        headers += o.headers;
        headers_decoded += o.headers_decoded;
        data += o.data;
        return *this;
    }
};

// Everything counted inside the measurement window.
struct Stats {
    uint64_t total = 0;      // `total` is the requests asked for (-n) or started (-D).
    uint64_t started = 0;    // `started` were submitted inside the window.
    uint64_t done = 0;       // `done` ended inside the window (response or error).
    uint64_t succeeded = 0;  // `succeeded` got a 2xx or 3xx response.
    uint64_t failed = 0;     // `failed` is everything else, including never finished.
    uint64_t errored = 0;    // `errored` failed below HTTP (reset, connection lost, timeout).
    uint64_t timeout = 0;    // `timeout` never finished before the run ended.
    uint64_t late = 0;       // `late` were in flight when a -D window closed, finished after.
    uint64_t status[6] = {}; // `status` counts responses by class (index 1..5).
    uint64_t connection_errors = 0; // `connection_errors` counts connections lost or refused.
    Traffic traffic;
    std::vector<uint32_t> request_us; // `request_us`: durations of complete responses.
    std::vector<double> connect_us;   // `connect_us`: handshake times of connections.
    std::vector<double> ttfb_us;      // `ttfb_us`: connection start to first response byte.
    std::vector<double> client_rps;   // `client_rps`: requests per second of each client.
};

// The h2load-style report for a window of `seconds`.
void print_report(FILE* out, Stats& stats, double seconds);

} // namespace h3load
