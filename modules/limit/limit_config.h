// [limit.NAME] tables: the limit module's part of the config (ModuleSpec::load_table). A table
// is one of three kinds, told apart by its keys: a request rate (`rate`), checked in the access
// phase against a shared zone; connection limits (`connections`, `connection_rate`), checked
// at accept against a shared zone; or a bandwidth (`bandwidth`) that paces each connection's
// responses and needs no zone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/module.h"
#include "common/variables.h"
#include "modules/limit/gcra.h"

namespace wraith::limit {

enum class Kind : uint8_t { requests, connections, bandwidth };
enum class Mode : uint8_t { reject, delay, dry_run };

// "20/s" as written, and as GCRA parameters.
struct Rate {
    uint64_t count = 0;     // N of "N/s"
    uint64_t period_s = 0;  // 1, 60, 3600 or 86400
    Gcra gcra;              // with the table's burst
};

struct ZoneConfig {
    std::string name; // NAME of [limit.NAME]
    SourcePos pos;
    Kind kind = Kind::requests;
    size_t index = 0; // among the config's zones: LimitWorker's tables are in this order

    // requests and connections
    std::string key_text = "$client_ip";
    VarString key;              // requests: expanded per request
    bool key_constant = false;  // connections: one count for every client (a global cap)
    size_t size = 1 << 20;      // zone bytes
    uint64_t burst = 0;

    // requests
    Rate rate;
    Mode mode = Mode::reject;
    uint64_t delay_after = 0; // delay mode: this many requests over the rate pass at once
    int status = 429;
    std::string body;         // empty: the site's error page for `status`, or the built-in one
    std::string content_type; // of `body`
    bool headers = true;      // RateLimit-Policy and RateLimit on refusals

    // connections
    uint32_t connections = 0; // concurrent per key; 0: no cap
    bool has_connection_rate = false;
    Rate connection_rate;

    // bandwidth
    uint64_t bandwidth = 0;       // bytes per second per connection
    uint64_t bandwidth_after = 0; // bytes of each response sent before pacing starts

    std::string zone_name() const { return "limit." + name; }
    // The zone's layout version: the table's layout, the kind and the key. A reload that
    // changes any of them starts the zone afresh; one that changes rates keeps its state.
    uint32_t zone_version() const;
};

// What [limit.*] tables a config has.
class LimitConfig final : public ModuleConfig {
public:
    std::map<std::string, std::shared_ptr<const ZoneConfig>, std::less<>> zones;
    std::vector<const ZoneConfig*> by_index; // zones[i].index == i
};

const LimitConfig* limit_config(const Config& config);

// Reads "N/s", "N/m", "N/h", "N/d" (NGINX's "Nr/s" too). Empty string on success, else what
// is wrong.
std::string parse_rate(std::string_view text, Rate& out);

// ModuleSpec hooks.
void load_limit_tables(const toml::node& value, TableContext& ctx);
void declare_limit_zones(const Config& config, std::vector<ZoneSpec>& out);

} // namespace wraith::limit
