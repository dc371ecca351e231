// Per-worker upstream state: the balancer's position and the idle keep-alive connections of
// every upstream this worker proxied to. A worker is one process with one loop, so this is a
// process-wide singleton touched only from the loop; keyed by the UpstreamConfig of the
// worker's config generation (which outlives every request of that worker).
#pragma once

#include <ev.h>

#include <cstddef>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "common/http.h"
#include "modules/proxy/balancer.h"

namespace wraith::proxy {

class UpstreamPool {
public:
    static UpstreamPool& instance();

    // A server of `up` for `req` by the upstream's balancing method, among those not down,
    // not ejected by passive health, below max_conns and not in `tried`; backups only when no
    // primary is left. -1: none is usable.
    int pick(const UpstreamConfig& up, const Request& req, const std::vector<bool>& tried);
    // Connections this worker has open to a server (least_conn, random_two, max_conns).
    void acquire(const UpstreamConfig& up, size_t server);
    void release(const UpstreamConfig& up, size_t server);
    // Retry budget: a request counts; a retry is allowed while retries stay within
    // up.retry_budget percent of the requests of the last 10 seconds (plus 3).
    void count_request(const UpstreamConfig& up);
    bool take_retry(const UpstreamConfig& up);
    // An idle connection to server `server` of `up`, or -1. The caller owns the fd.
    int take(const UpstreamConfig& up, size_t server);
    // Keeps `fd` for reuse (closes it if the pool for `up` is full or keepalive is 0).
    void put(struct ev_loop* loop, const UpstreamConfig& up, size_t server, int fd);

private:
    struct Idle {
        UpstreamPool* pool;
        const UpstreamConfig* up;
        size_t server;
        int fd;
        struct ev_loop* loop;
        ev_io io;       // readable while idle: the upstream closed it or sent garbage
        ev_timer timer; // keepalive_timeout
        std::list<std::unique_ptr<Idle>>::iterator self;
    };
    struct State {
        std::unique_ptr<Balancer> balancer;
        std::vector<uint32_t> active;           // open connections per server
        std::vector<uint64_t> health_keys;      // Health::key per server
        std::vector<ServerView> views;          // scratch for pick()
        std::list<std::unique_ptr<Idle>> idle;  // oldest first
        uint64_t budget_window_ms = 0;
        uint32_t budget_requests = 0;
        uint32_t budget_retries = 0;
    };
    State& state(const UpstreamConfig& up);
    void drop(Idle* idle); // stops its watchers, closes and forgets it
    static void on_idle_event(struct ev_loop* loop, ev_io* w, int revents);
    static void on_idle_timeout(struct ev_loop* loop, ev_timer* w, int revents);

    std::unordered_map<const UpstreamConfig*, State> states_;
};

} // namespace wraith::proxy
