// Settings given on the command line (`wraith -g 'worker_processes 4;'`) on top of the file:
// a small TOML document whose keys replace the file's, merged before the file is validated,
// so every check and every message applies to them too. The master keeps them for reloads.
#pragma once

#include <string>
#include <string_view>

namespace toml {
inline namespace v3 {
class table;
}
} // namespace toml

namespace wraith {

class Diagnostics;

// Where override values say they come from in messages ("command line (-g):1:11: ...").
inline constexpr const char* kOverridesSource = "command line (-g)";

// Merges the TOML text `overrides` into `doc`: a key in a table of `overrides` replaces (or
// adds) the same key of the same table in `doc`; tables merge recursively. Returns false, with
// a diagnostic, if `overrides` is not valid TOML.
bool merge_config_overrides(toml::table& doc, std::string_view overrides, Diagnostics& diag);

} // namespace wraith
