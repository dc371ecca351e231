// Choosing an upstream server for a request: the balancing methods of [upstream.NAME]
// `balance`. Pure logic over a snapshot of the servers (weight, whether usable now, active
// connections, backup), so it is unit-tested without sockets; the proxy keeps one balancer per
// upstream per worker and feeds it what its pool and the health state know.
//
// Every method skips servers that are not usable (down, ejected, at max_conns) and servers a
// retry already tried (`exclude`); backup servers are chosen only when no primary is usable.
// Consistent hashing keeps most keys on the same server when one comes and goes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wraith::proxy {

struct ServerView {
    std::string_view identity; // stable across reloads (address as written): hash placement
    uint32_t weight = 1;
    bool usable = true;
    bool backup = false;
    uint32_t active = 0; // connections this worker has open to it (least_conn, random_two)
};

class Balancer {
public:
    enum class Method { round_robin, least_conn, random_two, hash_ring, hash_maglev };

    virtual ~Balancer() = default;
    // Index of the chosen server, or -1 when none is usable. `key` is the request's hash key
    // (hash methods only). `exclude[i]` true: tried already by this request.
    virtual int pick(std::span<const ServerView> servers, uint64_t key,
                     const std::vector<bool>& exclude) = 0;

    static std::unique_ptr<Balancer> make(Method method, std::span<const ServerView> servers);
};

// 64-bit hash of a key string (FNV-1a then a finaliser): hash keys and ring points.
uint64_t hash_key(std::string_view s);

} // namespace wraith::proxy
