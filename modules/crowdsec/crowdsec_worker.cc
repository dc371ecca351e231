// The pull: GET <url>/v1/decisions/stream?startup=true once (the full set), then startup=false
// every `interval` (what changed since this bouncer's last pull), with the X-Api-Key header,
// on worker slot 0's loop through the shared non-blocking HttpFetch. A failed pull keeps the
// decisions in force and retries after 0.5 s, doubling up to `interval`; the error log hears
// of each change of the Local API's state (up, down, key refused) once, whichever worker or
// generation saw it, because the state lives in the zone.
#include "modules/crowdsec/crowdsec_worker.h"

#include <algorithm>

#include "common/http_fetch.h"
#include "common/log.h"
#include "common/resolver.h"
#include "modules/crowdsec/lapi_stream.h"

namespace wraith::crowdsec {

class Puller {
public:
    Puller(struct ev_loop* loop, const CrowdsecConfig& cc, DecisionTable& table)
        : loop_(loop), cc_(cc), table_(table),
          resolver_(loop, "", static_cast<int>(std::min(cc.timeout, 5.0) * 1000)) {
        ev_timer_init(&timer_, on_timer, 0., 0.);
        timer_.data = this;
        // The first pull at once; the timer keeps running (ev_timer_again) and is not counted
        // as keeping the loop alive.
        timer_.repeat = cc_.interval;
        ev_timer_set(&timer_, 0., cc_.interval);
        ev_timer_start(loop_, &timer_);
        ev_unref(loop_);
    }

    ~Puller() { stop(); }

    void stop() {
        fetch_.reset();
        if (ev_is_active(&timer_)) {
            ev_ref(loop_);
            ev_timer_stop(loop_, &timer_);
        }
    }

private:
    static void on_timer(struct ev_loop*, ev_timer* w, int) {
        static_cast<Puller*>(w->data)->pull();
    }

    void pull() {
        if (fetch_)
            return; // the previous pull is still under way
        HttpFetch::Options o;
        o.timeout = Duration(static_cast<int64_t>(cc_.timeout * 1000));
        o.max_answer = cc_.max_answer;
        o.headers.emplace_back("X-Api-Key", cc_.api_key);
        const bool startup = startup_;
        const std::string url = cc_.stream_url + (startup ? "&startup=true" : "&startup=false");
        fetch_ = std::make_unique<HttpFetch>(
            loop_, resolver_, url, std::move(o),
            [this, startup](HttpFetch::Result r) { fetched(std::move(r), startup); });
    }

    void next_in(double seconds) {
        timer_.repeat = seconds;
        ev_timer_again(loop_, &timer_);
    }

    void fetched(HttpFetch::Result r, bool startup) {
        std::unique_ptr<HttpFetch> done = std::move(fetch_); // freed when this returns
        ZoneHeader& h = table_.header();
        if (!r.ok) {
            h.pulls_failed.fetch_add(1, std::memory_order_relaxed);
            const bool refused = r.status == 401 || r.status == 403;
            return failed(refused ? LapiState::refused : LapiState::down,
                          r.status ? "it answered " + std::to_string(r.status) : r.problem);
        }
        StreamAnswer answer;
        std::string error;
        StreamLimits limits;
        limits.max_bytes = cc_.max_answer;
        limits.max_decisions = size_t{cc_.max_decisions} * 4;
        if (!parse_stream(r.body, answer, error, limits)) {
            h.pulls_failed.fetch_add(1, std::memory_order_relaxed);
            return failed(LapiState::down, error);
        }
        apply(answer, startup);
        h.pulls_ok.fetch_add(1, std::memory_order_relaxed);
        backoff_ = 0;
        if (h.lapi_state.exchange(static_cast<uint32_t>(LapiState::up)) !=
            static_cast<uint32_t>(LapiState::up))
            ErrorLog::write(LogLevel::info,
                            "crowdsec: pulled the decisions of the Local API at %s: %zu in force",
                            cc_.url.c_str(), table_.size());
        next_in(startup_ ? 0.001 : cc_.interval); // a writer that found the zone broken re-pulls
    }

