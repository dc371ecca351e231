// Shared-memory zones: named regions the master creates before it forks workers, so every
// worker of every generation sees the same bytes (passive health, OCSP staples, the status
// table; rate limits and metrics next). A module declares the zones a config needs
// (ModuleSpec::zones); the master keeps a zone whose name, size and layout version did not
// change across reload and binary upgrade, and makes a new one, initialised, when any of them
// did. master/zones.h owns them; workers only look them up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wraith {

// A zone a config needs.
struct ZoneSpec {
    std::string name;     // unique per server: "proxy.health", "tls.ocsp"
    size_t size = 0;      // bytes
    uint32_t version = 1; // the layout: bump it when the struct in the zone changes
    // Prepares fresh memory (zero-filled already). Null: zeros are the initial state.
    void (*init)(void* mem, size_t size) = nullptr;
    // A binary upgrade hands the zone to the new master (shared state both masters' workers
    // may write at once). False for zones only one master may write (its status table).
    bool handover = true;
};

// A zone as the processes see it.
struct SharedZone {
    std::string name;
    void* mem = nullptr;
    size_t size = 0;
    uint32_t version = 0;
};

// The zones of one config generation, by name. What workers and modules are handed.
class SharedZones {
public:
    void add(SharedZone z) { zones_.push_back(std::move(z)); }
    // The zone's memory, or nullptr when this generation has no such zone (or a smaller one).
    void* find(std::string_view name, size_t min_size = 0) const {
        for (const SharedZone& z : zones_)
            if (z.name == name && z.size >= min_size)
                return z.mem;
        return nullptr;
    }
    template <class T> T* get(std::string_view name) const {
        return static_cast<T*>(find(name, sizeof(T)));
    }
    const std::vector<SharedZone>& all() const { return zones_; }

private:
    std::vector<SharedZone> zones_;
};

} // namespace wraith
