// limit_req, limit_conn and limit_rate (limits.h).
#include "convert/limits.h"

#include <algorithm>
#include <cctype>

namespace wraith::convert {

namespace {

using Kind = LimitZoneOut::Kind;

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit);
}

bool identifier_char(char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_';
}

// NGINX's size ("10m", "512K", "1g", "4096") in bytes; nullopt when it is not one.
std::optional<uint64_t> size_bytes(const std::string& text) {
    std::string digits = text;
    uint64_t unit = 1;
    if (!digits.empty() && !std::isdigit(static_cast<unsigned char>(digits.back()))) {
        char u = static_cast<char>(std::tolower(static_cast<unsigned char>(digits.back())));
        unit = u == 'k' ? 1024 : u == 'm' ? 1024 * 1024 : u == 'g' ? 1024 * 1024 * 1024 : 0;
        digits.pop_back();
    }
    if (!unit || !all_digits(digits) || digits.size() > 12)
        return std::nullopt;
    return std::stoull(digits) * unit;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    return s;
}

// "zone=NAME:SIZE" (SIZE optional for the caller to require) -> NAME, SIZE.
bool zone_arg(const std::string& a, std::string* name, std::string* size) {
    if (a.rfind("zone=", 0) != 0)
        return false;
    std::string v = a.substr(5);
    size_t colon = v.find(':');
    *name = v.substr(0, colon);
    *size = colon == std::string::npos ? "" : v.substr(colon + 1);
    return !name->empty();
}

bool name_taken(const Converter& c, const std::string& name) {
    return std::any_of(c.limit_zones.begin(), c.limit_zones.end(),
                       [&](const LimitZoneOut& z) { return z.name == name; });
}

// Wraith's zone names are letters, digits, '_' and '-' (at most 64); NGINX's any word. Two
// NGINX names that read the same here ("a.b", "a_b") get distinct ones.
std::string wraith_zone_name(Converter& c, const std::string& nginx, const SourceRef& at) {
    std::string base;
    for (char ch : nginx)
        base += identifier_char(ch) || ch == '-' ? ch : '_';
    if (base.size() > 56)
        base.resize(56);
    std::string out = base;
    for (int n = 2; name_taken(c, out); ++n)
        out = base + "_" + std::to_string(n);
    if (out != nginx)
        c.approx(at, "zone " + nginx + " is [limit." + out +
                         "] (Wraith's zone names are "
                         "letters, digits, '_' and '-', at most 64)");
    return out;
}

// The zone's size line: NGINX's size, within what a Wraith zone may have.
Line size_line(Converter& c, const std::string& text, const SourceRef& at) {
    std::optional<uint64_t> bytes = size_bytes(text);
    std::string value = lower(text);
    if (bytes && *bytes < 32 * 1024) {
        value = "32k";
        c.approx(at, "zone size " + text + " is \"32k\", the smallest Wraith zone");
    } else if (bytes && *bytes > (uint64_t(1) << 30)) {
        value = "1g";
        c.approx(at, "zone size " + text + " is \"1g\", the largest Wraith zone");
    }
    return Line{"size", Converter::quote(value), ""};
}

// A new [limit.NAME] for an NGINX zone; null (reported) when the name is taken.
LimitZoneOut* new_zone(Converter& c, const NginxDirective& d, const std::string& nginx_name,
                       Kind kind) {
    if (c.limit_zone_index.count(nginx_name) || c.limit_zones_failed.count(nginx_name)) {
        c.not_converted(d, "a second zone named " + nginx_name + " (NGINX refuses it too)");
        return nullptr;
    }
    LimitZoneOut z;
    z.name = wraith_zone_name(c, nginx_name, d.at);
    z.kind = kind;
    z.comments.push_back(d.name + " at " + d.at.text());
    c.limit_zone_index[nginx_name] = c.limit_zones.size();
    c.limit_zones.push_back(std::move(z));
    return &c.limit_zones.back();
}

// Reports `what` at `at` as not converted, once however many routes use it.
void not_converted_once(Converter& c, const SourceRef& at, const std::string& what,
                        const std::string& why) {
    if (c.limit_said.insert(at.text() + " " + what).second)
        c.not_converted_at(at, what, why);
}

void approx_once(Converter& c, const SourceRef& at, const std::string& text) {
    if (c.limit_said.insert(at.text() + " " + text).second)
        c.approx(at, text);
}

