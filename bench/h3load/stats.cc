#include "bench/h3load/stats.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <string>

namespace h3load {

namespace {

// h2load's units: "850us", "12.34ms", "1.20s".
std::string format_duration(double us) {
    char text[32];
    if (us >= 1e6) {
        std::snprintf(text, sizeof(text), "%.2fs", us / 1e6);
    } else if (us >= 1e3) {
        std::snprintf(text, sizeof(text), "%.2fms", us / 1e3);
    } else {
        std::snprintf(text, sizeof(text), "%.0fus", us);
    }
    return text;
}

// h2load's binary units: "512", "1.50K", "42.29M".
std::string format_unit(double n) {
    char text[32];
    if (n >= 1024.0 * 1024 * 1024) {
        std::snprintf(text, sizeof(text), "%.2fG", n / (1024.0 * 1024 * 1024));
    } else if (n >= 1024.0 * 1024) {
        std::snprintf(text, sizeof(text), "%.2fM", n / (1024.0 * 1024));
    } else if (n >= 1024.0) {
        std::snprintf(text, sizeof(text), "%.2fK", n / 1024.0);
    } else {
        std::snprintf(text, sizeof(text), "%.0f", n);
    }
    return text;
}

struct Summary {
    double min = 0, max = 0, mean = 0, sd = 0, within_sd = 0;
};

template <typename T> Summary summarise(const std::vector<T>& values) {
    Summary s;
    if (values.empty()) {
        return s;
    }
    s.min = static_cast<double>(values[0]);
    s.max = s.min;
    double sum = 0;
    for (auto v : values) {
        auto d = static_cast<double>(v);
        s.min = std::min(s.min, d);
        s.max = std::max(s.max, d);
        sum += d;
    }
    s.mean = sum / static_cast<double>(values.size());
    double squares = 0;
    for (auto v : values) {
        double d = static_cast<double>(v) - s.mean;
        squares += d * d;
    }
    s.sd = values.size() > 1 ? std::sqrt(squares / static_cast<double>(values.size() - 1)) : 0;
    size_t within = 0;
    for (auto v : values) {
        if (std::fabs(static_cast<double>(v) - s.mean) <= s.sd) {
            ++within;
        }
    }
    s.within_sd = 100.0 * static_cast<double>(within) / static_cast<double>(values.size());
    return s;
}

void print_time_row(FILE* out, const char* label, const Summary& s) {
    std::fprintf(out, "%s %10s  %10s  %10s  %10s%9.2f%%\n", label, format_duration(s.min).c_str(),
                 format_duration(s.max).c_str(), format_duration(s.mean).c_str(),
                 format_duration(s.sd).c_str(), s.within_sd);
}

// Nearest rank, as bench/report.py computes it from h2load's request log.
double percentile_ms(const std::vector<uint32_t>& sorted, double q) {
    if (sorted.empty()) {
        return 0;
    }
    auto rank = static_cast<size_t>(std::ceil(static_cast<double>(sorted.size()) * q));
    size_t index = std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1);
    return sorted[index] / 1000.0;
}

} // namespace

void print_report(FILE* out, Stats& stats, double seconds) {
    if (seconds <= 0) {
        seconds = 1e-9;
    }
    const auto& t = stats.traffic;
    std::fprintf(out, "\nfinished in %s, %.2f req/s, %sB/s\n",
                 format_duration(seconds * 1e6).c_str(),
                 static_cast<double>(stats.succeeded) / seconds,
                 format_unit(static_cast<double>(t.total) / seconds).c_str());
    std::fprintf(out,
                 "requests: %" PRIu64 " total, %" PRIu64 " started, %" PRIu64 " done, %" PRIu64
                 " succeeded, %" PRIu64 " failed, %" PRIu64 " errored, %" PRIu64 " timeout\n",
                 stats.total, stats.started, stats.done, stats.succeeded, stats.failed,
                 stats.errored, stats.timeout);
    std::fprintf(
        out, "status codes: %" PRIu64 " 2xx, %" PRIu64 " 3xx, %" PRIu64 " 4xx, %" PRIu64 " 5xx\n",
        stats.status[2], stats.status[3], stats.status[4], stats.status[5]);
    double savings = t.headers_decoded > 0
                         ? 100.0 * (1.0 - static_cast<double>(t.headers) /
                                              static_cast<double>(t.headers_decoded))
                         : 0;
    std::fprintf(out,
                 "traffic: %sB (%" PRIu64 ") total, %sB (%" PRIu64
                 ") headers (space savings %.2f%%), %sB (%" PRIu64 ") data\n",
                 format_unit(static_cast<double>(t.total)).c_str(), t.total,
                 format_unit(static_cast<double>(t.headers)).c_str(), t.headers, savings,
                 format_unit(static_cast<double>(t.data)).c_str(), t.data);
    std::fprintf(out,
                 "                     min         max         mean         sd        +/- sd\n");
    print_time_row(out, "time for request:", summarise(stats.request_us));
    print_time_row(out, "time for connect:", summarise(stats.connect_us));
    print_time_row(out, "time to 1st byte:", summarise(stats.ttfb_us));
    auto rps = summarise(stats.client_rps);
    std::fprintf(out, "req/s           : %10.2f  %10.2f  %10.2f  %10.2f%9.2f%%\n", rps.min, rps.max,
                 rps.mean, rps.sd, rps.within_sd);
    std::sort(stats.request_us.begin(), stats.request_us.end());
    std::fprintf(out, "latency percentiles: p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms\n",
                 percentile_ms(stats.request_us, 0.50), percentile_ms(stats.request_us, 0.90),
                 percentile_ms(stats.request_us, 0.99), percentile_ms(stats.request_us, 0.999));
    if (stats.late > 0) {
        std::fprintf(out,
                     "late: %" PRIu64 " requests in flight when the window closed finished "
                     "after it (not counted)\n",
                     stats.late);
    }
    if (stats.connection_errors > 0) {
        std::fprintf(out, "connection errors: %" PRIu64 "\n", stats.connection_errors);
    }
}

} // namespace h3load
