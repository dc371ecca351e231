// The modules built into this binary.
#pragma once

namespace wraith {

// Registers every built-in module with the ModuleRegistry (once; later calls do nothing).
// main() and the unit tests call it before any config is loaded.
void register_builtin_modules();

} // namespace wraith
