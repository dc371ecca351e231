// Per-worker upstream state: the balancer's position and the idle keep-alive connections of
// every upstream this worker proxied to. A worker is one process with one loop, so this is a
// process-wide singleton touched only from the loop; keyed by the UpstreamConfig of the
// worker's config generation (which outlives every request of that worker).
#pragma once

#include <ev.h>

#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "common/http.h"
#include "common/resolver.h"
#include "modules/proxy/balancer.h"
#include "modules/proxy/upstream_config.h"
#include "modules/proxy/upstream_metrics.h"
#include "modules/proxy/upstream_tls.h"
#include "modules/proxy/upstream_transport.h"

namespace wraith::proxy {

// The value of cookie `name` in the request's Cookie fields, or empty.
std::string_view cookie_value(const Request& req, std::string_view name);

class Health;

// This worker's view of its upstreams (part of ProxyWorker): balancing, connection counts,
// retry budgets, DNS answers, idle keep-alive connections and TLS sessions, per upstream.
class UpstreamPool {
public:
    // `metrics`: where DNS cache uses and lookups are counted (null: not counted).
    UpstreamPool(Health& health, UpstreamMetrics* metrics) : health_(health), metrics_(metrics) {}
    UpstreamPool(const UpstreamPool&) = delete;
    UpstreamPool& operator=(const UpstreamPool&) = delete;

    // A server of `up` for `req` by the upstream's balancing method, among those not down,
    // not ejected by passive health, below max_conns and not in `tried`; backups only when no
    // primary is left. -1: none is usable.
    int pick(const UpstreamConfig& up, const Request& req, const std::vector<bool>& tried);
    // The value of the sticky cookie that names server `server` of `up`.
    std::string_view sticky_id(const UpstreamConfig& up, size_t server);
    // Connections this worker has open to a server (least_conn, random_two, max_conns).
    void acquire(const UpstreamConfig& up, size_t server);
    void release(const UpstreamConfig& up, size_t server);
    // Retry budget: a request counts; a retry is allowed while retries stay within
    // up.retry_budget percent of the requests of the last 10 seconds (plus 3).
    void count_request(const UpstreamConfig& up);
    bool take_retry(const UpstreamConfig& up);
    // A server failed a request (`why`): passive health counts it (a lone server is never
    // taken out, as NGINX), and the ejection is logged.
    void note_failure(const UpstreamConfig& up, size_t server, const std::string& why);
    // Another server for a request that failed on `server` before anything reached the
    // client: only for idempotent methods (or retry_non_idempotent), while `*tries` is below
    // the upstream's retries and the retry budget allows; marks `server` tried, counts the
    // try and logs it. -1: no retry.
    int retry_server(const UpstreamConfig& up, const Request& req, size_t server,
                     std::vector<bool>& tried, uint32_t* tries, const std::string& why);
    // The addresses to connect to for server `server` of `up`: an IP literal's, or a host
    // name's last DNS answer (re-resolved in the background once its TTL passed, the old
    // answer used meanwhile). Returns the list when known; otherwise nullptr, and
    // `ready(error)` runs on the loop when the first answer (or failure, error not empty)
    // arrives. `*wait_id` identifies the wait for cancel_wait().
    using Ready = std::function<void(const std::string& error)>;
    const std::vector<sockaddr_storage>* addresses(struct ev_loop* loop, const UpstreamConfig& up,
                                                   size_t server, Ready ready, uint64_t* wait_id);
    void cancel_wait(const UpstreamConfig& up, size_t server, uint64_t wait_id);
    // An idle connection to server `server` of `up`, or null.
    std::unique_ptr<UpstreamTransport> take(const UpstreamConfig& up, size_t server);
    // Keeps `conn` for reuse (closes it if the pool for `up` is full or keepalive is 0).
    void put(struct ev_loop* loop, const UpstreamConfig& up, size_t server,
             std::unique_ptr<UpstreamTransport> conn);
    // The TLS session this worker last got from server `server` of `up` (HTTPS upstreams).
    TlsSessionSlot* tls_session(const UpstreamConfig& up, size_t server);

private:
    struct Idle {
        UpstreamPool* pool;
        const UpstreamConfig* up;
        size_t server;
        std::unique_ptr<UpstreamTransport> conn; // plain or TLS, with its SSL state
        struct ev_loop* loop;
        ev_io io;       // readable while idle: the upstream closed it or sent garbage
        ev_timer timer; // keepalive_timeout
        std::list<std::unique_ptr<Idle>>::iterator self;
    };
    struct Dns {
        std::vector<sockaddr_storage> addrs; // last good answer (Happy Eyeballs order)
        uint64_t expires_ms = 0;
        bool resolving = false;
        std::string error;                 // of the last failed lookup
        std::map<uint64_t, Ready> waiters; // requests waiting for a first answer
    };
    struct State {
        std::vector<Dns> dns; // per server (host names only)
        std::unique_ptr<Balancer> balancer;
        std::vector<uint32_t> active;             // open connections per server
        std::vector<uint64_t> health_keys;        // Health::key per server
        std::vector<ServerView> views;            // scratch for pick()
        std::vector<std::string> sticky_ids;      // per server: its sticky cookie value
        std::list<std::unique_ptr<Idle>> idle;    // oldest first
        std::vector<TlsSessionSlot> tls_sessions; // per server (HTTPS upstreams)
        uint64_t budget_window_ms = 0;
        uint32_t budget_requests = 0;
        uint32_t budget_retries = 0;
    };
    State& state(const UpstreamConfig& up);
    void drop(Idle* idle); // stops its watchers, closes and forgets it
    static void on_idle_event(struct ev_loop* loop, ev_io* w, int revents);
    static void on_idle_timeout(struct ev_loop* loop, ev_timer* w, int revents);

    Resolver& resolver(struct ev_loop* loop, const std::string& servers);
    void resolve(struct ev_loop* loop, const UpstreamConfig& up, size_t server);
    void count_dns(const UpstreamConfig& up, upstream_metrics::DnsUse use);

    Health& health_;           // the shared "proxy.health" zone
    UpstreamMetrics* metrics_; // this worker's way into "proxy.metrics"
    std::unordered_map<const UpstreamConfig*, State> states_;
    std::map<std::string, std::unique_ptr<Resolver>> resolvers_; // by resolver address list
    uint64_t next_wait_id_ = 0;
};

} // namespace wraith::proxy
