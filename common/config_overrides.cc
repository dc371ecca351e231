#include "common/config_overrides.h"

#include <toml++/toml.h>

#include "common/config_reader.h"

namespace wraith {

namespace {

// Values are moved, not copied: a copied toml++ node forgets its source position, and
// messages about an override must point into the -g text.
void merge(toml::table& into, toml::table& from) {
    for (auto&& [key, value] : from) {
        auto* sub_from = value.as_table();
        auto* sub_into = into.get_as<toml::table>(key.str());
        if (sub_from && sub_into && !sub_from->is_inline()) {
            merge(*sub_into, *sub_from);
            continue;
        }
        into.insert_or_assign(key.str(), std::move(value));
    }
}

} // namespace

bool merge_config_overrides(toml::table& doc, std::string_view overrides, Diagnostics& diag) {
    if (overrides.empty())
        return true;
    try {
        toml::table extra = toml::parse(overrides, std::string_view(kOverridesSource));
        merge(doc, extra);
    } catch (const toml::parse_error& e) {
        diag.error(SourcePos{kOverridesSource, static_cast<int>(e.source().begin.line),
                             static_cast<int>(e.source().begin.column)},
                   std::string(e.description()));
        return false;
    }
    return true;
}

} // namespace wraith
