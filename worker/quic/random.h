// Unpredictable bytes for QUIC: connection IDs, Version Negotiation's unused bits, stateless
// reset filler, packet padding and PATH_CHALLENGE data. From the kernel (getrandom), which never
// blocks once the system is up.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wraith::quic {

void fill_random(uint8_t* p, size_t n);

} // namespace wraith::quic
