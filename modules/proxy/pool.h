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

namespace wraith::proxy {

class UpstreamPool {
public:
    static UpstreamPool& instance();

    // The next server of `up` by smooth weighted round robin (the NGINX algorithm: every
    // server gains its weight, the largest current value wins and pays the total back).
    size_t pick(const UpstreamConfig& up);
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
        std::vector<int> current;              // smooth round-robin weights
        std::list<std::unique_ptr<Idle>> idle; // oldest first
    };
    State& state(const UpstreamConfig& up);
    void drop(Idle* idle); // stops its watchers, closes and forgets it
    static void on_idle_event(struct ev_loop* loop, ev_io* w, int revents);
    static void on_idle_timeout(struct ev_loop* loop, ev_timer* w, int revents);

    std::unordered_map<const UpstreamConfig*, State> states_;
};

} // namespace wraith::proxy
