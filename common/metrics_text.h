// Writing Prometheus's text exposition format (0.0.4) and OpenMetrics 1.0.0: the helpers the
// metrics module and modules that add series (ModuleSpec::export_metrics) share; and the live
// status object (ModuleSpec::export_status).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/module.h"

namespace wraith {

// A metric family's HELP and TYPE lines. OpenMetrics names a counter's family without the
// `_total` its samples carry.
inline void metric_header(std::string& out, bool openmetrics, std::string_view name,
                          std::string_view type, std::string_view help) {
    if (openmetrics && type == "counter" && name.ends_with("_total"))
        name.remove_suffix(6);
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// A label value, escaped for the inside of its double quotes.
inline void metric_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
}

// Microseconds as seconds without trailing zeros ("0.0005", "10"): histogram bounds and sums.
inline void metric_seconds(std::string& out, uint64_t us) {
    char buf[32];
    int n = std::snprintf(buf, sizeof(buf), "%llu.%06llu",
                          static_cast<unsigned long long>(us / 1000000),
                          static_cast<unsigned long long>(us % 1000000));
    while (n > 0 && buf[n - 1] == '0')
        --n;
    if (n > 0 && buf[n - 1] == '.')
        --n;
    out.append(buf, static_cast<size_t>(n));
}

// The live status object: `{"server":{...}` then every module's export_status members, `}`.
// Counters in it only grow; a reader computes rates from two of them (`server.now` apart).
void status_json(const MetricsExport& ctx, std::string& out);

} // namespace wraith
