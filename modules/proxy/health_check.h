// Active health checks ([upstream.NAME.health_check]). One worker of the serving generation
// probes the servers of each upstream (the one whose slot is hash(upstream name) % workers,
// so the work spreads over workers and every upstream has exactly one checker), on its own
// loop, never blocking it: connect (Happy Eyeballs for host names), then for HTTP checks a
// GET whose status, and optionally body, are judged. Verdicts go to the shared health table
// (modules/proxy/health.h), which every worker's balancer reads.
#pragma once

#include <ev.h>

#include <memory>
#include <vector>

#include "common/config.h"
#include "modules/proxy/upstream_config.h"

namespace wraith::proxy {

class Health;
class UpstreamPool;

class HealthChecker {
public:
    HealthChecker(struct ev_loop* loop, std::shared_ptr<const Config> config, UpstreamPool& pool,
                  Health& health, int slot, int workers);
    ~HealthChecker();
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    size_t probes() const { return probes_.size(); }

    struct Probe;

private:
    struct ev_loop* loop_;
    std::shared_ptr<const Config> config_; // keeps every UpstreamConfig the probes point at
    std::vector<std::unique_ptr<Probe>> probes_;
};

// Whether the worker `slot` of `workers` checks the upstream called `name`.
bool checks_upstream(std::string_view name, int slot, int workers);

// How long a "down" verdict holds without a newer one (three missed rounds).
inline uint64_t active_stale_ms(const HealthCheckConfig& hc) {
    return 3 * static_cast<uint64_t>(hc.interval.count() + hc.timeout.count()) + 1000;
}

// Whether `status` is accepted by the check's status ranges.
bool status_accepted(const HealthCheckConfig& hc, int status);

} // namespace wraith::proxy
