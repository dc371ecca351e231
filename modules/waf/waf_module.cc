// `waf = { rules = [...], mode = "block" }` at server, site or route scope: ModSecurity with
// the rule files it names (the OWASP CRS). The keys are in man/wraith.toml.5; the design in
// docs/decisions.md, "WAF (ModSecurity)".
#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/module.h"
#include "modules/waf/waf_filter.h"

namespace wraith {

namespace {

constexpr uint64_t kMaxBodyLimit = 64ull << 20; // held in memory per request until the verdict

std::string directory_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

std::unique_ptr<Filter> build_waf(TableReader& r, BuildContext& ctx) {
    const size_t errors = r.diag().count();
    waf::WafOptions o;
    const std::string base = directory_of(ctx.config.path);
    if (auto rules = r.strings("rules"); rules && !rules->empty()) {
        for (const std::string& f : *rules)
            o.rules.push_back(resolve_path(base, f));
    } else if (!rules || rules->empty()) {
        r.error("rules", "expected a list of ModSecurity rule files, like "
                         "[\"/etc/wraith/modsecurity.conf\", "
                         "\"/usr/share/modsecurity-crs/owasp-crs.load\"]");
    }
    o.block = r.choice("mode", "block", {"block", "detect"}) == "block";
    o.body_limit = r.size("body_limit", o.body_limit);
    if (o.body_limit == 0 || o.body_limit > kMaxBodyLimit)
        r.error("body_limit", "must be between 1 byte and 64m");
    o.reject_over_limit =
        r.choice("body_limit_action", "reject", {"reject", "partial"}) == "reject";
    if (auto audit = r.string("audit_log"))
        o.audit_log = resolve_path(base, *audit);
    r.finish();
    if (r.diag().count() != errors)
        return nullptr;
    auto engine = waf::load_engine(o, &ctx.config, r.diag(), r.table_pos());
    if (!engine)
        return nullptr;
    return std::make_unique<waf::WafFilter>(std::move(engine), ctx.module_index);
}

void add_audit_logs(const FilterScope& scope, std::vector<SandboxPath>& out) {
    for (const auto& [spec, filter] : scope.own)
        if (const auto* f = dynamic_cast<const waf::WafFilter*>(filter.get()))
            if (const std::string& log = f->engine().options().audit_log; !log.empty())
                out.push_back({directory_of(log), true});
}

} // namespace

const ModuleSpec& waf_module() {
    static const ModuleSpec spec{
        .key = "waf",
        .order = 350, // after the cheap refusals (allow/deny, auth, limits): they cost less
        .build_filter = build_waf,
        .worker_start = [](const WorkerContext&) -> std::unique_ptr<ModuleWorker> {
            return std::make_unique<waf::WafWorker>();
        },
        .sandbox_paths =
            [](const Config& config, std::vector<SandboxPath>& out) {
                add_audit_logs(config.filters, out);
                for (const auto& site : config.sites) {
                    add_audit_logs(site->filters, out);
                    for (const Route& route : site->routes)
                        add_audit_logs(route.filters, out);
                }
            },
    };
    return spec;
}

} // namespace wraith
