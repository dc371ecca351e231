// The module registry (see module.h). Filled before the first config is loaded (the built-in
// modules by register_builtin_modules(), test modules by static initialisers); read-only
// afterwards, so it needs no locking.
#include "common/module.h"

#include <cstdio>
#include <cstdlib>

namespace wraith {

ModuleRegistry& ModuleRegistry::instance() {
    static ModuleRegistry registry; // constructed on first use: safe from any static initialiser
    return registry;
}

void ModuleRegistry::add(const ModuleSpec& spec) {
    // All three are programming errors caught the first time the binary starts.
    if (find(spec.key)) {
        std::fprintf(stderr, "wraith: module key \"%.*s\" registered twice\n",
                     static_cast<int>(spec.key.size()), spec.key.data());
        std::abort();
    }
    if (!spec.table.empty() && find_table(spec.table)) {
        std::fprintf(stderr, "wraith: table [%.*s] registered twice\n",
                     static_cast<int>(spec.table.size()), spec.table.data());
        std::abort();
    }
    if (count_ == std::size(specs_)) {
        std::fprintf(stderr, "wraith: too many modules; raise ModuleRegistry::specs_\n");
        std::abort();
    }
    specs_[count_++] = spec;
}

const ModuleSpec* ModuleRegistry::find(std::string_view key) const {
    for (size_t i = 0; i < count_; ++i)
        if (specs_[i].key == key)
            return &specs_[i];
    return nullptr;
}

const ModuleSpec* ModuleRegistry::find_table(std::string_view table) const {
    for (size_t i = 0; i < count_; ++i)
        if (!specs_[i].table.empty() && specs_[i].table == table)
            return &specs_[i];
    return nullptr;
}

std::string check_captures(int highest, const BuildContext& ctx) {
    if (highest == 0 || !ctx.route || ctx.route->match.kind != PathMatch::Kind::regex ||
        !ctx.route->match.regex)
        return {};
    int groups = ctx.route->match.regex->groups();
    if (highest <= groups)
        return {};
    return "$" + std::to_string(highest) + " names a capture group the route's path regex \"" +
           ctx.route->match.text + "\" does not have (it has " + std::to_string(groups) + ")";
}

size_t ModuleRegistry::index_of(const ModuleSpec& spec) const {
    return static_cast<size_t>(&spec - specs_);
}

std::span<const ModuleSpec> ModuleRegistry::all() const {
    return {specs_, count_};
}

} // namespace wraith