// The zone a use names, or null (reported once) when there is no such zone of that kind.
LimitZoneOut* used_zone(Converter& c, const std::string& name, Kind kind, const SourceRef& at,
                        const std::string& what) {
    auto it = c.limit_zone_index.find(name);
    if (it == c.limit_zone_index.end()) {
        not_converted_once(c, at, what,
                           c.limit_zones_failed.count(name)
                               ? "its zone " + name + " was not converted (see above)"
                               : "no zone " + name + " is defined (NGINX refuses it too)");
        return nullptr;
    }
    LimitZoneOut& z = c.limit_zones[it->second];
    if (z.kind != kind) {
        not_converted_once(c, at, what,
                           "zone " + name + " is not a " +
                               (kind == Kind::requests ? "limit_req_zone" : "limit_conn_zone"));
        return nullptr;
    }
    return &z;
}

// Settles what a use says on the zone: the first use sets it, a different later one is noted.
void use_zone(Converter& c, LimitZoneOut& z, const std::vector<Line>& lines, const SourceRef& at,
              const std::string& directive) {
    std::string use;
    for (const Line& l : lines)
        use += (use.empty() ? "" : ", ") + l.key + " = " + l.value;
    if (use.empty())
        use = "the defaults";
    if (z.use_at.line == 0) {
        z.use = use;
        z.use_at = at;
        for (const Line& l : lines)
            z.lines.push_back(l);
        return;
    }
    if (z.use != use)
        approx_once(c, at,
                    directive + ": Wraith sets these on the zone, [limit." + z.name +
                        "], for every route that lists it: " + z.use + " (from " + z.use_at.text() +
                        ") is used here too, not " + use);
}

// A connection zone with a constant key: Wraith answers 503, as NGINX does.
bool global_cap(const LimitZoneOut& z) {
    return std::any_of(z.lines.begin(), z.lines.end(),
                       [](const Line& l) { return l.key == "key"; });
}

// Whether a Wraith key is only fields, cookies and query arguments, which a request may lack.
bool may_be_empty(const std::string& key) {
    for (size_t i = 0; i < key.size();) {
        if (key[i] != '$')
            return false; // literal text
        const bool braced = i + 1 < key.size() && key[i + 1] == '{';
        size_t j = braced ? i + 2 : i + 1;
        while (j < key.size() && identifier_char(key[j]))
            ++j;
        std::string name = key.substr(braced ? i + 2 : i + 1, j - (braced ? i + 2 : i + 1));
        if (name != "args" && name.rfind("http_", 0) != 0 && name.rfind("cookie_", 0) != 0 &&
            name.rfind("arg_", 0) != 0)
            return false;
        i = braced ? j + 1 : j;
    }
    return true;
}

std::string connection_list_comment(const Converter& c) {
    return "limit_conn: Wraith counts connections at accept, for every site (" +
           std::to_string(c.server_limits.size()) + " zone" +
           (c.server_limits.size() == 1 ? "" : "s") + ")";
}

} // namespace

bool limit_key(const std::string& in, std::string* out, std::string* unknown, std::string* note) {
    out->clear();
    for (size_t i = 0; i < in.size();) {
        if (in[i] != '$') {
            out->push_back(in[i++]);
            continue;
        }
        const bool braced = i + 1 < in.size() && in[i + 1] == '{';
        size_t start = braced ? i + 2 : i + 1, j = start;
        while (j < in.size() && identifier_char(in[j]))
            ++j;
        std::string name = in.substr(start, j - start);
        if (braced) {
            if (j >= in.size() || in[j] != '}') {
                *unknown = in.substr(i);
                return false;
            }
            ++j;
        }
        std::string wraith;
        if (name == "binary_remote_addr" || name == "remote_addr") {
            wraith = "client_ip";
        } else if (name == "host" || name == "uri" || name == "request_uri" || name == "scheme" ||
                   name == "server_port") {
            wraith = name;
        } else if (name == "args" || name == "query_string") {
            wraith = "args";
        } else if (name == "request_method") {
            wraith = "method";
        } else if (name == "server_name" || name == "http_host") {
            wraith = "host";
            *note = "$" + name +
                    " is $host (the request's host name, lower-case, without the "
                    "port): " +
                    (name == "server_name" ? "one count per name a client asks for, not per "
                                             "server block"
                                           : "a name with and without a port count as one");
        } else if (name.rfind("http_", 0) == 0 || name.rfind("cookie_", 0) == 0 ||
                   name.rfind("arg_", 0) == 0) {
            wraith = name;
        } else {
            *unknown = "$" + name;
            return false;
        }
        // Braces when the text after it would read as part of the name.
        if (j < in.size() && identifier_char(in[j]))
            *out += "${" + wraith + "}";
        else
            *out += "$" + wraith;
        i = j;
    }
    return true;
}

