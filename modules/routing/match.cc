#include "modules/routing/match.h"

#include <algorithm>

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "modules/geo/geo.h"
#include "modules/routing/request_fields.h"

namespace wraith::routing {

bool ValueTest::test(std::optional<std::string_view> value) const {
    switch (kind) {
    case Kind::present:
        return value.has_value();
    case Kind::absent:
        return !value.has_value();
    case Kind::equals:
        return value && *value == text;
    case Kind::regex:
        return value && re->search(*value);
    }
    return false;
}

std::string ValueTest::describe() const {
    switch (kind) {
    case Kind::present:
        return "present";
    case Kind::absent:
        return "absent";
    case Kind::equals:
        return "\"" + text + "\"";
    case Kind::regex:
        return "~" + text;
    }
    return {};
}

std::string parse_value_test(const toml::node& n, ValueTest& out, bool allow_bool) {
    if (const auto* b = n.as_boolean(); b && allow_bool) {
        out.kind = b->get() ? ValueTest::Kind::present : ValueTest::Kind::absent;
        return {};
    }
    const auto* s = n.as_string();
    if (!s)
        return std::string("expected \"exact value\", \"~regex\"") +
               (allow_bool ? " or true/false (present/absent)" : "") + ", got " + describe_value(n);
    const std::string& v = s->get();
    if (!v.empty() && v.front() == '~') {
        out.kind = ValueTest::Kind::regex;
        out.text = v.substr(1);
        std::string why;
        out.re = Regex::compile(out.text, Regex::none, &why);
        if (!out.re)
            return "bad regex \"" + out.text + "\": " + why;
        return {};
    }
    out.kind = ValueTest::Kind::equals;
    out.text = v;
    return {};
}

namespace {

struct NamedTest {
    std::string name; // header names lower-case
    ValueTest value;
};

// A certificate test: present/absent, or tests on its fields (any SAN entry may match).
struct CertTest {
    std::optional<bool> present;
    std::optional<ValueTest> subject, issuer, san, fingerprint;
};

const char* protocol_name(int version) {
    return version == 20 ? "h2" : version == 30 ? "h3" : "h1";
}

} // namespace

struct MatchCondition::Node {
    std::vector<std::string> methods;
    std::vector<NamedTest> headers, query, cookies;
    std::vector<Cidr> client_ip;
    bool has_client_ip = false;
    std::vector<std::string> country, continent, subdivision;
    std::vector<uint32_t> asn;
    std::optional<CertTest> cert;
    std::vector<std::string> protocols; // "h1", "h2", "h3"
    std::vector<Node> any;
    std::unique_ptr<Node> negated;

    // All tests hold. `why` (may be null) gets the first that fails.
    bool eval(const Request& req, std::string* why) const;
};

namespace {

// A failed test. The reason is built only when someone asked for it (wraith route, the debug
// log): routing itself allocates nothing.
#define FAIL_BECAUSE(text)                                                                         \
    do {                                                                                           \
        if (why)                                                                                   \
            *why = (text);                                                                         \
        return false;                                                                              \
    } while (0)

std::string list_text(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ", ") + s;
    return "[" + out + "]";
}

std::string shown(std::optional<std::string_view> v) {
    if (!v)
        return "absent";
    std::string out = "\"";
    for (char c : v->substr(0, 80))
        out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    return out + (v->size() > 80 ? "...\"" : "\"");
}

bool header_test(const Request& req, const NamedTest& t) {
    if (t.value.kind == ValueTest::Kind::present || t.value.kind == ValueTest::Kind::absent)
        return t.value.test(header_value(req, t.name));
    for (const Header& h : req.headers) // any of its fields may match
        if (h.name == t.name && t.value.test(h.value))
            return true;
    return false;
}

bool san_test(std::string_view sans, const ValueTest& t) {
    if (t.kind == ValueTest::Kind::regex)
        return t.re->search(sans);
    while (!sans.empty()) { // "DNS:a.example, email:alice@example.com": each entry exactly
        size_t comma = sans.find(", ");
        std::string_view entry = sans.substr(0, comma);
        if (entry == t.text)
            return true;
        // "a.example" matches "DNS:a.example" too.
        size_t colon = entry.find(':');
        if (colon != std::string_view::npos && entry.substr(colon + 1) == t.text)
            return true;
        if (comma == std::string_view::npos)
            break;
        sans.remove_prefix(comma + 2);
    }
    return false;
}

} // namespace

