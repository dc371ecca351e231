#include "modules/limit/limit_worker.h"

#include <algorithm>
#include <cstdlib>

#include "common/log.h"
#include "common/metrics_text.h"

namespace wraith::limit {

namespace {
constexpr int64_t kFullLogInterval = int64_t(60) * 1000000000;
}

LimitWorker::LimitWorker(const WorkerContext& ctx)
    : loop_(ctx.loop), config_owner_(ctx.config), config_(limit_config(*ctx.config)) {
    const size_t n = config_ ? config_->by_index.size() : 0;
    tables_.resize(n);
    epochs_.resize(n);
    bool counts_connections = false;
    for (size_t i = 0; i < n; ++i) {
        const ZoneConfig& z = *config_->by_index[i];
        if (z.kind == Kind::bandwidth)
            continue;
        counts_connections |= z.kind == Kind::connections;
        void* mem = ctx.zones ? ctx.zones->find(z.zone_name(), z.size) : nullptr;
        if (!mem) {
            // The master declares every zone (declare_limit_zones); a worker without them is
            // a unit test: a table of its own still limits within the process.
            const size_t bytes = (z.size + 63) & ~size_t(63); // shards are 64-byte aligned
            auto* raw = static_cast<char*>(std::aligned_alloc(64, bytes));
            std::fill(raw, raw + bytes, 0);
            private_.emplace_back(raw);
            ZoneTable::init(raw, z.size);
            mem = raw;
        }
        tables_[i] = ZoneTable(mem, z.size);
        if (!tables_[i].valid())
            WLOG_ERROR("limit \"%s\": the shared zone holds no table; the zone is not enforced",
                       z.name.c_str());
        else
            epochs_[i] = tables_[i].epoch();
    }
    ev_timer_init(&tick_, on_tick, 1.0, 1.0);
    tick_.data = this;
    if (counts_connections && loop_) {
        ev_timer_start(loop_, &tick_);
        ev_unref(loop_); // the tick alone does not keep the worker alive
    }
}

LimitWorker::~LimitWorker() {
    if (ev_is_active(&tick_)) {
        ev_ref(loop_);
        ev_timer_stop(loop_, &tick_);
    }
}

void LimitWorker::on_tick(struct ev_loop*, ev_timer* w, int) {
    static_cast<LimitWorker*>(w->data)->recount_if_reset();
}

void LimitWorker::remember(const ConnectionInfo* conn, const Hold* holds, size_t count) {
    if (count == 0)
        return;
    uint32_t slot;
    if (!free_records_.empty()) {
        slot = free_records_.back();
        free_records_.pop_back();
    } else {
        slot = static_cast<uint32_t>(records_.size());
        records_.emplace_back();
    }
    Record& r = records_[slot];
    r.count = static_cast<uint8_t>(count);
    std::copy(holds, holds + count, r.holds);
    record_index_.insert(reinterpret_cast<uintptr_t>(conn), slot);
}

void LimitWorker::forget(const ConnectionInfo* conn) {
    const uint64_t key = reinterpret_cast<uintptr_t>(conn);
    uint32_t slot = record_index_.find(key);
    if (slot == FlatMap::kMissing)
        return;
    recount_if_reset(); // a close under a new epoch must find itself counted
    Record& r = records_[slot];
    for (size_t i = 0; i < r.count; ++i) {
        const Hold& h = r.holds[i];
        if (tables_[h.zone].valid())
            tables_[h.zone].close_connection(h.key, h.epoch);
    }
    r.count = 0;
    record_index_.erase(key);
    free_records_.push_back(slot);
}

void LimitWorker::recount_if_reset() {
    bool changed = false;
    for (size_t z = 0; z < tables_.size(); ++z) {
        if (!tables_[z].valid())
            continue;
        uint32_t e = tables_[z].epoch();
        if (e != epochs_[z]) {
            epochs_[z] = e;
            changed = true;
        }
    }
    if (!changed)
        return;
    record_index_.for_each([&](uint64_t, uint32_t slot) {
        Record& r = records_[slot];
        for (size_t i = 0; i < r.count; ++i) {
            Hold& h = r.holds[i];
            if (tables_[h.zone].valid() && h.epoch != epochs_[h.zone])
                h.epoch = tables_[h.zone].recount_connection(h.key, h.epoch);
        }
    });
}

Pace* LimitWorker::acquire_pace(uint64_t conn_id, int64_t now_ns, int64_t initial) {
    uint32_t slot = conn_id ? pace_index_.find(conn_id) : FlatMap::kMissing;
    if (slot == FlatMap::kMissing) {
        if (!free_paces_.empty()) {
            slot = free_paces_.back();
            free_paces_.pop_back();
        } else {
            slot = static_cast<uint32_t>(paces_.size());
            paces_.emplace_back();
        }
        paces_[slot] = Pace{conn_id, slot, 0, initial, now_ns};
        if (conn_id)
            pace_index_.insert(conn_id, slot);
    }
    ++paces_[slot].refs;
    return &paces_[slot];
}

void LimitWorker::release_pace(Pace* pace) {
    if (--pace->refs != 0)
        return;
    if (pace->conn_id)
        pace_index_.erase(pace->conn_id);
    free_paces_.push_back(pace->slot);
}

void LimitWorker::report_full(const ZoneConfig& zone) const {
    const ZoneTable& t = tables_[zone.index];
    if (!t.claim_log(monotonic_ns(), kFullLogInterval))
        return;
    WLOG_WARN("limit \"%s\": zone is full (%zu keys); keys that still held state were dropped "
              "to make room (%llu so far), so their clients start afresh: raise limit.%s.size",
              zone.name.c_str(), t.capacity(),
              static_cast<unsigned long long>(t.counters().evicted_active.load()),
              zone.name.c_str());
}

std::unique_ptr<ModuleWorker> start_limit_worker(const WorkerContext& ctx) {
    const LimitConfig* lc = limit_config(*ctx.config);
    if (!lc || lc->by_index.empty())
        return nullptr;
    return std::make_unique<LimitWorker>(ctx);
}

void limit_worker_lost(const SharedZones& zones) {
    // Which zones are ours: those our tables made (their names start with "limit.").
    for (const SharedZone& z : zones.all()) {
        if (z.name.rfind("limit.", 0) != 0)
            continue;
        ZoneTable t(z.mem, z.size);
        if (t.valid())
            t.reset_connections();
    }
}

void export_limit_metrics(const MetricsExport& ctx, std::string& out) {
    const LimitConfig* lc = limit_config(ctx.config);
    if (!lc)
        return;
    struct Zone {
        const ZoneConfig* config;
        const ZoneCounters* counters;
    };
    std::vector<Zone> zones;
    for (const ZoneConfig* z : lc->by_index) {
        if (z->kind == Kind::bandwidth)
            continue;
        ZoneTable t(ctx.zones.find(z->zone_name(), z->size), z->size);
        if (t.valid())
            zones.push_back({z, &t.counters()});
    }
    if (zones.empty())
        return;
    auto series = [&](std::string_view name, std::string_view label, std::string_view value,
                      const Zone& z, uint64_t n) {
        out.append(name).append("{zone=\"");
        metric_label_value(out, z.config->name);
        out.append("\",").append(label).append("=\"").append(value).append("\"} ");
        out += std::to_string(n);
        out += '\n';
    };
    auto get = [](const std::atomic<uint64_t>& n) { return n.load(std::memory_order_relaxed); };
    const bool om = ctx.openmetrics;
    metric_header(out, om, "wraith_limit_requests_total", "counter",
                  "Requests a [limit.NAME] zone decided on: passed, delayed (passed after a "
                  "wait), rejected, or dry_run (would have been rejected).");
    for (const Zone& z : zones) {
        if (z.config->kind != Kind::requests)
            continue;
        series("wraith_limit_requests_total", "decision", "passed", z, get(z.counters->passed));
        series("wraith_limit_requests_total", "decision", "delayed", z, get(z.counters->delayed));
        series("wraith_limit_requests_total", "decision", "rejected", z, get(z.counters->rejected));
        series("wraith_limit_requests_total", "decision", "dry_run", z, get(z.counters->dry_run));
    }
    metric_header(out, om, "wraith_limit_connections_refused_total", "counter",
                  "Connections a [limit.NAME] zone refused at accept, by reason: too many open "
                  "for the key, new ones too fast, or no entry free for a new key.");
    for (const Zone& z : zones) {
        if (z.config->kind != Kind::connections)
            continue;
        series("wraith_limit_connections_refused_total", "reason", "connections", z,
               z.counters->refused_connections);
        series("wraith_limit_connections_refused_total", "reason", "rate", z,
               z.counters->refused_rate);
        series("wraith_limit_connections_refused_total", "reason", "full", z,
               z.counters->refused_full);
    }
    metric_header(out, om, "wraith_limit_evictions_total", "counter",
                  "Keys a full [limit.NAME] zone reused, by whether the key still held state "
                  "(active: the zone is too small).");
    for (const Zone& z : zones) {
        // `evicted` counts every reused key, `evicted_active` those that still held state.
        const uint64_t all = get(z.counters->evicted), active = get(z.counters->evicted_active);
        series("wraith_limit_evictions_total", "state", "idle", z, all - std::min(all, active));
        series("wraith_limit_evictions_total", "state", "active", z, active);
    }
}

} // namespace wraith::limit
