#include "common/counters.h"

namespace wraith::counters {

namespace {

Shard private_shard;
Shard* bound = &private_shard;

template <class T, size_t N> int bucket(const T (&bounds)[N], uint64_t v) {
    size_t i = 0;
    while (i < N && v > bounds[i])
        ++i;
    return static_cast<int>(i);
}

} // namespace

Shard& shard() {
    return *bound;
}

void bind(Zone* zone, int slot) {
    bound =
        zone ? &zone->shards[static_cast<unsigned>(slot < 0 ? 0 : slot) % kShards] : &private_shard;
}

void quic_connection_closed(uint64_t smoothed_rtt_us, uint64_t cwnd, bool congested) {
    Shard& s = shard();
    s.n[quic_closed].fetch_add(1, std::memory_order_relaxed);
    if (congested)
        s.n[quic_congested].fetch_add(1, std::memory_order_relaxed);
    s.rtt[bucket(kRttBucketsUs, smoothed_rtt_us)].fetch_add(1, std::memory_order_relaxed);
    s.rtt_sum_us.fetch_add(smoothed_rtt_us, std::memory_order_relaxed);
    s.cwnd[bucket(kCwndBuckets, cwnd)].fetch_add(1, std::memory_order_relaxed);
    s.cwnd_sum.fetch_add(cwnd, std::memory_order_relaxed);
}

} // namespace wraith::counters
