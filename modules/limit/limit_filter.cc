#include "modules/limit/limit_filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <toml++/toml.h>

#include "common/log.h"
#include "modules/limit/limit_worker.h"
#include "modules/limit/paced_writer.h"

namespace wraith::limit {

namespace {

constexpr size_t kMaxRequestZones = 16;

// Whole seconds for Retry-After and the RateLimit fields: rounded up, at least 1.
uint64_t ceil_seconds(int64_t ns) {
    return ns <= 0 ? 1 : static_cast<uint64_t>((ns + 999999999) / 1000000000);
}

std::string_view arena_printf(Arena& arena, const char* fmt, auto... args) {
    char buf[160];
    int n = std::snprintf(buf, sizeof(buf), fmt, args...);
    if (n <= 0)
        return {};
    return arena.copy({buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1)});
}

// The peer's address as bytes: 4 for IPv4 (IPv4-mapped IPv6 included, so a dual-stack
// listener counts a client once), 16 for IPv6.
std::string_view address_bytes(const SocketAddress& a) {
    if (a.family() == AF_INET)
        return {reinterpret_cast<const char*>(&a.v4.sin_addr), 4};
    if (a.family() == AF_INET6) {
        if (IN6_IS_ADDR_V4MAPPED(&a.v6.sin6_addr))
            return {reinterpret_cast<const char*>(&a.v6.sin6_addr) + 12, 4};
        return {reinterpret_cast<const char*>(&a.v6.sin6_addr), 16};
    }
    return {};
}

const char* address_text(const SocketAddress& a, char* buf, size_t len) {
    const void* src = a.family() == AF_INET6 ? static_cast<const void*>(&a.v6.sin6_addr)
                                             : static_cast<const void*>(&a.v4.sin_addr);
    if (!inet_ntop(a.family(), src, buf, static_cast<socklen_t>(len)))
        std::snprintf(buf, len, "?");
    return buf;
}

// Adds the refusal's fields to whatever response send_error() makes (the site's error page or
// the built-in one).
class WithFields final : public ResponseWriter {
public:
    WithFields(ResponseWriter& next, const Header* fields, size_t count)
        : next_(next), fields_(fields), count_(count) {}
    void send_informational(int status, const Headers& h) override {
        next_.send_informational(status, h);
    }
    void send_headers(ResponseHead& head, bool end_stream) override {
        for (size_t i = 0; i < count_; ++i)
            head.headers.add(fields_[i].name, fields_[i].value);
        next_.send_headers(head, end_stream);
    }
    Result send_body(std::string_view d, bool e) override { return next_.send_body(d, e); }
    Result send_shared_body(std::string_view d, bool e) override {
        return next_.send_shared_body(d, e);
    }
    Result send_file(int fd, off_t o, size_t n, bool e) override {
        return next_.send_file(fd, o, n, e);
    }
    Result send_trailers(const Headers& t) override { return next_.send_trailers(t); }
    void on_writable(Callback cb) override { next_.on_writable(std::move(cb)); }
    void on_abort(Callback cb) override { next_.on_abort(std::move(cb)); }
    void reset() override { next_.reset(); }
    bool headers_sent() const override { return next_.headers_sent(); }
    uint64_t body_bytes_sent() const override { return next_.body_bytes_sent(); }

private:
    ResponseWriter& next_;
    const Header* fields_;
    size_t count_;
};

// A delayed request's wait: a timer in the request's arena; the loop runs on meanwhile.
struct DelayWait {
    ev_timer timer;
    struct ev_loop* loop;
    AccessResume* resume;
    ~DelayWait() { ev_timer_stop(loop, &timer); }
    static void fire(struct ev_loop*, ev_timer* w, int) {
        static_cast<DelayWait*>(w->data)->resume->resume(AccessVerdict::next);
    }
};

// The access-log note: "api:reject", "api:delay=120ms", "api:dry_run", comma-separated when
// several zones decided.
class Note {
public:
    void add(std::string_view zone, std::string_view what, int64_t ms = -1) {
        int n = std::snprintf(buf_ + len_, sizeof(buf_) - len_, "%s%.*s:%.*s", len_ ? "," : "",
                              static_cast<int>(zone.size()), zone.data(),
                              static_cast<int>(what.size()), what.data());
        if (n > 0)
            len_ = std::min(sizeof(buf_) - 1, len_ + static_cast<size_t>(n));
        if (ms >= 0) {
            n = std::snprintf(buf_ + len_, sizeof(buf_) - len_, "=%lldms",
                              static_cast<long long>(ms));
            if (n > 0)
                len_ = std::min(sizeof(buf_) - 1, len_ + static_cast<size_t>(n));
        }
    }
    void attach(Request& req) const {
        if (len_)
            add_log_note(req, "limit", req.arena->copy({buf_, len_}));
    }

private:
    char buf_[256];
    size_t len_ = 0;
};

} // namespace

