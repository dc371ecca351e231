// The module registry (see module.h). Filled by WRAITH_REGISTER_MODULE static initialisers
// before main(); read-only afterwards, so it needs no locking.
#include "modules/module.h"

#include <cstdio>
#include <cstdlib>

namespace wraith {

ModuleRegistry& ModuleRegistry::instance() {
    static ModuleRegistry registry; // constructed on first use: safe from any static initialiser
    return registry;
}

void ModuleRegistry::add(const ModuleSpec& spec) {
    // Both are programming errors caught the first time the binary starts.
    if (find(spec.key)) {
        std::fprintf(stderr, "wraith: module key \"%.*s\" registered twice\n",
                     static_cast<int>(spec.key.size()), spec.key.data());
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

std::span<const ModuleSpec> ModuleRegistry::all() const {
    return {specs_, count_};
}

} // namespace wraith
