// `allow = [...]` and `deny = [...]` at server, site and route scope: lists of CIDR blocks and
// "country:XX", "continent:XX", "asn:N" entries (and "all"). A request whose client address
// (real_ip's, when configured) matches a `deny` entry, or matches no `allow` entry while an
// `allow` list applies, gets 403. The two keys are independent filters, so a route may
// narrow the site's `allow` and keep its `deny`.
#include <toml++/toml.h>

#include "common/cidr.h"
#include "common/config_reader.h"
#include "modules/geo/geo.h"
#include "modules/routing/routing.h"

namespace wraith::routing {

namespace {

struct AddressList {
    std::vector<Cidr> networks;
    std::vector<std::string> countries, continents;
    std::vector<uint32_t> asns;
    bool all = false;

    bool geo() const { return !countries.empty() || !continents.empty() || !asns.empty(); }

    bool contains(const Request& req) const {
        if (all)
            return true;
        if (cidr_match(networks, ip_of(client_ip_of(req))))
            return true;
        if (!geo())
            return false;
        const geo::Lookup& g = geo::lookup(req);
        for (const std::string& c : countries)
            if (g.country == c)
                return true;
        for (const std::string& c : continents)
            if (g.continent == c)
                return true;
        for (uint32_t a : asns)
            if (g.asn == a)
                return true;
        return false;
    }
};

class AccessRule final : public Filter {
public:
    AccessRule(AddressList list, bool allow) : list_(std::move(list)), allow_(allow) {}
    unsigned phases() const override { return phase_bit(Phase::access); }
    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume&) const override {
        if (list_.contains(req) == allow_)
            return AccessVerdict::next;
        send_error(req, out, 403,
                   allow_ ? "allow: client address not allowed" : "deny: client address denied");
        return AccessVerdict::answered;
    }

private:
    AddressList list_;
    bool allow_;
};

std::unique_ptr<Filter> build_list(TableReader& r, BuildContext& ctx, bool allow) {
    const char* key = allow ? "allow" : "deny";
    std::vector<const toml::node*> items;
    const toml::node* value = ctx.value;
    if (!value) {
        r.diag().error(r.table_pos(), std::string(key) +
                                          ": expected a list like [\"10.0.0.0/8\", "
                                          "\"country:DE\"], or false to drop an inherited one");
        return nullptr;
    }
    if (const toml::array* arr = value->as_array()) {
        for (const toml::node& e : *arr)
            items.push_back(&e);
        if (arr->empty())
            r.diag().error(value, std::string(key) + ": needs at least one entry");
    } else {
        items.push_back(value);
    }
    const size_t errors = r.diag().count();
    AddressList list;
    for (const toml::node* e : items) {
        const auto* s = e->as_string();
        if (!s) {
            r.diag().error(e, std::string(key) +
                                  ": expected strings like \"10.0.0.0/8\" or "
                                  "\"country:DE\", got " +
                                  describe_value(*e));
            continue;
        }
        std::string text = s->get();
        auto code = [&](std::string_view prefix) -> std::optional<std::string> {
            if (text.rfind(prefix, 0) != 0)
                return std::nullopt;
            std::string c = text.substr(prefix.size());
            for (char& ch : c)
                ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
            return c;
        };
        if (text == "all") {
            list.all = true;
        } else if (auto c = code("country:")) {
            if (!geo::known_country(*c))
                r.diag().error(e, std::string(key) + ": unknown country code \"" + *c + "\"");
            else
                list.countries.push_back(*c);
        } else if (auto c = code("continent:")) {
            if (!geo::known_continent(*c))
                r.diag().error(e, std::string(key) + ": unknown continent code \"" + *c +
                                      "\" (AF, AN, AS, EU, NA, OC, SA)");
            else
                list.continents.push_back(*c);
        } else if (auto c = code("asn:")) {
            std::string_view n = *c;
            if (n.substr(0, 2) == "AS")
                n.remove_prefix(2);
            if (n.empty() || n.size() > 10 ||
                n.find_first_not_of("0123456789") != std::string_view::npos ||
                std::stoull(std::string(n)) == 0 || std::stoull(std::string(n)) > 4294967295ULL)
                r.diag().error(e, std::string(key) + ": \"" + text + "\" is not an AS number");
            else
                list.asns.push_back(static_cast<uint32_t>(std::stoull(std::string(n))));
        } else {
            Cidr net;
            std::string warning;
            if (std::string err = parse_cidr(text, net, &warning); !err.empty())
                r.diag().error(e, std::string(key) + ": " + err +
                                      " (or \"country:DE\", \"continent:EU\", \"asn:64500\")");
            else
                list.networks.push_back(net);
            if (!warning.empty())
                r.diag().warn(r.diag().pos(e), std::string(key) + ": " + warning);
        }
    }
    if (list.geo() && !geo::configured(ctx.config))
        r.diag().error(value, std::string(key) + ": country/continent/asn entries need a geo "
                                                 "database: add [geo] database = \"...mmdb\"");
    if (r.diag().count() != errors)
        return nullptr;
    return std::make_unique<AccessRule>(std::move(list), allow);
}

} // namespace

std::unique_ptr<Filter> build_allow(TableReader& r, BuildContext& ctx) {
    return build_list(r, ctx, true);
}

std::unique_ptr<Filter> build_deny(TableReader& r, BuildContext& ctx) {
    return build_list(r, ctx, false);
}

} // namespace wraith::routing