LimitFilter::LimitFilter(std::vector<std::shared_ptr<const ZoneConfig>> zones,
                         size_t module_index)
    : zones_(std::move(zones)), module_index_(module_index) {
    for (const auto& z : zones_) {
        switch (z->kind) {
        case Kind::requests:
            requests_.push_back(z.get());
            phases_ |= phase_bit(Phase::access);
            break;
        case Kind::connections:
            connections_.push_back(z.get());
            phases_ |= phase_bit(Phase::accept);
            break;
        case Kind::bandwidth:
            if (!bandwidth_ || z->bandwidth < bandwidth_->bandwidth)
                bandwidth_ = z.get();
            phases_ |= phase_bit(Phase::response);
            break;
        }
    }
}

LimitWorker* LimitFilter::worker(ModuleWorkers* modules) const {
    return modules ? modules->get<LimitWorker>(module_index_) : nullptr;
}

// ---- accept: connections -------------------------------------------------------------------

bool LimitFilter::accept(AcceptContext& ctx) const {
    LimitWorker* w = worker(ctx.modules);
    if (!w)
        return true;
    w->recount_if_reset();
    const int64_t now = monotonic_ns();
    Hold holds[kMaxConnectionZones];
    size_t held = 0;
    for (const ZoneConfig* z : connections_) {
        const ZoneTable& t = w->table(z->index);
        if (!t.valid())
            continue;
        const uint64_t key =
            t.hash(z->key_constant ? std::string_view(z->key_text) : address_bytes(ctx.conn.peer));
        t.prefetch(key);
        ZoneTable::ConnVerdict v = t.open_connection(
            key, now, z->connections, z->has_connection_rate ? &z->connection_rate.gcra : nullptr);
        if (v.result == ZoneTable::ConnResult::ok) {
            t.counters().passed.fetch_add(1, std::memory_order_relaxed);
            holds[held++] = Hold{static_cast<uint32_t>(z->index), v.epoch, key};
            continue;
        }
        // Refused: what the earlier zones counted goes back.
        for (size_t i = 0; i < held; ++i)
            w->table(holds[i].zone).close_connection(holds[i].key, holds[i].epoch);
        ZoneCounters& c = t.counters();
        c.rejected.fetch_add(1, std::memory_order_relaxed);
        const char* why = "too many connections";
        switch (v.result) {
        case ZoneTable::ConnResult::too_many:
            c.refused_connections.fetch_add(1, std::memory_order_relaxed);
            break;
        case ZoneTable::ConnResult::too_fast:
            c.refused_rate.fetch_add(1, std::memory_order_relaxed);
            why = "new connections too fast";
            break;
        default:
            c.refused_full.fetch_add(1, std::memory_order_relaxed);
            why = "zone full of connected clients";
            w->report_full(*z);
            break;
        }
        char addr[INET6_ADDRSTRLEN];
        ErrorLog::limited(LogLevel::warn, "limit \"%s\": refused a connection from %s (%s)",
                          z->name.c_str(), address_text(ctx.conn.peer, addr, sizeof(addr)), why);
        ctx.refusal_status = z->status;
        ctx.retry_after_s = static_cast<uint32_t>(
            v.result == ZoneTable::ConnResult::too_fast ? ceil_seconds(v.retry_ns) : 1);
        return false;
    }
    w->remember(&ctx.conn, holds, held);
    return true;
}

void LimitFilter::connection_closed(const ConnectionInfo& conn, ModuleWorkers* modules) const {
    if (LimitWorker* w = worker(modules))
        w->forget(&conn);
}

// ---- access: request rates -----------------------------------------------------------------

bool LimitFilter::request_key(const ZoneConfig& z, const ZoneTable& t, const Request& req,
                              uint64_t* out) const {
    std::string_view key = z.key.expand(req, *req.arena);
    if (!key.empty()) {
        *out = t.hash(key);
        return true;
    }
    // An empty key (no X-API-Key field, say) must not put every such client in one bucket:
    // each falls back to its own address, marked so it never meets a key of that text.
    std::string_view ip = client_ip_of(req);
    if (ip.empty())
        return false;
    char buf[80] = "\x01";
    const size_t n = std::min(ip.size(), sizeof(buf) - 1);
    std::memcpy(buf + 1, ip.data(), n);
    *out = t.hash({buf, n + 1});
    return true;
}

