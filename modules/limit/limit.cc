// The limit module: [limit.NAME] zones and `limit = [...]` at server, site and route scope.
// Request rates (GCRA, exact across workers through shared memory), connection limits at
// accept (before TLS and QUIC handshakes), bandwidth per connection. docs/decisions.md,
// "Limits", says why it is built this way.
#include "common/module.h"
#include "modules/limit/limit_config.h"
#include "modules/limit/limit_filter.h"
#include "modules/limit/limit_worker.h"

namespace wraith {

// Access order 300: early, so a flood costs as little as possible, but after anything below
// it that decides who the client is (request-head filters run before access anyway).
const ModuleSpec& limit_module() {
    static const ModuleSpec spec{.key = "limit",
                                 .order = 300,
                                 .build_filter = limit::build_limit_filter,
                                 .takes_value = true,
                                 .table = "limit",
                                 .load_table = limit::load_limit_tables,
                                 .zones = limit::declare_limit_zones,
                                 .worker_start = limit::start_limit_worker,
                                 .export_metrics = limit::export_limit_metrics,
                                 .worker_lost = limit::limit_worker_lost};
    return spec;
}

} // namespace wraith
