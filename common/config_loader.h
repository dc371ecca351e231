// The config loader's internals, shared by the files that implement it: config.cc (the
// document and its order), config_server.cc ([server], [http*], [[listen]]), config_sites.cc
// ([[site]]: hosts, TLS, error pages) and config_scopes.cc (module keys at server, site and
// route scope: handlers, filters and their inheritance, route conditions). Not for modules:
// they read their tables through TableReader and common/module.h.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/config_reader.h"
#include "common/module.h"

namespace toml {
inline namespace v3 {
class node;
class table;
} // namespace v3
} // namespace toml

namespace wraith {

struct ModuleSpec;

namespace config_loader {

// Stands in for an absent section or option table, so defaults go through the same code.
const toml::table& empty_table();

class Loader {
public:
    Loader(Config& cfg, Diagnostics& diag) : cfg_(cfg), diag_(diag) {}

    // The whole document, in dependency order: [server] (with its filter keys last), [http*],
    // [access_log], module tables, [[listen]], then [[site]]s.
    void load(const toml::table& doc);

private:
    // config.cc
    std::vector<const toml::table*> tables_of(const toml::node* n, const std::string& name);
    void path_option(TableReader& r, std::string_view key, std::string& out);
    void load_module_tables(const toml::table& doc);

    // config_server.cc
    void load_server(const toml::table& t);
    void load_mime_types(TableReader& r);
    void load_http(const toml::table& t);
    void load_http2(const toml::table& t);
    void load_http3(const toml::table& t);
    void read_access_log(TableReader& r, AccessLogConfig& out);
    void load_listeners(const toml::node* n);
    void load_listen(const toml::table& t);
    void read_protocols(TableReader& r, ListenConfig& l);
    void read_streams(const toml::table& t, TableReader& r, ListenConfig& l);
    static std::string stream_protocol_names();
    void check_tls_listeners();

    // Listeners module tables added ([admin]), loaded after the file's own, each with its site.
    void load_module_listeners();

    // config_sites.cc
    void load_sites(const toml::node* n);
    void load_site(const toml::table& t);
    std::unique_ptr<SiteTls> read_site_tls(TableReader& r);
    void read_hosts(const toml::node& hosts, Site& site);
    void read_error_pages(const toml::table& pages, Site& site);

    // config_scopes.cc
    // Marks the filter-module keys of `r`'s table as known: read_filters builds them later,
    // once what they may need (the [http] table, module tables, the site) is loaded.
    static void mark_filter_keys(TableReader& r);
    // Builds the filter-module keys of `t` at `scope` into `out.own`, then merges them over
    // `parent`'s chain into `out.chain` (default-on filters join at route scope).
    void read_filters(const toml::table& t, Scope scope, const Site* site,
                      const FilterScope* parent, FilterScope& out, const Route* route = nullptr);
    void merge_filters(const FilterScope* parent, Scope scope, const Site* site,
                       const SourcePos& at, FilterScope& out);
    void load_route(const toml::table& t, Site& site);
    // Runs a module's build function over `options`; see the definition.
    template <class T>
    std::unique_ptr<T> build(const ModuleSpec& spec, const toml::table& options,
                             const SourcePos& at, const Site* site, Scope scope,
                             bool implicit = false, const Route* route = nullptr,
                             const toml::node* value = nullptr);
    static std::string module_keys(bool handlers_only);

    Config& cfg_;
    Diagnostics& diag_;
    const Site* default_site_ = nullptr;
    std::vector<ModuleListener> module_listeners_; // added by module tables (TableContext)
    bool loading_module_site_ = false; // its hosts name it only: they claim no host
    std::map<std::string, SourcePos> claimed_hosts_; // kind + text -> where first listed
};

} // namespace config_loader
} // namespace wraith
