// Binary upgrade (SIGUSR2, `wraith upgrade`): what an old master hands the new binary it
// starts. The listening TCP sockets and the QUIC reuseport groups are inherited as open file
// descriptors (their numbers travel in the environment, FD_CLOEXEC cleared for the exec), with
// the QUIC CID marker and secret, so connections of the old workers keep reaching them and
// stateless resets and tokens stay valid, and the socket indices the old workers hold, which
// the new master must not give out while the old master lives. Shared-memory zones marked
// `handover` (master/zones.h) travel the same way, as memfd descriptors.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "master/zones.h"

namespace wraith {

struct Handover {
    static constexpr const char* kEnv = "WRAITH_INHERIT";

    pid_t parent = 0;
    uint8_t marker = 0;
    std::array<uint8_t, 32> secret{};
    std::vector<uint8_t> used_indices;
    std::map<std::string, int> tcp;                      // ListenerSet key -> fd
    std::map<std::string, std::vector<int>> udp;         // QuicSockets key -> fds by index
    std::map<std::string, ZoneManager::Inherited> zones; // shared-memory zones by name
    int ready_fd = -1; // write "R" here once the new master's workers serve, then close it

    std::string encode() const;
    // From $WRAITH_INHERIT (then removed from the environment), or nullopt; a malformed value
    // is an error message in *error.
    static std::optional<Handover> from_env(std::string* error);
    std::vector<int> all_fds() const;
};

} // namespace wraith
