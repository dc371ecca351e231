// The `waf` filter: ModSecurity's verdict on each exchange of its scope. The access phase
// inspects the request head (phases 1) and, pausing the exchange, the request body up to
// `body_limit` (phase 2), then hands the body it held to the handler; the response phase
// inspects the response head (phase 3). docs/decisions.md, "WAF (ModSecurity)".
#pragma once

#include <memory>

#include "common/module.h"
#include "modules/waf/waf_engine.h"

namespace wraith::waf {

// Per-worker state: the hand-over from an exchange's access phase to its response phase.
// Only its response phase follows an exchange's access phase synchronously, so one slot does.
class WafWorker final : public ModuleWorker {
public:
    const Request* handoff_request = nullptr; // compared only: its exchange may be gone
    struct Inspection* handoff = nullptr;     // that exchange's inspection
};

class WafFilter final : public Filter {
public:
    WafFilter(std::shared_ptr<const Engine> engine, size_t module_index)
        : engine_(std::move(engine)), module_index_(module_index) {}

    unsigned phases() const override {
        return phase_bit(Phase::access) | phase_bit(Phase::response);
    }
    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume& resume) const override;
    ResponseWriter* wrap(Request& req, ResponseWriter& next) const override;

    const Engine& engine() const { return *engine_; }

private:
    std::shared_ptr<const Engine> engine_;
    size_t module_index_;
};

} // namespace wraith::waf
