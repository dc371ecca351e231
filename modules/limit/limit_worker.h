// The limit module's per-worker state (ModuleSpec::worker_start): a handle on each zone's
// shared table, the connections this worker counted at accept (so it can give them back when
// they close, and count them again after a crashed worker forced a reset), and the pacing
// state of connections whose responses have a bandwidth.
#pragma once

#include <ev.h>

#include <cstdint>
#include <deque>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/module.h"
#include "modules/limit/flat_map.h"
#include "modules/limit/limit_config.h"
#include "modules/limit/zone_table.h"

namespace wraith::limit {

// One connection's bandwidth allowance, shared by its paced responses (HTTP/2 and HTTP/3
// streams of one connection draw from it together).
struct Pace {
    uint64_t conn_id = 0;
    uint32_t slot = 0; // in LimitWorker::paces_
    uint32_t refs = 0;
    int64_t tokens = 0;  // bytes that may go now (negative: sent ahead, owed)
    int64_t last_ns = 0; // when tokens were last topped up
};

// A connection counted in a zone at accept.
struct Hold {
    uint32_t zone = 0;  // ZoneConfig::index
    uint32_t epoch = 0; // ZoneTable epoch it was counted under
    uint64_t key = 0;
};
constexpr size_t kMaxConnectionZones = 4; // per [server] limit list

class LimitWorker final : public ModuleWorker {
public:
    explicit LimitWorker(const WorkerContext& ctx);
    ~LimitWorker() override;

    // The shared table of zone `index` (invalid for bandwidth zones).
    const ZoneTable& table(size_t index) const { return tables_[index]; }
    const LimitConfig* config() const { return config_; }

    // Accept phase: what `conn` was counted in; forget() gives it back.
    void remember(const ConnectionInfo* conn, const Hold* holds, size_t count);
    void forget(const ConnectionInfo* conn);
    // After a reset_connections() in any zone (a worker died), counts this worker's live
    // connections again. Cheap when nothing changed: one atomic load per connection zone.
    void recount_if_reset();

    // Bandwidth: the allowance of connection `conn_id` (0: a private one; a new one starts
    // with `initial` bytes), and its release.
    Pace* acquire_pace(uint64_t conn_id, int64_t now_ns, int64_t initial);
    void release_pace(Pace* pace);

    // A zone threw out keys that still held state: logs it, at most once a minute across all
    // workers.
    void report_full(const ZoneConfig& zone) const;

    struct ev_loop* loop() const {
        return loop_;
    }

private:
    struct Record {
        uint8_t count = 0;
        Hold holds[kMaxConnectionZones];
    };
    static void on_tick(struct ev_loop* loop, ev_timer* w, int revents);

    struct ev_loop* loop_;
    std::shared_ptr<const Config> config_owner_;
    const LimitConfig* config_ = nullptr;
    std::vector<ZoneTable> tables_;                 // by zone index
    std::vector<uint32_t> epochs_;                  // by zone index: last epoch seen
    struct Free {
        void operator()(char* p) const { std::free(p); }
    };
    std::vector<std::unique_ptr<char, Free>> private_; // zones the master did not make (tests)
    FlatMap record_index_;                          // ConnectionInfo address -> records_
    std::vector<Record> records_;
    std::vector<uint32_t> free_records_;
    FlatMap pace_index_; // connection id -> paces_
    std::deque<Pace> paces_; // a deque: paced writers hold references across growth
    std::vector<uint32_t> free_paces_;
    ev_timer tick_; // recount after resets while no connection comes or goes
};

// ModuleSpec hooks.
std::unique_ptr<ModuleWorker> start_limit_worker(const WorkerContext& ctx);
void limit_worker_lost(const SharedZones& zones);
// ModuleSpec::export_metrics: every zone's decisions, evictions and refused connections.
void export_limit_metrics(const MetricsExport& ctx, std::string& out);

} // namespace wraith::limit
