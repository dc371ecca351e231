// libFuzzer target for what the CrowdSec Local API answers (modules/crowdsec/lapi_stream.h):
// the decision stream's JSON and the Go durations inside it. Any input parses or fails with a
// message; every decision it yields is a valid network of its family, and putting them all into
// a small decisions trie and looking each one up again never crashes.
#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "modules/crowdsec/decision_table.h"
#include "modules/crowdsec/lapi_stream.h"

using namespace wraith;
using namespace wraith::crowdsec;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)parse_go_duration(in.substr(0, 64));
    StreamAnswer a;
    std::string error;
    StreamLimits limits;
    limits.max_decisions = 256;
    if (!parse_stream(in, a, error, limits)) {
        CHECK(!error.empty());
        return 0;
    }
    static void* zone = [] {
        const size_t n = zone_size(64);
        void* m = std::aligned_alloc(64, (n + 63) & ~size_t{63});
        return m;
    }();
    const size_t n = zone_size(64);
    std::memset(zone, 0, n);
    init_zone(zone, n);
    DecisionTable t(zone, n);
    CHECK(t.valid() && t.lock());
    for (const StreamDecision& d : a.added) {
        CHECK(d.net.family == AF_INET || d.net.family == AF_INET6);
        CHECK(d.net.prefix >= 0 && d.net.prefix <= (d.net.family == AF_INET ? 32 : 128));
        t.upsert(d.net, d.id, d.remedy, d.origin, d.duration_ms, 1);
    }
    for (const StreamDecision& d : a.added) {
        IpAddress ip{d.net.family, {}};
        std::memcpy(ip.bytes, d.net.addr, sizeof ip.bytes);
        (void)t.lookup(ip, 0);
    }
    for (uint64_t id : a.deleted)
        t.remove(id);
    t.sweep(1);
    t.unlock();
    return 0;
}
