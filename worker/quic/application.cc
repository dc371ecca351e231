#include "worker/quic/application.h"

#include <vector>

namespace wraith::quic {

namespace {

// A worker registers at start, before any connection exists; nothing changes it afterwards.
std::vector<ApplicationSpec>& registry() {
    static std::vector<ApplicationSpec> specs;
    return specs;
}

} // namespace

void register_application(const ApplicationSpec& spec) {
    for (ApplicationSpec& s : registry()) {
        if (s.alpn == spec.alpn) {
            s = spec;
            return;
        }
    }
    registry().push_back(spec);
}

const ApplicationSpec* find_application(std::string_view alpn) {
    for (const ApplicationSpec& s : registry())
        if (s.alpn == alpn)
            return &s;
    return nullptr;
}

std::span<const ApplicationSpec> applications() {
    return registry();
}

} // namespace wraith::quic
