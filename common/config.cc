// The config loader: TOML text -> validated Config, reporting every problem as
// FILE:LINE:COL in one pass (see config.h and DESIGN.md §5). This file holds the document's
// order and entry points; config_loader.h lists where each table is read.
#include "common/config.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <pwd.h>
#include <sstream>
#include <unistd.h>

#include <toml++/toml.h>

#include "common/config_loader.h"
#include "common/config_overrides.h"
#include "common/mime.h"
#include "common/module.h"

namespace wraith {

// Defined here, where Handler, Filter and RouteCondition are complete types.
Config::~Config() = default;

std::string home_dir() {
    if (const char* home = std::getenv("HOME"); home && *home)
        return home;
    if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir && *pw->pw_dir)
        return pw->pw_dir;
    return "/tmp";
}

namespace config_loader {

namespace fs = std::filesystem;

const toml::table& empty_table() {
    static const toml::table table;
    return table;
}

// The core's own top-level keys; every other one must be a module's table.
constexpr std::string_view kCoreTables[] = {"server",     "http",   "http2", "http3",
                                            "access_log", "listen", "site"};

void Loader::load(const toml::table& doc) {
    const toml::table* server = nullptr;
    const toml::table* http = nullptr;
    const toml::table* http2 = nullptr;
    const toml::table* http3 = nullptr;
    const toml::table* access_log = nullptr;
    const toml::node* listen = nullptr;
    const toml::node* site = nullptr;
    {
        TableReader root(doc, diag_, "");
        server = root.table("server");
        http = root.table("http");
        http2 = root.table("http2");
        http3 = root.table("http3");
        access_log = root.table("access_log");
        listen = root.node("listen");
        site = root.node("site");
        for (const ModuleSpec& m : ModuleRegistry::instance().all())
            if (!m.table.empty())
                root.node(m.table); // a module's table: load_module_tables reads it
        root.finish();
    }

    // Order matters: modules see server, http, mime types and their tables when sites are
    // built.
    load_server(server ? *server : empty_table());
    load_http(http ? *http : empty_table());
    load_http2(http2 ? *http2 : empty_table());
    load_http3(http3 ? *http3 : empty_table());
    if (access_log) {
        TableReader r(*access_log, diag_, "access_log");
        read_access_log(r, cfg_.access_log);
    }
    load_module_tables(doc); // before listeners: stream protocols may name what they read
    load_listeners(listen);
    read_filters(server ? *server : empty_table(), Scope::server, nullptr, nullptr, cfg_.filters);
    load_sites(site);
    load_module_listeners();
    check_tls_listeners();
}

void Loader::load_module_tables(const toml::table& doc) {
    for (const auto& [key, value] : doc) {
        if (std::find(std::begin(kCoreTables), std::end(kCoreTables), key.str()) !=
            std::end(kCoreTables))
            continue;
        const ModuleSpec* spec = ModuleRegistry::instance().find_table(key.str());
        if (!spec || !spec->load_table)
            continue; // reported by the root reader
        TableContext ctx{cfg_, diag_, &module_listeners_};
        try {
            spec->load_table(value, ctx);
        } catch (const std::exception& e) {
            diag_.error(&value, std::string(key.str()) + ": " + e.what());
        }
    }
}

// After the file's sites: each module listener and its site, pinned to each other. Loaded as
// if the file had them (positions are those of the values the module copied from its table).
void Loader::load_module_listeners() {
    for (const ModuleListener& ml : module_listeners_) {
        const size_t listeners = cfg_.listeners.size();
        const size_t problems = diag_.list().size();
        load_listen(*ml.listen);
        loading_module_site_ = true;
        load_site(*ml.site);
        loading_module_site_ = false;
        diag_.place_unplaced(problems, ml.pos); // copied values may have lost their lines
        Site& site = *cfg_.sites.back();
        site.listener_only = true;
        site.is_default = false;
        if (cfg_.listeners.size() > listeners)
            cfg_.listeners.back().site = &site;
    }
}

// Elements of an array of tables ([[name]]); anything else is reported.
std::vector<const toml::table*> Loader::tables_of(const toml::node* n, const std::string& name) {
    std::vector<const toml::table*> out;
    if (!n)
        return out;
    std::string expected = name + ": expected [[" + name + "]] tables, got ";
    const toml::array* arr = n->as_array();
    if (!arr) {
        diag_.error(n, expected + describe_value(*n));
        return out;
    }
    for (const toml::node& element : *arr) {
        if (const toml::table* t = element.as_table())
            out.push_back(t);
        else
            diag_.error(&element, expected + describe_value(element));
    }
    return out;
}

// A path option: relative paths resolve against the config file's directory.
void Loader::path_option(TableReader& r, std::string_view key, std::string& out) {
    if (std::optional<std::string> v = r.string(key)) {
        if (v->empty())
            r.error(key, "must not be empty");
        else
            out = resolve_path(cfg_.dir, *v);
    }
}

namespace {

std::shared_ptr<const Config> load(std::string_view text, const std::string& name,
                                   const std::string& path, const std::string& dir,
                                   Diagnostics& diag, std::string_view overrides = {}) {
    diag.set_file(name);
    size_t errors_before = diag.count();
    toml::table doc;
    try {
        doc = toml::parse(text, name);
    } catch (const toml::parse_error& e) {
        // toml++ stops at the first syntax error, so this is the only one reported.
        diag.error(SourcePos{name, static_cast<int>(e.source().begin.line),
                             static_cast<int>(e.source().begin.column)},
                   std::string(e.description()));
        return nullptr;
    }
    if (!merge_config_overrides(doc, overrides, diag))
        return nullptr;
    auto cfg = std::make_shared<Config>();
    cfg->path = path;
    cfg->dir = dir;
    config_loader::Loader(*cfg, diag).load(doc);
    diag.sort_by_position();
    if (diag.count() != errors_before)
        return nullptr;
    return cfg;
}

std::string absolute_dir(const std::string& dir) {
    std::error_code ec;
    fs::path p = fs::absolute(dir.empty() ? fs::path(".") : fs::path(dir), ec);
    if (ec)
        return dir;
    std::string out = p.lexically_normal().string();
    if (out.size() > 1 && out.back() == '/')
        out.pop_back();
    return out;
}

} // namespace

} // namespace config_loader

namespace fs = std::filesystem;

std::shared_ptr<const Config> load_config(const std::string& path, Diagnostics& diag,
                                          std::string_view overrides) {
    diag.set_file(path);
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        diag.error(SourcePos{path, 0, 0}, "is a directory, not a config file");
        return nullptr;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.error(SourcePos{path, 0, 0},
                   "cannot read config file: " + std::string(std::strerror(errno)));
        return nullptr;
    }
    std::ostringstream text;
    text << in.rdbuf();
    fs::path absolute = fs::path(config_loader::absolute_dir(".")) / path;
    if (!path.empty() && path.front() == '/')
        absolute = path;
    absolute = absolute.lexically_normal();
    return config_loader::load(text.str(), path, absolute.string(), absolute.parent_path().string(),
                               diag, overrides);
}

std::shared_ptr<const Config> load_config_text(std::string_view text, const std::string& name,
                                               const std::string& dir, Diagnostics& diag) {
    std::string abs_dir = config_loader::absolute_dir(dir);
    return config_loader::load(text, name, resolve_path(abs_dir, name), abs_dir, diag);
}

} // namespace wraith
