// Picks the site for a request's host and the route for the whole request: its path, then
// the route's conditions (common/module.h RouteCondition), then internal rewrites that send it
// through routing again. Built once per config generation; lookups allocate nothing but the
// captures of a regex route (request arena).
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.h"
#include "common/http.h"

namespace wraith {

class Router {
public:
    // Internal rewrites one request may go through; the next one ends it with a 500.
    static constexpr int kMaxRewrites = 10;

    explicit Router(const Config& config);

    // Host: exact name, then the longest matching wildcard suffix, then the first matching
    // regex in file order, then the default site. `host` must be lower-case without port.
    const Site* site_for(std::string_view host) const;
    // The same, and why (for `wraith route` and the debug log).
    const Site* explain_site(std::string_view host, std::string& out) const;

    // The route for `req` (its decoded_path): candidates in NGINX's location order — exact
    // routes ("=/x"), then regex routes in file order, then prefixes from the longest — and the
    // first whose conditions all hold wins, so a route whose conditions fail lets routing fall
    // to the next candidate. nullptr: no route.
    static const Route* route_for(const Site& site, const Request& req);

    // What the pipeline runs: route_for, then the regex route's captures ($1..$9) into
    // req.captures, then the route's rewrite, if any, and routing again when the route has no
    // handler. Sets req.route (null: no route). False when routing failed for good: a rewrite
    // loop (over kMaxRewrites) or a rewrite whose result is not a path; `error` says which, and
    // the caller answers 500. With `trace`, every step is described there, line by line.
    static bool resolve(const Site& site, Request& req, std::string& error,
                        std::string* trace = nullptr);

    // "route 2 (path \"/api/\", FILE:LINE:COL)": how explanations name a route.
    static std::string describe(const Site& site, const Route& route);

private:
    std::unordered_map<std::string_view, const Site*> exact_;
    std::vector<std::pair<std::string_view, const Site*>> wildcards_; // longest suffix first
    std::vector<std::pair<const HostMatch*, const Site*>> regexes_;   // file order
    const Site* default_site_ = nullptr;
};

} // namespace wraith