bool MatchCondition::Node::eval(const Request& req, std::string* why) const {
    if (!methods.empty() && std::find(methods.begin(), methods.end(), req.method) == methods.end())
        FAIL_BECAUSE("method " + std::string(req.method) + " is not in " + list_text(methods));
    if (!protocols.empty() && std::find(protocols.begin(), protocols.end(),
                                        protocol_name(req.version)) == protocols.end())
        FAIL_BECAUSE(std::string("protocol ") + protocol_name(req.version) + " is not in " +
                     list_text(protocols));
    for (const NamedTest& t : headers)
        if (!header_test(req, t))
            FAIL_BECAUSE("header " + t.name + " is " + shown(header_value(req, t.name)) +
                         ", wanted " + t.value.describe());
    for (const NamedTest& t : query)
        if (!t.value.test(query_value(req.query, t.name)))
            FAIL_BECAUSE("query argument " + t.name + " is " +
                         shown(query_value(req.query, t.name)) + ", wanted " + t.value.describe());
    for (const NamedTest& t : cookies)
        if (!t.value.test(cookie_value(req, t.name)))
            FAIL_BECAUSE("cookie " + t.name + " is " + shown(cookie_value(req, t.name)) +
                         ", wanted " + t.value.describe());
    if (has_client_ip && !cidr_match(client_ip, ip_of(client_ip_of(req))))
        FAIL_BECAUSE("client address " + std::string(client_ip_of(req)) +
                     " is in none of the client_ip networks");
    if (!country.empty() || !continent.empty() || !subdivision.empty() || !asn.empty()) {
        const geo::Lookup& g = geo::lookup(req);
        auto where = [&] { return " (client " + std::string(client_ip_of(req)) + ")"; };
        if (!country.empty() &&
            std::find(country.begin(), country.end(), g.country) == country.end())
            FAIL_BECAUSE("country " +
                         shown(g.country.empty() ? std::nullopt : std::optional(g.country)) +
                         " is not in " + list_text(country) + where());
        if (!continent.empty() &&
            std::find(continent.begin(), continent.end(), g.continent) == continent.end())
            FAIL_BECAUSE("continent " +
                         shown(g.continent.empty() ? std::nullopt : std::optional(g.continent)) +
                         " is not in " + list_text(continent) + where());
        if (!subdivision.empty()) {
            bool ok = false;
            for (const std::string& s : subdivision) {
                // "BY" or "DE-BY" (ISO 3166-2).
                if (s.size() > 3 && s[2] == '-')
                    ok = ok || (g.country == std::string_view(s).substr(0, 2) &&
                                g.subdivision == std::string_view(s).substr(3));
                else
                    ok = ok || g.subdivision == s;
            }
            if (!ok)
                FAIL_BECAUSE("subdivision " + shown(g.subdivision) + " is not in " +
                             list_text(subdivision) + where());
        }
        if (!asn.empty() && std::find(asn.begin(), asn.end(), g.asn) == asn.end())
            FAIL_BECAUSE("ASN " + (g.asn ? std::to_string(g.asn) : std::string("unknown")) +
                         " is not one of the asn list" + where());
    }
    if (cert) {
        const ConnectionInfo* c = req.conn;
        bool has = c && !c->client_subject().empty();
        if (cert->present && *cert->present != has)
            FAIL_BECAUSE(has ? "a client certificate was presented, wanted none"
                             : "no verified client certificate");
        auto field = [&](const std::optional<ValueTest>& t, std::string_view v, const char* name) {
            if (!t || t->test(has ? std::optional(v) : std::nullopt))
                return true;
            FAIL_BECAUSE(std::string("client certificate ") + name + " is " +
                         shown(has ? std::optional(v) : std::nullopt) + ", wanted " +
                         t->describe());
        };
        if (!field(cert->subject, c ? c->client_subject() : "", "subject") ||
            !field(cert->issuer, c ? c->client_issuer() : "", "issuer") ||
            !field(cert->fingerprint, c ? c->client_fingerprint() : "", "fingerprint"))
            return false;
        if (cert->san && !(has && san_test(c->client_sans(), *cert->san)))
            FAIL_BECAUSE("client certificate SAN " +
                         shown(has ? std::optional(c->client_sans()) : std::nullopt) +
                         " has no entry " + cert->san->describe());
    }
    if (!any.empty()) {
        bool one = false;
        std::string last;
        for (const Node& n : any)
            if (n.eval(req, why ? &last : nullptr)) {
                one = true;
                break;
            }
        if (!one)
            FAIL_BECAUSE("none of `any` holds (the last: " + last + ")");
    }
    if (negated && negated->eval(req, nullptr))
        FAIL_BECAUSE("the `not` conditions all hold");
    return true;
}