void LimitFilter::answer(Request& req, ResponseWriter& out, const ZoneConfig& z,
                         int64_t retry_ns) const {
    const uint64_t retry = ceil_seconds(retry_ns);
    Header fields[3];
    size_t count = 0;
    fields[count++] = {"retry-after", arena_printf(*req.arena, "%llu", (unsigned long long)retry)};
    if (z.headers) {
        // draft-ietf-httpapi-ratelimit-headers: the policy (quota q per window w seconds) and
        // what is left of it now (r) and when it resets (t).
        fields[count++] = {"ratelimit-policy",
                           arena_printf(*req.arena, "\"%s\";q=%llu;w=%llu", z.name.c_str(),
                                        (unsigned long long)z.rate.count,
                                        (unsigned long long)z.rate.period_s)};
        fields[count++] = {"ratelimit", arena_printf(*req.arena, "\"%s\";r=0;t=%llu",
                                                     z.name.c_str(), (unsigned long long)retry)};
    }
    ErrorLog::limited(LogLevel::warn,
                      "limit \"%s\": rejected a request, retry in %llus, client: %.*s, request: "
                      "\"%.*s %.*s\"",
                      z.name.c_str(), (unsigned long long)retry,
                      static_cast<int>(client_ip_of(req).size()), client_ip_of(req).data(),
                      static_cast<int>(req.method.size()), req.method.data(),
                      static_cast<int>(std::min<size_t>(req.target.size(), 256)),
                      req.target.data());
    if (z.body.empty()) {
        auto* with = req.arena->make<WithFields>(out, fields, count);
        // send_error keeps no pointer to `fields` past this call: headers are sent at once.
        send_error(req, *with, z.status);
        return;
    }
    ResponseHead head;
    head.status = z.status;
    for (size_t i = 0; i < count; ++i)
        head.headers.add(fields[i].name, fields[i].value);
    head.headers.add("content-type", z.content_type);
    head.content_length = static_cast<int64_t>(z.body.size());
    const bool head_only = req.method_id == Method::head;
    out.send_headers(head, head_only);
    if (!head_only)
        out.send_body(z.body, true);
}

AccessVerdict LimitFilter::access(Request& req, ResponseWriter& out,
                                  AccessResume& resume) const {
    LimitWorker* w = worker(req.modules);
    if (!w)
        return AccessVerdict::next;
    const int64_t now = monotonic_ns();
    Note note;
    int64_t delay_ns = 0;
    // Zones this request used up a request of, to give back if a later zone rejects it.
    struct Used {
        const ZoneConfig* zone;
        uint64_t key;
    } used[kMaxRequestZones];
    size_t used_count = 0;

    for (const ZoneConfig* z : requests_) {
        const ZoneTable& t = w->table(z->index);
        uint64_t key;
        if (!t.valid() || !request_key(*z, t, req, &key))
            continue;
        t.prefetch(key); // its slot loads while the shard's lock is taken
        bool evicted_active = false;
        RateVerdict v = t.check_rate(key, now, z->rate.gcra, true, &evicted_active);
        if (evicted_active)
            w->report_full(*z);
        ZoneCounters& c = t.counters();
        if (v.allowed) {
            used[used_count++] = {z, key};
            int64_t wait = 0;
            if (z->mode == Mode::delay)
                wait = v.ahead_ns - static_cast<int64_t>(z->delay_after) * z->rate.gcra.interval_ns;
            if (wait > 0) {
                c.delayed.fetch_add(1, std::memory_order_relaxed);
                note.add(z->name, "delay", (wait + 999999) / 1000000);
                delay_ns = std::max(delay_ns, wait);
            } else {
                c.passed.fetch_add(1, std::memory_order_relaxed);
            }
            continue;
        }
        if (z->mode == Mode::dry_run) {
            c.dry_run.fetch_add(1, std::memory_order_relaxed);
            note.add(z->name, "dry_run");
            continue;
        }
        c.rejected.fetch_add(1, std::memory_order_relaxed);
        for (size_t i = 0; i < used_count; ++i)
            w->table(used[i].zone->index).refund(used[i].key, used[i].zone->rate.gcra.interval_ns);
        note.add(z->name, "reject");
        note.attach(req);
        answer(req, out, *z, v.retry_ns);
        return AccessVerdict::answered;
    }
    note.attach(req);
    if (delay_ns <= 0 || !req.loop)
        return AccessVerdict::next;
    auto* wait = req.arena->make<DelayWait>();
    wait->loop = req.loop;
    wait->resume = &resume;
    ev_timer_init(&wait->timer, DelayWait::fire, static_cast<double>(delay_ns) / 1e9, 0.);
    wait->timer.data = wait;
    ev_timer_start(req.loop, &wait->timer);
    resume.on_cancel([wait] { ev_timer_stop(wait->loop, &wait->timer); });
    return AccessVerdict::paused;
}