// limit_req_zone KEY zone=NAME:SIZE rate=Nr/s [sync];
void h_limit_req_zone(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 3, 4))
        return;
    std::string name, size, rate;
    for (size_t i = 1; i < d.args.size(); ++i) {
        const std::string& a = d.args[i];
        if (a.rfind("zone=", 0) == 0)
            zone_arg(a, &name, &size);
        else if (a.rfind("rate=", 0) == 0)
            rate = a.substr(5);
        else if (a == "sync")
            c.approx(d.at, "sync (NGINX Plus): a Wraith zone is shared by the workers of one "
                           "server only");
    }
    std::string number = rate.size() > 3 ? rate.substr(0, rate.size() - 3) : "";
    std::string period = rate.size() > 3 ? rate.substr(rate.size() - 3) : "";
    if (name.empty() || size.empty() || !size_bytes(size)) {
        c.not_converted(d, "expected zone=NAME:SIZE");
        if (!name.empty())
            c.limit_zones_failed.insert(name);
        return;
    }
    if (!all_digits(number) || number.size() > 7 || (period != "r/s" && period != "r/m") ||
        std::stoull(number) == 0) {
        c.not_converted(d, "expected rate=Nr/s or rate=Nr/m");
        c.limit_zones_failed.insert(name);
        return;
    }
    std::string key, unknown, note;
    if (!limit_key(d.args[0], &key, &unknown, &note)) {
        c.not_converted(d, "key variable " + unknown +
                               ": a Wraith key takes the client address, the request's "
                               "host, URI, method, query, and $http_/$cookie_/$arg_NAME "
                               "(a map's or a set's variables have no equivalent)");
        c.limit_zones_failed.insert(name);
        return;
    }
    LimitZoneOut* z = new_zone(c, d, name, Kind::requests);
    if (!z)
        return;
    z->lines.push_back(Line{"rate", Converter::quote(number + "/" + period.substr(2)), ""});
    if (key != "$client_ip")
        z->lines.push_back(Line{"key", Converter::quote(key), ""});
    z->lines.push_back(size_line(c, size, d.at));
    if (!note.empty())
        c.approx(d.at, note);
    if (may_be_empty(key))
        c.approx(d.at, "NGINX does not limit a request whose key is empty (a missing field, "
                       "say); Wraith counts it under the client's address instead");
}

// limit_req zone=NAME [burst=N] [nodelay | delay=N];
void h_limit_req(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 3))
        return;
    LimitReq r;
    r.at = d.at;
    r.written = d.name;
    for (const std::string& a : d.args)
        r.written += " " + a;
    std::string size;
    for (const std::string& a : d.args) {
        if (zone_arg(a, &r.zone, &size) && size.empty())
            continue;
        if (a.rfind("burst=", 0) == 0 && all_digits(a.substr(6)) && a.size() <= 13) {
            r.burst = std::min<uint64_t>(std::stoull(a.substr(6)), 1000000);
        } else if (a == "nodelay") {
            r.nodelay = true;
        } else if (a.rfind("delay=", 0) == 0 && all_digits(a.substr(6)) && a.size() <= 13) {
            r.delay = std::stoull(a.substr(6));
        } else {
            c.not_converted(d, "unexpected " + a);
            return;
        }
    }
    if (r.zone.empty()) {
        c.not_converted(d, "expected zone=NAME");
        return;
    }
    s.limit_req.at(s.level).push_back(r);
}

void h_limit_req_status(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    const std::string& v = d.args[0];
    if (!all_digits(v) || v.size() != 3 || v < "400" || v > "599") {
        c.not_converted(d, "expected a status from 400 to 599");
        return;
    }
    s.limit_req_status = std::stoi(v);
}

