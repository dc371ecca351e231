// Picks the site for a request's host and the route for its path. Built once per config
// generation; lookups allocate nothing.
#pragma once

#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.h"

namespace wraith {

class Router {
public:
    explicit Router(const Config& config);

    // Host: exact name, then the longest matching wildcard suffix, then the first matching
    // regex in file order, then the default site. `host` must be lower-case without port.
    const Site* site_for(std::string_view host) const;

    // Path (decoded, normalised): an exact route ("=/x") wins; otherwise the longest matching
    // prefix is remembered, then regex routes are tried in file order and the first match wins;
    // otherwise the remembered prefix. This is NGINX's location order. nullptr: no route.
    static const Route* route_for(const Site& site, std::string_view path);

private:
    std::unordered_map<std::string_view, const Site*> exact_;
    std::vector<std::pair<std::string_view, const Site*>> wildcards_; // longest suffix first
    std::vector<std::pair<const HostMatch*, const Site*>> regexes_;   // file order
    const Site* default_site_ = nullptr;
};

} // namespace wraith
