#include "modules/router/router.h"

#include <algorithm>

#include "common/module.h"

namespace wraith {

Router::Router(const Config& config) {
    for (const auto& site : config.sites) {
        if (!default_site_)
            default_site_ = site.get(); // the first site, unless one says default = true
        for (const HostMatch& h : site->hosts) {
            switch (h.kind) {
            case HostMatch::Kind::exact:
                exact_.emplace(h.text, site.get());
                break;
            case HostMatch::Kind::wildcard:
                wildcards_.emplace_back(h.text, site.get());
                break;
            case HostMatch::Kind::regex:
                regexes_.emplace_back(&h, site.get());
                break;
            }
        }
    }
    for (const auto& site : config.sites)
        if (site->is_default)
            default_site_ = site.get();
    std::stable_sort(wildcards_.begin(), wildcards_.end(),
                     [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

const Site* Router::site_for(std::string_view host) const {
    if (!host.empty() && host.back() == '.')
        host.remove_suffix(1);
    if (auto it = exact_.find(host); it != exact_.end())
        return it->second;
    for (const auto& [suffix, site] : wildcards_) {
        // "*.example.com" stores ".example.com": it needs at least one label before it.
        if (host.size() > suffix.size() && host.ends_with(suffix))
            return site;
        if (suffix.empty())
            return site; // "*"
    }
    for (const auto& [match, site] : regexes_)
        if (std::regex_search(host.begin(), host.end(), *match->regex))
            return site;
    return default_site_;
}

namespace {

bool conditions_hold(const Route& r, const Request& req) {
    for (const auto& c : r.conditions)
        if (!c->matches(req))
            return false;
    return true;
}

} // namespace

const Route* Router::route_for(const Site& site, const Request& req) {
    const std::string_view path = req.decoded_path;
    bool any_regex = false;
    for (const Route& r : site.routes) {
        if (r.match.kind == PathMatch::Kind::exact && path == r.match.text &&
            conditions_hold(r, req))
            return &r;
        any_regex = any_regex || r.match.kind == PathMatch::Kind::regex;
    }
    if (any_regex)
        for (const Route& r : site.routes)
            if (r.match.kind == PathMatch::Kind::regex &&
                std::regex_search(path.begin(), path.end(), *r.match.regex) &&
                conditions_hold(r, req))
                return &r;
    // The longest prefix whose conditions hold (checked only for a longer candidate).
    const Route* prefix = nullptr;
    for (const Route& r : site.routes)
        if (r.match.kind == PathMatch::Kind::prefix && path.starts_with(r.match.text) &&
            (!prefix || r.match.text.size() > prefix->match.text.size()) && conditions_hold(r, req))
            prefix = &r;
    return prefix;
}

} // namespace wraith