// ---- response: bandwidth -------------------------------------------------------------------

ResponseWriter* LimitFilter::wrap(Request& req, ResponseWriter& next) const {
    LimitWorker* w = worker(req.modules);
    if (!bandwidth_ || !w || !req.loop || !req.upgrade.empty())
        return &next; // a tunnel's bytes are not a download
    PacedWriter* paced;
    const auto rate = bandwidth_->bandwidth;
    const int64_t first = std::clamp<int64_t>(static_cast<int64_t>(rate) / 10, 1024, 256 * 1024);
    Pace* pace = w->acquire_pace(req.conn ? req.conn->id : 0, monotonic_ns(), first);
    paced = req.arena->make<PacedWriter>(next, *w, *pace, rate, bandwidth_->bandwidth_after,
                                         req.loop);
    return paced;
}

// ---- config --------------------------------------------------------------------------------

std::unique_ptr<Filter> build_limit_filter(TableReader& options, BuildContext& ctx) {
    Diagnostics& diag = options.diag();
    const std::string where = ctx.scope == Scope::server ? "server.limit"
                              : ctx.scope == Scope::site ? "site.limit"
                                                         : "site.route.limit";
    const toml::node* value = ctx.value;
    std::vector<const toml::node*> names;
    if (value && value->is_array()) {
        for (const toml::node& n : *value->as_array())
            names.push_back(&n);
        if (names.empty()) {
            diag.error(value, where + ": an empty list; `limit = false` turns inherited limits "
                                      "off");
            return nullptr;
        }
    } else if (value && value->is_string()) {
        names.push_back(value);
    } else {
        if (value && value->is_table())
            for (const auto& [k, v] : *value->as_table())
                options.node(k.str()); // reported once, below, not as unknown keys
        diag.error(value, where + ": expected a list of [limit.NAME] zones, like limit = "
                                  "[\"api\"], got " +
                              (value ? describe_value(*value) : std::string("nothing")));
        return nullptr;
    }

    const LimitConfig* lc = limit_config(ctx.config);
    const size_t errors_before = diag.count();
    std::vector<std::shared_ptr<const ZoneConfig>> zones;
    size_t connection_zones = 0, request_zones = 0;
    for (const toml::node* n : names) {
        const auto* s = n->as_string();
        if (!s) {
            diag.error(n, where + ": expected a zone name, got " + describe_value(*n));
            continue;
        }
        const std::string& name = s->get();
        auto it = lc ? lc->zones.find(name) : decltype(lc->zones.end()){};
        if (!lc || it == lc->zones.end()) {
            std::string known;
            if (lc)
                for (const auto& [k, z] : lc->zones)
                    known += (known.empty() ? "" : ", ") + in_quotes(k);
            diag.error(n, where + ": unknown zone " + in_quotes(name) + " (define it with [limit." +
                              name + "]" + (known.empty() ? "" : "; defined: " + known) + ")");
            continue;
        }
        if (std::any_of(zones.begin(), zones.end(),
                        [&](const auto& z) { return z->name == name; })) {
            diag.error(n, where + ": zone " + in_quotes(name) + " is listed twice");
            continue;
        }
        const ZoneConfig& z = *it->second;
        if (z.kind == Kind::connections) {
            if (ctx.scope != Scope::server) {
                diag.error(n, where + ": " + in_quotes(name) +
                                  " limits connections, which are counted at accept, before "
                                  "TLS and before any site is known: list it in [server] limit");
                continue;
            }
            if (++connection_zones > kMaxConnectionZones) {
                diag.error(n, where + ": at most " + std::to_string(kMaxConnectionZones) +
                                  " connection zones");
                continue;
            }
        }
        if (z.kind == Kind::requests && ++request_zones > kMaxRequestZones) {
            diag.error(n, where + ": at most " + std::to_string(kMaxRequestZones) +
                              " request zones");
            continue;
        }
        zones.push_back(it->second);
    }
    if (diag.count() != errors_before)
        return nullptr;
    return std::make_unique<LimitFilter>(std::move(zones), ctx.module_index);
}

} // namespace wraith::limit
