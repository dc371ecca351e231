// The master's shared-memory zones (common/shm.h): each zone is a memfd mapped MAP_SHARED
// before workers fork, so every worker of every generation sees the same pages. A generation
// holds the zones it was started with; a reload keeps each zone whose name, size and layout
// version did not change and makes (and initialises) the others; a zone no generation holds
// any more is unmapped. A binary upgrade hands the zones marked `handover` to the new master
// as inherited descriptors, so their state (upstream health verdicts, rate-limit counters)
// survives it too.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/shm.h"

namespace wraith {

class ZoneManager {
public:
    // One mapped zone. Shared by the generations that use it.
    struct Zone {
        SharedZone info;
        int fd = -1;
        bool handover = true;
        ~Zone();
    };

    // What one generation (or the master itself) holds: the view workers get, and the zones.
    struct ZoneSet {
        SharedZones view;
        std::vector<std::shared_ptr<Zone>> zones;
    };

    ZoneManager() = default;
    ZoneManager(const ZoneManager&) = delete;
    ZoneManager& operator=(const ZoneManager&) = delete;

    // The zones of `specs`, reusing live or handed-over zones that match exactly. False, with
    // the problem in *err, when a zone cannot be made (names must be unique).
    bool prepare(const std::vector<ZoneSpec>& specs, ZoneSet& out, std::string* err);

    // Binary upgrade, old master: the live zones marked `handover` as name -> (fd, size,
    // version); the forked child clears close-on-exec on them before it executes the binary.
    struct Inherited {
        int fd = -1;
        size_t size = 0;
        uint32_t version = 0;
    };
    std::map<std::string, Inherited> handover() const;
    // New master: maps the zones the old one handed over; prepare() adopts those that match,
    // and the rest are closed once the first generation is prepared (forget_inherited()).
    bool adopt(const std::map<std::string, Inherited>& zones, std::string* err);
    void forget_inherited() { inherited_.clear(); }
    // Every zone descriptor this master holds (a forked worker closes them: it keeps the
    // mappings, not the files).
    std::vector<int> fds() const;

private:
    std::shared_ptr<Zone> find_live(const ZoneSpec& spec) const;
    static std::shared_ptr<Zone> make(const ZoneSpec& spec, std::string* err);

    std::vector<std::weak_ptr<Zone>> live_;        // every zone some holder still maps
    std::vector<std::shared_ptr<Zone>> inherited_; // from the old master, not yet adopted
};

} // namespace wraith
