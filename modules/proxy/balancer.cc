#include "modules/proxy/balancer.h"

#include <algorithm>
#include <random>

#include "common/hash.h"

namespace wraith::proxy {

uint64_t hash_key(std::string_view s) {
    return mix64(fnv1a64(s));
}

namespace {

bool eligible(const ServerView& s, bool backup, size_t i, const std::vector<bool>& exclude) {
    return s.usable && s.backup == backup && !(i < exclude.size() && exclude[i]) && s.weight > 0;
}

// Runs `choose(backup)` for primaries, then for backups when no primary could be chosen.
template <class F>
int primaries_then_backups(F&& choose) {
    int i = choose(false);
    return i >= 0 ? i : choose(true);
}

// NGINX's smooth weighted round robin: each eligible server gains its weight, the largest
// current value wins and pays back the total.
class RoundRobin final : public Balancer {
public:
    int pick(std::span<const ServerView> servers, uint64_t,
             const std::vector<bool>& exclude) override {
        if (current_.size() != servers.size())
            current_.assign(servers.size(), 0);
        return primaries_then_backups([&](bool backup) {
            int best = -1;
            int64_t total = 0;
            for (size_t i = 0; i < servers.size(); ++i) {
                if (!eligible(servers[i], backup, i, exclude))
                    continue;
                current_[i] += servers[i].weight;
                total += servers[i].weight;
                if (best < 0 || current_[i] > current_[best])
                    best = static_cast<int>(i);
            }
            if (best >= 0)
                current_[best] -= total;
            return best;
        });
    }

private:
    std::vector<int64_t> current_;
};

// Fewest active connections relative to weight; ties (idle servers, equal loads) are broken
// by smooth weighted round robin among the tied servers, as NGINX does, so weights still
// count when every server is idle.
class LeastConn final : public Balancer {
public:
    int pick(std::span<const ServerView> servers, uint64_t,
             const std::vector<bool>& exclude) override {
        if (current_.size() != servers.size())
            current_.assign(servers.size(), 0);
        return primaries_then_backups([&](bool backup) {
            int least = -1;
            for (size_t i = 0; i < servers.size(); ++i) {
                if (!eligible(servers[i], backup, i, exclude))
                    continue;
                // active/weight < least.active/least.weight, without division.
                if (least < 0 || uint64_t(servers[i].active) * servers[least].weight <
                                     uint64_t(servers[least].active) * servers[i].weight)
                    least = static_cast<int>(i);
            }
            if (least < 0)
                return -1;
            const ServerView& l = servers[least];
            int best = -1;
            int64_t total = 0;
            for (size_t i = 0; i < servers.size(); ++i) {
                if (!eligible(servers[i], backup, i, exclude) ||
                    uint64_t(servers[i].active) * l.weight != uint64_t(l.active) * servers[i].weight)
                    continue;
                current_[i] += servers[i].weight;
                total += servers[i].weight;
                if (best < 0 || current_[i] > current_[best])
                    best = static_cast<int>(i);
            }
            current_[best] -= total;
            return best;
        });
    }

private:
    std::vector<int64_t> current_;
};

// Power of two random choices: two servers drawn by weight, the less loaded one wins.
class RandomTwo final : public Balancer {
public:
    RandomTwo() : rng_(std::random_device{}()) {}
    int pick(std::span<const ServerView> servers, uint64_t,
             const std::vector<bool>& exclude) override {
        return primaries_then_backups([&](bool backup) {
            uint64_t total = 0;
            for (size_t i = 0; i < servers.size(); ++i)
                if (eligible(servers[i], backup, i, exclude))
                    total += servers[i].weight;
            if (total == 0)
                return -1;
            auto draw = [&] {
                uint64_t r = std::uniform_int_distribution<uint64_t>(0, total - 1)(rng_);
                for (size_t i = 0; i < servers.size(); ++i) {
                    if (!eligible(servers[i], backup, i, exclude))
                        continue;
                    if (r < servers[i].weight)
                        return static_cast<int>(i);
                    r -= servers[i].weight;
                }
                return -1;
            };
            int a = draw(), b = draw();
            if (a < 0 || b < 0)
                return a < 0 ? b : a;
            return uint64_t(servers[a].active) * servers[b].weight <=
                           uint64_t(servers[b].active) * servers[a].weight
                       ? a
                       : b;
        });
    }

private:
    std::mt19937_64 rng_;
};

// Consistent hashing on a ring (ketama style): 160 points per unit of weight, placed by the
// server's identity, so a key moves only when its server leaves or one is added nearby.
class HashRing final : public Balancer {
public:
    explicit HashRing(std::span<const ServerView> servers) {
        for (size_t i = 0; i < servers.size(); ++i)
            for (uint32_t p = 0; p < 160 * std::max<uint32_t>(servers[i].weight, 1); ++p)
                points_.push_back({hash_key(std::string(servers[i].identity) + "#" +
                                            std::to_string(p)),
                                   static_cast<uint32_t>(i)});
        std::sort(points_.begin(), points_.end());
    }
    int pick(std::span<const ServerView> servers, uint64_t key,
             const std::vector<bool>& exclude) override {
        if (points_.empty())
            return -1;
        return primaries_then_backups([&](bool backup) {
            auto it = std::lower_bound(points_.begin(), points_.end(), Point{key, 0});
            // Walk on from the key's place to the first eligible server.
            for (size_t k = 0; k < points_.size(); ++k, ++it) {
                if (it == points_.end())
                    it = points_.begin();
                size_t i = it->server;
                if (i < servers.size() && eligible(servers[i], backup, i, exclude))
                    return static_cast<int>(i);
            }
            return -1;
        });
    }

private:
    struct Point {
        uint64_t hash;
        uint32_t server;
        bool operator<(const Point& o) const {
            return hash < o.hash || (hash == o.hash && server < o.server);
        }
    };
    std::vector<Point> points_;
};

// Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size filled from each
// server's permutation in turn (weights give more turns), so keys spread evenly and move
// little when the set changes. A key whose server is not usable falls to the next entries.
class Maglev final : public Balancer {
public:
    static constexpr uint32_t kTableSize = 65537; // prime, >> servers x 100

