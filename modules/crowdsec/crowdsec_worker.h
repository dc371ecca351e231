// Per-worker crowdsec state: a view of the decisions zone and this worker's counter shard for
// every worker, and in worker slot 0 the puller that keeps the zone current from the Local API.
#pragma once

#include <ev.h>

#include <memory>

#include "common/cidr.h"
#include "common/module.h"
#include "modules/crowdsec/crowdsec.h"
#include "modules/crowdsec/decision_table.h"

namespace wraith::crowdsec {

class Puller;

class CrowdsecWorker final : public ModuleWorker {
public:
    CrowdsecWorker(const WorkerContext& ctx, const CrowdsecConfig& cc);
    ~CrowdsecWorker() override;
    void drain() override;

    // Whether `ip` is refused: a ban (or, with fallback_remediation = "ban", a remedy the
    // bouncer does not implement) in force, or no pull succeeded yet and fallback = "block".
    // `accept` counts it as refused at accept, else as a blocked request.
    bool refuses(const IpAddress& ip, bool accept);

private:
    std::shared_ptr<const Config> config_; // keeps cc_ alive
    const CrowdsecConfig& cc_;
    DecisionTable table_;
    CounterShard* shard_;
    CounterShard private_shard_;
    std::unique_ptr<Puller> puller_; // slot 0 only
};

} // namespace wraith::crowdsec
