// [admin]: the metrics and the dashboard on a listener of their own (loopback by default),
// with the access control of a site (allow, deny, basic_auth, tls with client certificates).
// The table becomes a [[listen]] and a [[site]] pinned to each other (TableContext::listeners):
// its routes are `=/metrics`, `=/` and `=/status.json`, nothing else, and no Host reaches
// that site from another listener.
#include <toml++/toml.h>

#include "common/config_reader.h"
#include "modules/metrics/metrics.h"

namespace wraith::metrics {

namespace {

constexpr std::string_view kDefaultAddress = "127.0.0.1:9145";

toml::table route(std::string_view path, std::string_view handler) {
    return toml::table{{"path", path}, {handler, toml::table{}}};
}

} // namespace

void load_admin(const toml::node& value, TableContext& ctx) {
    const toml::table* t = value.as_table();
    if (!t) {
        ctx.diag.error(&value, "admin: expected a table, e.g. [admin] address = \"" +
                                   std::string(kDefaultAddress) + "\"");
        return;
    }
    TableReader r(*t, ctx.diag, "admin");
    auto listen = std::make_shared<toml::table>();
    auto site = std::make_shared<toml::table>();
    if (const toml::node* a = r.node("address"))
        listen->insert("address", *a);
    else
        listen->insert("address", kDefaultAddress);
    const bool metrics = r.boolean("metrics", true);
    const bool dashboard = r.boolean("dashboard", true);
    if (!r.boolean("enabled", true)) {
        r.finish();
        return;
    }
    if (!metrics && !dashboard)
        r.error("dashboard", "with metrics = false and dashboard = false there is nothing to "
                             "serve: leave [admin] out (or set enabled = false)");
    const toml::node* tls = r.node("tls");
    listen->insert("tls", tls != nullptr);
    listen->insert("protocols", tls ? toml::array{"h2", "http/1.1"} : toml::array{"http/1.1"});
    site->insert("hosts", toml::array{"admin"});
    if (tls)
        site->insert("tls", *tls);
    // Access control and logging, as a site has them.
    for (std::string_view key : {"allow", "deny", "basic_auth", "access_log"})
        if (const toml::node* n = r.node(key))
            site->insert(key, *n);
    toml::array routes;
    if (metrics)
        routes.push_back(route("=/metrics", "metrics"));
    if (dashboard) {
        routes.push_back(route("=/", "dashboard"));
        routes.push_back(route("=/status.json", "dashboard"));
    }
    site->insert("route", std::move(routes));
    r.finish();
    if (ctx.listeners && (metrics || dashboard))
        ctx.listeners->push_back({std::move(listen), std::move(site), r.table_pos()});
}

} // namespace wraith::metrics
