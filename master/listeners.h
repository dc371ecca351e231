// Listening sockets owned by the master and shared by every worker generation. A reload keeps
// the socket of a listener whose address and options did not change, so no connection waiting
// in its backlog is lost.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"

namespace wraith {

class ListenerSet {
public:
    ~ListenerSet();
    // Binds (or reuses) a socket for each listener of `config`; returns fds parallel to
    // config.listeners, or an empty vector after logging/setting *error.
    std::vector<int> acquire(const Config& config, std::string* error);
    // Closes sockets that no live generation uses. `in_use` lists the configs still running.
    void release_unused(const std::vector<const Config*>& in_use);
    std::vector<int> all_fds() const;
    // Binary upgrade: sockets by key, to hand over; and taking over the ones handed to us.
    std::map<std::string, int> by_key() const;
    void adopt(const std::map<std::string, int>& sockets);

private:
    // A bound socket; keyed by protocol + address + port.
    struct Socket {
        int fd = -1;
        bool ipv6_only = false;
        int backlog = 0;
    };
    static std::string key(const ListenConfig& l);
    std::map<std::string, Socket> sockets_;
};

} // namespace wraith
