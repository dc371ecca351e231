// Module keys at server, site and route scope: a route's handler, its conditions, and the
// filters of every scope with their inheritance (a scope's key replaces the inherited filter;
// `key = false` turns it off below; default-on filters join at route scope unless some scope
// turned them off).
#include <algorithm>

#include <toml++/toml.h>

#include "common/config_loader.h"
#include "common/config_values.h"
#include "common/module.h"

namespace wraith::config_loader {

using namespace config_values;

namespace {

const char* scope_name(Scope s) {
    return s == Scope::server ? "server" : s == Scope::site ? "site" : "site.route";
}

// A key's position (toml++ keeps one for keys), or its value's when it has none.
SourcePos key_pos(const Diagnostics& diag, const toml::key& key, const toml::node& value) {
    SourcePos p{diag.file(), static_cast<int>(key.source().begin.line),
                static_cast<int>(key.source().begin.column)};
    return p.line != 0 ? p : diag.pos(&value);
}

} // namespace

// "static, redirect, respond" — the registered handler keys, or with filters too.
std::string Loader::module_keys(bool handlers_only) {
    std::vector<std::string_view> handlers, others;
    for (const ModuleSpec& spec : ModuleRegistry::instance().all())
        (spec.is_handler ? handlers : others).push_back(spec.key);
    std::sort(handlers.begin(), handlers.end());
    std::sort(others.begin(), others.end());
    if (!handlers_only)
        handlers.insert(handlers.end(), others.begin(), others.end());
    if (handlers.empty())
        return "none are registered";
    std::string out;
    for (size_t i = 0; i < handlers.size(); ++i)
        out += (i ? ", " : "") + std::string(handlers[i]);
    return out;
}

void Loader::mark_filter_keys(TableReader& r) {
    const ModuleRegistry& registry = ModuleRegistry::instance();
    for (const auto& [key, value] : r.raw())
        if (const ModuleSpec* spec = registry.find(key.str()); spec && spec->build_filter)
            r.node(key.str());
}

void Loader::read_filters(const toml::table& t, Scope scope, const Site* site,
                          const FilterScope* parent, FilterScope& out, const Route* route) {
    const ModuleRegistry& registry = ModuleRegistry::instance();
    for (const auto& [key, value] : t) {
        const ModuleSpec* spec = registry.find(key.str());
        if (!spec || !spec->build_filter)
            continue; // the scope's own reader reports it if it is unknown
        std::string name = std::string(scope_name(scope)) + "." + std::string(spec->key);
        const toml::table* options = value.as_table();
        if (const auto* on = value.as_boolean()) {
            if (!on->get()) {
                out.own.emplace_back(spec, nullptr); // `key = false`: off here and below
                continue;
            }
            options = &empty_table();
        }
        if (!options && spec->takes_value)
            options = &empty_table(); // the module reads `value` itself (BuildContext::value)
        if (!options) {
            diag_.error(&value,
                        name + ": expected a table or true/false, got " + describe_value(value));
            continue;
        }
        if (auto f = build<Filter>(*spec, *options, diag_.pos(&value), site, scope, false, route,
                                   &value))
            out.own.emplace_back(spec, std::move(f));
    }
    merge_filters(parent, scope, site, diag_.pos(&t), out);
}

void Loader::merge_filters(const FilterScope* parent, Scope scope, const Site* site,
                           const SourcePos& at, FilterScope& out) {
    const ModuleRegistry& registry = ModuleRegistry::instance();
    std::vector<std::pair<const ModuleSpec*, const Filter*>> chain;
    if (parent) {
        for (size_t i = 0; i < parent->chain.size(); ++i)
            chain.emplace_back(parent->chain_modules[i], parent->chain[i]);
        out.off = parent->off;
    }
    auto drop = [](auto& list, const ModuleSpec* spec) {
        list.erase(std::remove_if(list.begin(), list.end(),
                                  [&](const auto& e) {
                                      if constexpr (std::is_pointer_v<std::decay_t<decltype(e)>>)
                                          return e == spec;
                                      else
                                          return e.first == spec;
                                  }),
                   list.end());
    };
    for (const auto& [spec, filter] : out.own) {
        drop(chain, spec);
        drop(out.off, spec);
        if (filter)
            chain.emplace_back(spec, filter.get());
        else
            out.off.push_back(spec);
    }
    if (scope == Scope::route || scope == Scope::server) {
        for (const ModuleSpec& spec : registry.all()) {
            const bool on_here = scope == Scope::route ? spec.default_on : spec.default_on_server;
            if (!on_here || !spec.build_filter ||
                std::find(out.off.begin(), out.off.end(), &spec) != out.off.end() ||
                std::any_of(chain.begin(), chain.end(),
                            [&](const auto& e) { return e.first == &spec; }))
                continue;
            if (auto f = build<Filter>(spec, empty_table(), at, site, scope, true)) {
                chain.emplace_back(&spec, f.get());
                out.own.emplace_back(&spec, std::move(f));
            }
        }
    }
    // Lower `order` first (access) and outermost (response); ties in registration order.
    std::stable_sort(chain.begin(), chain.end(), [&](const auto& a, const auto& b) {
        return a.first->order != b.first->order
                   ? a.first->order < b.first->order
                   : registry.index_of(*a.first) < registry.index_of(*b.first);
    });
    out.chain.clear();
    out.chain_modules.clear();
    for (const auto& [spec, filter] : chain) {
        out.chain_modules.push_back(spec);
        out.chain.push_back(filter);
    }
}

void Loader::load_route(const toml::table& t, Site& site) {
    Route route;
    route.pos = diag_.pos(&t);
    route.match.text = "/";
    if (const toml::node* path = t.get("path")) {
        const auto* s = path->as_string();
        std::string err =
            s ? parse_route_path(s->get(), route.match)
              : "expected \"/prefix\", \"=/exact\" or \"~regex\", got " + describe_value(*path);
        if (!err.empty())
            diag_.error(path, "site.route.path: " + err);
    }

    // Module keys in file order, so "second handler" means the later one.
    struct Entry {
        std::string_view key;
        const toml::node* value;
        SourcePos pos; // of the key
    };
    std::vector<Entry> entries;
    for (const auto& [key, value] : t)
        if (key.str() != "path")
            entries.push_back({key.str(), &value, key_pos(diag_, key, value)});
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.pos.line != b.pos.line ? a.pos.line < b.pos.line : a.pos.column < b.pos.column;
    });

    const ModuleRegistry& registry = ModuleRegistry::instance();
    const Entry* handler_entry = nullptr;
    for (const Entry& e : entries) {
        const ModuleSpec* spec = registry.find(e.key);
        if (spec && !spec->build_handler && !spec->build_filter && !spec->build_condition &&
            !spec->build_rewrite)
            spec = nullptr; // a module with a top-level table only ([geo])
        if (!spec) {
            diag_.error(e.pos, "unknown key " + in_quotes(e.key) +
                                   " in [[site.route]] (expected path or a module: " +
                                   module_keys(false) + ")");
            continue;
        }
        if (spec->build_filter)
            continue; // read_filters below
        if (spec->is_handler) {
            if (handler_entry) {
                diag_.error(e.pos, "route has a second handler " + in_quotes(e.key) +
                                       "; it already has " + in_quotes(handler_entry->key) +
                                       " at " + pos_text(handler_entry->pos));
                continue;
            }
            handler_entry = &e;
            route.handler_name = std::string(spec->key);
        }
        std::string name = "site.route." + std::string(spec->key);
        const toml::table* options = e.value->as_table();
        const toml::node* other = nullptr;
        if (!options && spec->takes_value) {
            options = &empty_table();
            other = e.value;
        }
        if (!options) {
            diag_.error(e.value, name + ": expected a table, got " + describe_value(*e.value));
            continue;
        }
        const SourcePos at = diag_.pos(e.value);
        if (spec->is_handler)
            route.handler =
                build<Handler>(*spec, *options, at, &site, Scope::route, false, &route, other);
        else if (spec->build_rewrite)
            route.rewrite =
                build<RouteRewrite>(*spec, *options, at, &site, Scope::route, false, &route, other);
        else if (spec->build_condition)
            if (auto c = build<RouteCondition>(*spec, *options, at, &site, Scope::route, false,
                                               &route, other))
                route.conditions.push_back(std::move(c));
    }
    // A rewrite that sends the request back to routing is the route's whole purpose.
    if (!handler_entry && !route.rewrite &&
        std::none_of(entries.begin(), entries.end(), [&](const Entry& e) {
            const ModuleSpec* spec = registry.find(e.key);
            return spec && spec->build_rewrite;
        }))
        diag_.error(route.pos, "route needs one handler (" + module_keys(true) + ")");
    read_filters(t, Scope::route, &site, &site.filters, route.filters, &route);
    site.routes.push_back(std::move(route));
}

