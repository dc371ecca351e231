// Picks the site for a request's host and the route for the whole request: its path, then
// the route's conditions (common/module.h RouteCondition). Built once per config generation;
// lookups allocate nothing.
#pragma once

#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "common/http.h"

namespace wraith {

class Router {
public:
    explicit Router(const Config& config);

    // Host: exact name, then the longest matching wildcard suffix, then the first matching
    // regex in file order, then the default site. `host` must be lower-case without port.
    const Site* site_for(std::string_view host) const;

    // The route for `req` (its decoded_path): candidates in NGINX's location order — exact
    // routes ("=/x"), then regex routes in file order, then prefixes from the longest — and the
    // first whose conditions all hold wins, so a route whose conditions fail lets routing fall
    // to the next candidate. nullptr: no route.
    static const Route* route_for(const Site& site, const Request& req);

private:
    std::unordered_map<std::string_view, const Site*> exact_;
    std::vector<std::pair<std::string_view, const Site*>> wildcards_; // longest suffix first
    std::vector<std::pair<const HostMatch*, const Site*>> regexes_;   // file order
    const Site* default_site_ = nullptr;
};

} // namespace wraith