MatchCondition::MatchCondition(std::unique_ptr<Node> root) : root_(std::move(root)) {}
MatchCondition::~MatchCondition() = default;

bool MatchCondition::matches(const Request& req) const {
    return root_->eval(req, nullptr);
}

bool MatchCondition::explain(const Request& req, std::string& why) const {
    if (root_->eval(req, &why))
        return true;
    why = "match: " + why;
    return false;
}

namespace {

std::string lower(std::string s) {
    for (char& c : s)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return s;
}

std::string upper(std::string s) {
    for (char& c : s)
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
    return s;
}

void read_named(TableReader& r, std::string_view key, bool header_names,
                std::vector<NamedTest>& out) {
    const toml::table* t = r.table(key);
    if (!t)
        return;
    Diagnostics& diag = r.diag();
    for (const auto& [k, v] : *t) {
        std::string name(k.str());
        std::string where = "match." + std::string(key) + "." + name + ": ";
        if (header_names) {
            if (!is_token(name)) {
                diag.error(&v, where + "not a valid header name");
                continue;
            }
            name = lower(name);
        } else if (name.empty()) {
            diag.error(&v, where + "needs a name");
            continue;
        }
        NamedTest test{name, {}};
        if (std::string err = parse_value_test(v, test.value); !err.empty()) {
            diag.error(&v, where + err);
            continue;
        }
        out.push_back(std::move(test));
    }
}

std::vector<std::string> read_codes(TableReader& r, std::string_view key,
                                    bool (*known)(std::string_view), const char* what) {
    std::vector<std::string> out;
    std::optional<std::vector<std::string>> list = r.strings(key);
    if (!list)
        return out;
    if (list->empty())
        r.error(key, "needs at least one code");
    for (std::string code : *list) {
        code = upper(code);
        if (known && !known(code))
            r.error(key, "unknown " + std::string(what) + " \"" + code + "\"");
        else
            out.push_back(code);
    }
    return out;
}

bool read_node(TableReader& r, BuildContext& ctx, MatchCondition::Node& n, int depth);

void read_cert(TableReader& parent, MatchCondition::Node& n) {
    const toml::node* v = parent.node("client_cert");
    if (!v)
        return;
    CertTest cert;
    if (const auto* b = v->as_boolean()) {
        cert.present = b->get();
        n.cert = std::move(cert);
        return;
    }
    const toml::table* t = v->as_table();
    if (!t) {
        parent.error("client_cert", "expected true/false or a table { subject = ..., san = ..., "
                                    "issuer = ..., fingerprint = ... }, got " +
                                        describe_value(*v));
        return;
    }
    TableReader r(*t, parent.diag(), "match.client_cert");
    cert.present = r.boolean("present");
    for (auto [key, slot] : {std::pair{"subject", &cert.subject},
                             {"issuer", &cert.issuer},
                             {"san", &cert.san},
                             {"fingerprint", &cert.fingerprint}}) {
        const toml::node* f = r.node(key);
        if (!f)
            continue;
        ValueTest test;
        if (std::string err = parse_value_test(*f, test, false); !err.empty()) {
            r.error(key, err);
            continue;
        }
        if (std::string_view(key) == "fingerprint" && test.kind == ValueTest::Kind::equals) {
            // "AB:CD:..." or "abcd...": compared as the lower-case hex the server records.
            std::string hex;
            for (char c : test.text)
                if (c != ':')
                    hex += static_cast<char>(c >= 'A' && c <= 'F' ? c + 32 : c);
            if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
                r.error(key, "expected the certificate's SHA-256 fingerprint (64 hex digits)");
            test.text = hex;
        }
        *slot = std::move(test);
    }
    r.finish();
    n.cert = std::move(cert);
}

bool read_node(TableReader& r, BuildContext& ctx, MatchCondition::Node& n, int depth) {
    const size_t errors = r.diag().count();
    if (auto methods = r.strings("methods")) {
        for (std::string m : *methods) {
            m = upper(m);
            if (!is_token(m))
                r.error("methods", "\"" + m + "\" is not a method name");
            else
                n.methods.push_back(m);
        }
    }
    read_named(r, "headers", true, n.headers);
    read_named(r, "query", false, n.query);
    read_named(r, "cookies", false, n.cookies);
    if (auto nets = r.strings("client_ip")) {
        n.has_client_ip = true;
        for (const std::string& text : *nets) {
            Cidr c;
            std::string warning;
            if (std::string err = parse_cidr(text, c, &warning); !err.empty())
                r.error("client_ip", err);
            else
                n.client_ip.push_back(c);
            if (!warning.empty())
                r.diag().warn(r.pos("client_ip"), "match.client_ip: " + warning);
        }
    }
    n.country = read_codes(r, "country", geo::known_country, "country code");
    n.continent = read_codes(r, "continent", geo::known_continent, "continent code");
    n.subdivision = read_codes(r, "subdivision", nullptr, "subdivision");
    if (const toml::node* a = r.node("asn")) {
        std::vector<const toml::node*> items;
        if (const toml::array* arr = a->as_array())
            for (const toml::node& e : *arr)
                items.push_back(&e);
        else
            items.push_back(a);
        for (const toml::node* e : items) {
            int64_t v = -1;
            if (const auto* i = e->as_integer())
                v = i->get();
            else if (const auto* s = e->as_string()) {
                std::string_view t = s->get();
                if (t.size() > 2 && (t.substr(0, 2) == "AS" || t.substr(0, 2) == "as"))
                    t.remove_prefix(2);
                if (!t.empty() && t.size() <= 10 &&
                    t.find_first_not_of("0123456789") == std::string_view::npos)
                    v = std::stoll(std::string(t));
            }
            if (v < 1 || v > 4294967295LL)
                r.diag().error(e, "match.asn: " + describe_value(*e) +
                                      " is not an AS number (1 to 4294967295, or \"AS3320\")");
            else
                n.asn.push_back(static_cast<uint32_t>(v));
        }
    }
    if ((!n.country.empty() || !n.continent.empty() || !n.subdivision.empty() || !n.asn.empty()) &&
        !geo::configured(ctx.config)) {
        for (const char* key : {"country", "continent", "subdivision", "asn"})
            if (r.has(key)) {
                r.error(key, "needs a geo database: add [geo] database = \"/path/GeoLite2-"
                             "City.mmdb\"");
                break;
            }
    }
    read_cert(r, n);
    if (auto protocols = r.strings("protocol")) {
        for (const std::string& p : *protocols) {
            if (p != "h1" && p != "h2" && p != "h3")
                r.error("protocol",
                        "unknown protocol \"" + p + "\" (expected \"h1\", \"h2\" or \"h3\")");
            else
                n.protocols.push_back(p);
        }
    }
    if (depth > 8) {
        if (r.has("not") || r.has("any"))
            r.error(r.has("not") ? "not" : "any", "nested too deep (8 levels at most)");
    } else {
        if (const toml::table* t = r.table("not")) {
            TableReader nr(*t, r.diag(), "match.not");
            n.negated = std::make_unique<MatchCondition::Node>();
            read_node(nr, ctx, *n.negated, depth + 1);
        }
        if (const toml::array* arr = r.array("any")) {
            if (arr->empty())
                r.error("any", "needs at least one table of conditions");
            for (const toml::node& e : *arr) {
                const toml::table* t = e.as_table();
                if (!t) {
                    r.diag().error(&e, "match.any: expected tables of conditions, got " +
                                           describe_value(e));
                    continue;
                }
                TableReader ar(*t, r.diag(), "match.any");
                n.any.emplace_back();
                read_node(ar, ctx, n.any.back(), depth + 1);
            }
        }
    }
    return r.diag().count() == errors;
}

} // namespace

std::unique_ptr<RouteCondition> build_match(TableReader& r, BuildContext& ctx) {
    auto root = std::make_unique<MatchCondition::Node>();
    if (!read_node(r, ctx, *root, 0))
        return nullptr;
    return std::make_unique<MatchCondition>(std::move(root));
}

} // namespace wraith::routing
