// The generic cell rate algorithm (GCRA, ITU-T I.371), the token bucket every request and
// connection rate of the limit module runs. A key's whole state is one number, its theoretical
// arrival time (TAT): when the next request would be exactly on schedule. A request at `now`
// may pass while the key is at most `tolerance` ahead of that schedule; passing moves the TAT
// one `interval` on. One number per key is what makes the check exact across workers: it is
// read and written under the zone shard's lock (zone_table.h).
#pragma once

#include <algorithm>
#include <cstdint>

namespace wraith::limit {

// A rate of `count` per `period`, with `burst` requests beyond it allowed at once.
struct Gcra {
    int64_t interval_ns = 0;  // T: one request's share of the period (period / count)
    int64_t tolerance_ns = 0; // tau: burst * T, how far ahead of schedule a key may run
};

// What one check decided, with what the RateLimit fields report.
struct RateVerdict {
    bool allowed = false;
    int64_t ahead_ns = 0;  // how far ahead of schedule the key was before this request
    int64_t retry_ns = 0;  // refused: how long until a request would pass
    int64_t remaining = 0; // requests that would still pass at once after this one
    int64_t reset_ns = 0;  // until the key is back on schedule (its full burst available)
};

// Checks a request at `now` against the key's TAT (0 for a key never seen) and, when it passes
// and `commit` is set, moves the TAT on.
inline RateVerdict gcra_check(int64_t& tat, int64_t now, const Gcra& g, bool commit) {
    RateVerdict v;
    const int64_t start = std::max(tat, now); // a key behind schedule starts from now
    v.ahead_ns = start - now;
    if (v.ahead_ns > g.tolerance_ns) {
        v.retry_ns = v.ahead_ns - g.tolerance_ns;
        v.reset_ns = v.ahead_ns;
        return v;
    }
    v.allowed = true;
    v.remaining = g.interval_ns > 0 ? (g.tolerance_ns - v.ahead_ns) / g.interval_ns : 0;
    v.reset_ns = v.ahead_ns + g.interval_ns;
    if (commit)
        tat = start + g.interval_ns;
    return v;
}

} // namespace wraith::limit