    void apply(const StreamAnswer& a, bool startup) {
        ZoneHeader& h = table_.header();
        const int64_t now = now_ms();
        if (!table_.lock())
            startup_ = true; // cleared: the next pull brings the full set again
        else if (startup)
            startup_ = false;
        uint32_t epoch = h.epoch;
        if (startup) {
            epoch = ++h.epoch;
            if (epoch == 0)
                epoch = h.epoch = 1;
        }
        for (uint64_t id : a.deleted)
            table_.remove(id);
        size_t dropped = 0;
        for (const StreamDecision& d : a.added) {
            if (d.duration_ms <= 0)
                continue;
            if (!table_.upsert(d.net, d.id, d.remedy, d.origin, now + d.duration_ms, epoch))
                ++dropped;
        }
        table_.sweep(now, startup ? epoch : 0);
        table_.recount(now);
        h.synced.store(1, std::memory_order_release);
        table_.unlock();
        h.ignored_scope.fetch_add(a.ignored, std::memory_order_relaxed);
        if (dropped) {
            h.dropped_full.fetch_add(dropped, std::memory_order_relaxed);
            ErrorLog::limited(LogLevel::warn,
                              "crowdsec: %zu decisions did not fit (max_decisions = %u); raise "
                              "max_decisions",
                              dropped, cc_.max_decisions);
        }
    }

    void failed(LapiState state, const std::string& why) {
        ZoneHeader& h = table_.header();
        const uint32_t before = h.lapi_state.exchange(static_cast<uint32_t>(state));
        if (before != static_cast<uint32_t>(state)) {
            const bool synced = h.synced.load(std::memory_order_relaxed);
            const char* keep = synced ? "the last known decisions stay in force"
                               : cc_.fallback_block
                                   ? "no decisions yet: fallback = \"block\" refuses every client"
                                   : "no decisions yet: fallback = \"pass\" lets every client in";
            if (state == LapiState::refused)
                ErrorLog::write(LogLevel::error,
                                "crowdsec: the Local API at %s refused the bouncer's API key (%s): "
                                "check api_key_file (the key of `cscli bouncers add`); %s",
                                cc_.url.c_str(), why.c_str(), keep);
            else
                ErrorLog::write(LogLevel::warn,
                                "crowdsec: cannot pull decisions from the Local API at %s: %s; %s; "
                                "retrying",
                                cc_.url.c_str(), why.c_str(), keep);
        }
        backoff_ = backoff_ == 0 ? 0.5 : backoff_ * 2;
        backoff_ = std::min(backoff_, cc_.interval);
        next_in(backoff_);
    }

    struct ev_loop* loop_;
    const CrowdsecConfig& cc_;
    DecisionTable& table_;
    Resolver resolver_;
    ev_timer timer_{};
    std::unique_ptr<HttpFetch> fetch_;
    bool startup_ = true; // the next pull asks for the full set
    double backoff_ = 0;  // seconds; 0 after a success
};

CrowdsecWorker::CrowdsecWorker(const WorkerContext& ctx, const CrowdsecConfig& cc)
    : config_(ctx.config), cc_(cc) {
    if (ctx.zones) {
        for (const SharedZone& z : ctx.zones->all())
            if (z.name == kZoneName)
                table_ = DecisionTable(z.mem, z.size);
    }
    shard_ = table_.valid()
                 ? &table_.header().shards[static_cast<unsigned>(ctx.slot) % kCounterShards]
                 : &private_shard_;
    if (ctx.slot == 0 && table_.valid())
        puller_ = std::make_unique<Puller>(ctx.loop, cc_, table_);
}

CrowdsecWorker::~CrowdsecWorker() = default;

void CrowdsecWorker::drain() {
    if (puller_)
        puller_->stop(); // the next generation's slot 0 pulls now
}

bool CrowdsecWorker::refuses(const IpAddress& ip, bool accept) {
    shard_->lookups.fetch_add(1, std::memory_order_relaxed);
    bool refuse;
    if (!table_.valid() || !table_.header().synced.load(std::memory_order_acquire)) {
        refuse = cc_.fallback_block;
    } else {
        const Remedy r = table_.lookup(ip, now_ms());
        refuse = r == Remedy::ban || (r != Remedy::none && cc_.unknown_ban);
    }
    if (refuse)
        (accept ? shard_->refused_accept : shard_->blocked).fetch_add(1, std::memory_order_relaxed);
    return refuse;
}

} // namespace wraith::crowdsec
