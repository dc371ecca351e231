// Layout of the connection IDs Wraith issues as a QUIC server. The master's socket steering
// (master/quic_sockets.cc) reads the first two bytes in the kernel; workers generate and check
// them (worker/quic). Nothing else about a CID means anything.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wraith::quic_cid {

// Every server CID is this long, so a short-header packet's DCID can be found without state.
constexpr size_t kLength = 18;
// Byte 0: the index of the worker process's UDP socket in the listener's SO_REUSEPORT group,
// which names one worker of one generation. Byte 1: a marker chosen at master start, so a
// client-chosen Initial DCID rarely looks like ours. Bytes 2..17: random.
constexpr size_t kIndexOffset = 0;
constexpr size_t kMarkerOffset = 1;
// At most this many worker processes (all generations together) own QUIC sockets at once.
constexpr size_t kMaxSockets = 255;

} // namespace wraith::quic_cid
