// `limit = ["api", "perip"]` at server, site or route scope: the zones that apply there. The
// filter runs in up to three phases, by the zones' kinds: accept (connection zones, [server]
// only), access (request rates: pass, delay or answer 429) and response (bandwidth).
#pragma once

#include <memory>
#include <vector>

#include "common/module.h"
#include "modules/limit/limit_config.h"
#include "modules/limit/zone_table.h"

namespace wraith::limit {

class LimitWorker;

class LimitFilter final : public Filter {
public:
    LimitFilter(std::vector<std::shared_ptr<const ZoneConfig>> zones, size_t module_index);

    unsigned phases() const override { return phases_; }
    bool accept(AcceptContext& ctx) const override;
    void connection_closed(const ConnectionInfo& conn, ModuleWorkers* modules) const override;
    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume& resume) const override;
    ResponseWriter* wrap(Request& req, ResponseWriter& next) const override;

private:
    LimitWorker* worker(ModuleWorkers* modules) const;
    // The zone key's hash for `req` (an empty key falls back to the client's address); false
    // when there is nothing to key on.
    bool request_key(const ZoneConfig& z, const ZoneTable& t, const Request& req,
                     uint64_t* out) const;
    void answer(Request& req, ResponseWriter& out, const ZoneConfig& z, int64_t retry_ns) const;

    std::vector<std::shared_ptr<const ZoneConfig>> zones_; // every zone named, in list order
    std::vector<const ZoneConfig*> requests_;
    std::vector<const ZoneConfig*> connections_;
    const ZoneConfig* bandwidth_ = nullptr; // the lowest, when several are named
    size_t module_index_;
    unsigned phases_ = 0;
};

// ModuleSpec::build_filter.
std::unique_ptr<Filter> build_limit_filter(TableReader& options, BuildContext& ctx);

} // namespace wraith::limit
