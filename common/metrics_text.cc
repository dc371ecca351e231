#include "common/metrics_text.h"

#include <cstdio>
#include <ctime>

#include "common/status.h"

namespace wraith {

void status_json(const MetricsExport& ctx, std::string& out) {
    // The server started when its oldest worker still running did (as far as a reader knows).
    int64_t started = 0;
    if (const auto* table = static_cast<const WorkerStatus*>(
            ctx.zones.find(kStatusZoneName, sizeof(WorkerStatus) * kMaxWorkerStatus)))
        for (int i = 0; i < kMaxWorkerStatus; ++i)
            if (table[i].pid.load(std::memory_order_relaxed) != 0 &&
                table[i].state.load(std::memory_order_relaxed) != WorkerState::free &&
                (!started || table[i].started_unix < started))
                started = table[i].started_unix;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char head[200];
    snprintf(head, sizeof(head),
             "{\"server\":{\"version\":\"%s\",\"generation\":%u,\"now\":%lld.%03ld,"
             "\"started\":%lld}",
             WRAITH_VERSION, ctx.generation, static_cast<long long>(ts.tv_sec),
             ts.tv_nsec / 1000000, static_cast<long long>(started));
    out += head;
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.export_status)
            m.export_status(ctx, out);
    out += "}\n";
}

} // namespace wraith