void h_limit_req_dry_run(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.limit_req_dry_run = d.args[0] == "on";
}

// limit_conn_zone KEY zone=NAME:SIZE;
void h_limit_conn_zone(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 2, 2))
        return;
    std::string name, size;
    if (!zone_arg(d.args[1], &name, &size) || size.empty() || !size_bytes(size)) {
        c.not_converted(d, "expected zone=NAME:SIZE");
        if (!name.empty())
            c.limit_zones_failed.insert(name);
        return;
    }
    const std::string& k = d.args[0];
    std::string key;
    if (k == "$binary_remote_addr" || k == "$remote_addr") {
        key = "$client_ip";
    } else if (k == "$server_name" || k.find('$') == std::string::npos) {
        key = "all";
    } else {
        c.not_converted(d, "key " + k +
                               ": Wraith counts connections at accept, per client "
                               "address or all together");
        c.limit_zones_failed.insert(name);
        return;
    }
    LimitZoneOut* z = new_zone(c, d, name, Kind::connections);
    if (!z)
        return;
    if (key != "$client_ip")
        z->lines.push_back(Line{"key", Converter::quote(key), ""});
    z->lines.push_back(size_line(c, size, d.at));
    if (k == "$server_name")
        c.approx(d.at, "key $server_name is one count for every connection to the server "
                       "(NGINX: one per server block)");
    z->comments.push_back("NGINX counted connections with a request in progress (each "
                          "HTTP/2 stream as one); Wraith counts open connections, idle "
                          "keep-alive ones too, and refuses over the limit at accept");
}

// limit_conn NAME N;
void h_limit_conn(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 2))
        return;
    const std::string& n = d.args[1];
    if (!all_digits(n) || n.size() > 7 || std::stoull(n) == 0 || std::stoull(n) > 1000000) {
        c.not_converted(d, "expected a number of connections from 1 to 1000000");
        return;
    }
    s.limit_conn.at(s.level).push_back(LimitConn{d.args[0], std::stoull(n), d.at});
}

void h_limit_conn_status(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    const std::string& v = d.args[0];
    if (!all_digits(v) || v.size() != 3 || v < "400" || v > "599") {
        c.not_converted(d, "expected a status from 400 to 599");
        return;
    }
    s.limit_conn_status = std::stoi(v);
}

void h_limit_conn_dry_run(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.limit_conn_dry_run = d.args[0] == "on";
    s.limit_conn_dry_run_at = d.at;
}

void h_limit_rate(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    if (!size_bytes(d.args[0])) {
        c.not_converted(d, d.args[0].find('$') != std::string::npos
                               ? "variables in limit_rate: no Wraith equivalent"
                               : "expected a size");
        return;
    }
    s.limit_rate = d.args[0];
    s.limit_rate_at = d.at;
}

void h_limit_rate_after(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    if (!size_bytes(d.args[0])) {
        c.not_converted(d, "expected a size");
        return;
    }
    s.limit_rate_after = d.args[0];
}

namespace {

// The bandwidth zone for limit_rate RATE (and limit_rate_after AFTER): one per pair.
std::string bandwidth_zone(Converter& c, const Scope& s) {
    uint64_t rate = *size_bytes(s.limit_rate);
    std::optional<uint64_t> after = size_bytes(s.limit_rate_after);
    std::string base = "bandwidth_" + lower(s.limit_rate);
    if (after && *after)
        base += "_after_" + lower(s.limit_rate_after);
    std::string name = base;
    for (int n = 2;; ++n) {
        auto it = std::find_if(c.limit_zones.begin(), c.limit_zones.end(),
                               [&](const LimitZoneOut& z) { return z.name == name; });
        if (it == c.limit_zones.end())
            break;
        if (it->kind == Kind::bandwidth)
            return it->name; // the same pair: shared
        name = base + "_" + std::to_string(n);
    }
    LimitZoneOut z;
    z.name = name;
    z.kind = Kind::bandwidth;
    z.comments.push_back("limit_rate " + s.limit_rate + " at " + s.limit_rate_at.text());
    z.comments.push_back("paces each connection: the streams of an HTTP/2 or HTTP/3 connection "
                         "share it (NGINX: each request its own)");
    std::string value = lower(s.limit_rate);
    if (rate < 1024) {
        value = "1k";
        c.approx(s.limit_rate_at, "limit_rate " + s.limit_rate +
                                      " is \"1k\", the least Wraith "
                                      "paces at");
    }
    z.lines.push_back(Line{"bandwidth", Converter::quote(value), ""});
    if (after && *after)
        z.lines.push_back(Line{"bandwidth_after", Converter::quote(lower(s.limit_rate_after)), ""});
    c.limit_zones.push_back(std::move(z)); // not in limit_zone_index: no directive names it
    return name;
}

} // namespace

