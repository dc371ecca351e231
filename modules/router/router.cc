#include "modules/router/router.h"

#include <algorithm>

#include "common/module.h"
#include "common/path.h"
#include "common/regex.h"

namespace wraith {

Router::Router(const Config& config) {
    for (const auto& site : config.sites) {
        if (site->listener_only)
            continue; // reached through its listener only (ListenConfig::site)
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
        if (site->is_default && !site->listener_only)
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
        if (match->regex->search(host))
            return site;
    return default_site_;
}

namespace {

std::string where(const SourcePos& p) {
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

std::string site_name(const Site& site) {
    std::string names;
    for (const HostMatch& h : site.hosts) {
        if (!names.empty())
            names += ", ";
        names += h.kind == HostMatch::Kind::wildcard ? (h.text.empty() ? "*" : "*" + h.text)
                 : h.kind == HostMatch::Kind::regex  ? "~" + h.text
                                                     : h.text;
    }
    return "site [" + names + "] (" + where(site.pos) + ")";
}

// A route with a rewrite and no handler exists to rewrite: it is a candidate only where its
// pattern matches.
bool conditions_hold(const Route& r, const Request& req) {
    for (const auto& c : r.conditions)
        if (!c->matches(req))
            return false;
    return !r.rewrite || r.handler || r.rewrite->matches(req);
}

bool explain_conditions(const Route& r, const Request& req, std::string& why) {
    for (const auto& c : r.conditions)
        if (!c->explain(req, why)) {
            if (why.empty())
                why = "a condition does not hold";
            return false;
        }
    if (r.rewrite && !r.handler && !r.rewrite->matches(req)) {
        why = "its rewrite pattern does not match the path";
        return false;
    }
    return true;
}

bool path_matches(const Route& r, std::string_view path) {
    switch (r.match.kind) {
    case PathMatch::Kind::exact:
        return path == r.match.text;
    case PathMatch::Kind::prefix:
        return path.starts_with(r.match.text);
    case PathMatch::Kind::regex:
        return r.match.regex->search(path);
    }
    return false;
}

// route_for with its reasons: the candidates in the order route_for tries them.
const Route* explain_route(const Site& site, const Request& req, std::string& out) {
    const std::string_view path = req.decoded_path;
    std::vector<const Route*> order;
    for (const Route& r : site.routes)
        if (r.match.kind == PathMatch::Kind::exact)
            order.push_back(&r);
    for (const Route& r : site.routes)
        if (r.match.kind == PathMatch::Kind::regex)
            order.push_back(&r);
    std::vector<const Route*> prefixes;
    for (const Route& r : site.routes)
        if (r.match.kind == PathMatch::Kind::prefix)
            prefixes.push_back(&r);
    std::stable_sort(prefixes.begin(), prefixes.end(), [](const Route* a, const Route* b) {
        return a->match.text.size() > b->match.text.size();
    });
    order.insert(order.end(), prefixes.begin(), prefixes.end());
    size_t unmatched = 0;
    for (const Route* r : order) {
        if (!path_matches(*r, path)) {
            ++unmatched;
            continue;
        }
        std::string why;
        if (explain_conditions(*r, req, why)) {
            out += "  " + Router::describe(site, *r) + ": taken\n";
            if (unmatched)
                out += "  (" + std::to_string(unmatched) +
                       " route(s) before it in routing order: path does not match)\n";
            return r;
        }
        out += "  " + Router::describe(site, *r) + ": skipped, " + why + "\n";
    }
    out += "  no route: " + std::to_string(unmatched) + " route(s) whose path does not match";
    out += order.size() > unmatched ? ", the others skipped above\n" : "\n";
    return nullptr;
}

} // namespace

const Site* Router::explain_site(std::string_view host, std::string& out) const {
    const Site* site = site_for(host);
    std::string_view h = host;
    if (!h.empty() && h.back() == '.')
        h.remove_suffix(1);
    const char* how = exact_.count(h)                 ? "exact host name"
                      : site == default_site_ && site ? "default site (or a pattern of it)"
                                                      : "wildcard or regex host";
    if (!site)
        out += "host \"" + std::string(host) + "\": no site\n";
    else
        out += "host \"" + std::string(host) + "\": " + site_name(*site) + ", by " + how + "\n";
    return site;
}

std::string Router::describe(const Site& site, const Route& route) {
    size_t n = static_cast<size_t>(&route - site.routes.data()) + 1;
    const char* kind = route.match.kind == PathMatch::Kind::exact   ? "="
                       : route.match.kind == PathMatch::Kind::regex ? "~"
                                                                    : "";
    return "route " + std::to_string(n) + " (path \"" + kind + route.match.text + "\", " +
           where(route.pos) + ")";
}

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
            if (r.match.kind == PathMatch::Kind::regex && r.match.regex->search(path) &&
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

bool Router::resolve(const Site& site, Request& req, std::string& error, std::string* trace) {
    for (;;) {
        req.route = trace ? explain_route(site, req, *trace) : route_for(site, req);
        const Route* r = req.route;
        if (!r)
            return true;
        if (r->match.kind == PathMatch::Kind::regex && r->match.regex->groups() > 0) {
            auto* caps = req.arena->make<Captures>();
            if (r->match.regex->search(req.decoded_path, caps))
                req.captures = caps;
        }
        if (!r->rewrite)
            return true;
        if (req.rewrites >= kMaxRewrites) {
            error = "rewrite loop: " + std::to_string(kMaxRewrites) +
                    " internal rewrites, the last by " + describe(site, *r);
            if (trace)
                *trace += "  " + error + ": 500\n";
            return false;
        }
        std::string before(trace ? req.decoded_path : std::string_view{});
        std::string why;
        if (!r->rewrite->apply(req, why)) {
            if (!why.empty()) {
                error = "rewrite by " + describe(site, *r) + ": " + why;
                if (trace)
                    *trace += "  " + error + ": 500\n";
                return false;
            }
            return true; // the pattern does not match: the route serves the request as it is
        }
        ++req.rewrites;
        if (trace) {
            *trace += "  rewrite " + std::to_string(req.rewrites) + ": \"" + before + "\" -> \"" +
                      std::string(req.decoded_path) +
                      (req.query.empty() ? "" : "?" + std::string(req.query)) + "\"";
            *trace += r->handler ? ", served by this route\n" : ", routing again\n";
        }
        if (r->handler)
            return true;
    }
}

} // namespace wraith
