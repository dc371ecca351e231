// The CrowdSec bouncer: `[crowdsec]` names the Local API; one worker pulls its decision stream
// into a shared-memory trie (decision_table.h) that every worker reads; `crowdsec = true|false`
// at server, site or route scope (on at server scope whenever the table exists) refuses the
// addresses it bans. docs/decisions.md, "CrowdSec".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/config_reader.h"
#include "common/module.h"

namespace wraith::crowdsec {

constexpr const char* kZoneName = "crowdsec.decisions";

struct CrowdsecConfig final : ModuleConfig {
    std::string url;             // the Local API as written ("http://127.0.0.1:8080/")
    std::string stream_url;      // .../v1/decisions/stream?scopes=...&origins=... (no startup=)
    std::string api_key;         // the file's content, trimmed
    double interval = 10;        // seconds between pulls
    double timeout = 10;         // one pull, whole
    bool fallback_block = false; // `fallback`: before the first successful pull
    bool unknown_ban = true;     // `fallback_remediation`: captcha, throttle, others
    bool ban_at_accept = false;
    std::string ban_page; // the 403's HTML body
    uint32_t max_decisions = 65536;
    size_t max_answer = 64u << 20; // bytes of one stream answer
    SourcePos pos;                 // the [crowdsec] table
};

const CrowdsecConfig* crowdsec_config(const Config& config);

void load_crowdsec(const toml::node& value, TableContext& ctx);
std::unique_ptr<Filter> build_crowdsec(TableReader& r, BuildContext& ctx);
void declare_zones(const Config& config, std::vector<ZoneSpec>& out);
std::unique_ptr<ModuleWorker> start_worker(const WorkerContext& ctx);
void export_metrics(const MetricsExport& ctx, std::string& out);
void export_status(const MetricsExport& ctx, std::string& out);

} // namespace wraith::crowdsec