    explicit Maglev(std::span<const ServerView> servers) : table_(kTableSize, -1) {
        size_t n = servers.size();
        if (n == 0)
            return;
        std::vector<uint32_t> offset(n), skip(n), next(n, 0);
        uint32_t max_weight = 1;
        for (size_t i = 0; i < n; ++i) {
            std::string id(servers[i].identity);
            offset[i] = static_cast<uint32_t>(hash_key(id + "#offset") % kTableSize);
            skip[i] = static_cast<uint32_t>(hash_key(id + "#skip") % (kTableSize - 1)) + 1;
            max_weight = std::max(max_weight, std::max<uint32_t>(servers[i].weight, 1));
        }
        // Weighted turns: a server of weight w fills w slots for every max_weight of the
        // heaviest one (the round structure of the paper, scaled).
        std::vector<uint32_t> credit(n, 0);
        uint32_t filled = 0;
        while (filled < kTableSize) {
            for (size_t i = 0; i < n && filled < kTableSize; ++i) {
                credit[i] += std::max<uint32_t>(servers[i].weight, 1);
                while (credit[i] >= max_weight && filled < kTableSize) {
                    credit[i] -= max_weight;
                    uint32_t c;
                    do {
                        c = static_cast<uint32_t>((offset[i] + uint64_t(next[i]) * skip[i]) %
                                                  kTableSize);
                        ++next[i];
                    } while (table_[c] >= 0);
                    table_[c] = static_cast<int32_t>(i);
                    ++filled;
                }
            }
        }
    }
    int pick(std::span<const ServerView> servers, uint64_t key,
             const std::vector<bool>& exclude) override {
        return primaries_then_backups([&](bool backup) {
            uint32_t slot = static_cast<uint32_t>(key % kTableSize);
            // Up to the whole table; in practice a few steps past an unusable server.
            for (uint32_t k = 0; k < kTableSize; ++k) {
                int32_t i = table_[(slot + k) % kTableSize];
                if (i >= 0 && static_cast<size_t>(i) < servers.size() &&
                    eligible(servers[i], backup, static_cast<size_t>(i), exclude))
                    return static_cast<int>(i);
                if (k > 64 && !any_eligible(servers, backup, exclude))
                    return -1;
            }
            return -1;
        });
    }

private:
    static bool any_eligible(std::span<const ServerView> servers, bool backup,
                             const std::vector<bool>& exclude) {
        for (size_t i = 0; i < servers.size(); ++i)
            if (eligible(servers[i], backup, i, exclude))
                return true;
        return false;
    }
    std::vector<int32_t> table_;
};

} // namespace

std::unique_ptr<Balancer> Balancer::make(Method method, std::span<const ServerView> servers) {
    switch (method) {
    case Method::round_robin:
        return std::make_unique<RoundRobin>();
    case Method::least_conn:
        return std::make_unique<LeastConn>();
    case Method::random_two:
        return std::make_unique<RandomTwo>();
    case Method::hash_ring:
        return std::make_unique<HashRing>(servers);
    case Method::hash_maglev:
        return std::make_unique<Maglev>(servers);
    }
    return nullptr;
}

} // namespace wraith::proxy