void limit_keys(Converter& c, const Scope& s, RouteOut& out) {
    // NGINX's return answers in the rewrite phase, before any limit is checked.
    if (out.handler == "redirect" || out.handler == "respond")
        return;
    std::vector<std::string> names;
    for (const LimitReq& r : s.limit_req.value) {
        std::string what = r.written + ";";
        LimitZoneOut* z = used_zone(c, r.zone, Kind::requests, r.at, what);
        if (!z)
            continue;
        std::vector<Line> use;
        // Without nodelay NGINX delays what is within the burst; with no burst, or a delay=
        // at or past it, nothing is delayed.
        const bool delays = !r.nodelay && r.burst > 0 && (!r.delay || *r.delay < r.burst);
        if (r.burst)
            use.push_back(Line{"burst", std::to_string(r.burst), ""});
        if (s.limit_req_dry_run)
            use.push_back(Line{"mode", "\"dry_run\"", ""});
        else if (delays)
            use.push_back(Line{"mode", "\"delay\"", ""});
        if (delays && r.delay && *r.delay)
            use.push_back(Line{"delay_after", std::to_string(*r.delay), ""});
        if (s.limit_req_status)
            use.push_back(Line{"status", std::to_string(*s.limit_req_status), ""});
        else if (c.limit_said.insert("503:" + z->name).second)
            z->comments.push_back("NGINX answered 503 (limit_req_status); Wraith answers 429 "
                                  "with Retry-After: add status = 503 to keep NGINX's");
        use_zone(c, *z, use, r.at, "limit_req zone=" + r.zone);
        if (std::find(names.begin(), names.end(), z->name) == names.end())
            names.push_back(z->name);
    }
    for (const LimitConn& l : s.limit_conn.value) {
        std::string what = "limit_conn " + l.zone + " " + std::to_string(l.connections) + ";";
        if (s.limit_conn_dry_run) {
            not_converted_once(c, l.at, what,
                               "limit_conn_dry_run on: Wraith's connection limits have no dry "
                               "run; the limit is left out");
            continue;
        }
        LimitZoneOut* z = used_zone(c, l.zone, Kind::connections, l.at, what);
        if (!z)
            continue;
        std::vector<Line> use{Line{"connections", std::to_string(l.connections), ""}};
        if (s.limit_conn_status)
            use.push_back(Line{"status", std::to_string(*s.limit_conn_status), ""});
        else if (c.limit_said.insert("503:" + z->name).second && !global_cap(*z))
            z->comments.push_back("NGINX answered 503 (limit_conn_status); Wraith answers 429 "
                                  "with Retry-After: add status = 503 to keep NGINX's");
        use_zone(c, *z, use, l.at, "limit_conn " + l.zone);
        if (s.limit_conn.level > 0)
            approx_once(c, l.at,
                        "limit_conn in a server or location block: Wraith counts "
                        "connections at accept, before a site or route is known, so "
                        "zone " +
                            l.zone + " limits every connection to the server");
        if (std::find(c.server_limits.begin(), c.server_limits.end(), z->name) !=
            c.server_limits.end())
            continue;
        if (c.server_limits.size() == 4) {
            not_converted_once(c, l.at, what, "Wraith's [server] limit takes 4 connection zones");
            continue;
        }
        c.server_limits.push_back(z->name);
        c.server["limit"] =
            Line{"limit", Converter::quote_list(c.server_limits), connection_list_comment(c)};
    }
    if (!s.limit_rate.empty() && size_bytes(s.limit_rate).value_or(0) > 0)
        names.push_back(bandwidth_zone(c, s));
    if (names.size() > 16) {
        out.comments.push_back("approximation: Wraith checks at most 16 request zones; the "
                               "rest are left out");
        names.resize(16);
    }
    if (!names.empty())
        out.extra.push_back("limit = " + Converter::quote_list(names));
}

} // namespace wraith::convert