// Runs a module's build function over `options`. A nullptr result must come with a reported
// problem; one that does not still fails the load, with a generic message — except for the
// `implicit` build of a default_on filter, where it means "not needed here".
template <class T>
std::unique_ptr<T> Loader::build(const ModuleSpec& spec, const toml::table& options,
                                 const SourcePos& at, const Site* site, Scope scope, bool implicit,
                                 const Route* route, const toml::node* value) {
    std::string name = std::string(scope_name(scope)) + "." + std::string(spec.key);
    size_t errors_before = diag_.count();
    TableReader reader(options, diag_, std::string(spec.key));
    reader.set_heading(std::string(spec.key));
    BuildContext ctx{cfg_,  site, diag_, scope, ModuleRegistry::instance().index_of(spec),
                     route, value ? value : &options};
    std::unique_ptr<T> built;
    try {
        if constexpr (std::is_same_v<T, Handler>) {
            if (spec.build_handler)
                built = spec.build_handler(reader, ctx);
        } else if constexpr (std::is_same_v<T, Filter>) {
            if (spec.build_filter)
                built = spec.build_filter(reader, ctx);
        } else if constexpr (std::is_same_v<T, RouteRewrite>) {
            if (spec.build_rewrite)
                built = spec.build_rewrite(reader, ctx);
        } else {
            if (spec.build_condition)
                built = spec.build_condition(reader, ctx);
        }
    } catch (const std::exception& e) {
        diag_.error(at, name + ": " + e.what());
    }
    reader.finish();
    if (!built && !implicit && diag_.count() == errors_before)
        diag_.error(at, name + ": the module could not be built");
    return built;
}

} // namespace wraith::config_loader
