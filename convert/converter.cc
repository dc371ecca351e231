// The walk: main -> events/http -> upstream/server -> location, with NGINX's inheritance
// (a child Scope starts as a copy of its parent's), then sites, listeners and routes.
#include <algorithm>
#include <cctype>
#include <set>
#include <unistd.h>

#include "convert/converter.h"
#include "convert/routes.h"

namespace wraith::convert {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool all_digits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit);
}

// Digits as a TOML integer: no leading zeros ("045" is not TOML).
std::string number(const std::string& digits) {
    size_t first = digits.find_first_not_of('0');
    return first == std::string::npos ? "0" : digits.substr(first);
}

std::string regex_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos)
            out += '\\';
        out += c;
    }
    return out;
}

} // namespace

bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (!len || i + len > s.size())
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false; // overlong, out of range, surrogate
        i += len;
    }
    return true;
}

std::string utf8_or_replaced(std::string_view s) {
    if (valid_utf8(s))
        return std::string(s);
    std::string out;
    for (size_t i = 0; i < s.size();) {
        // Keep a valid sequence, replace each byte that starts none.
        size_t len = 4;
        while (len > 0 && !(i + len <= s.size() && valid_utf8(s.substr(i, len))))
            --len;
        if (len == 0) {
            out += "\xef\xbf\xbd"; // U+FFFD
            ++i;
        } else {
            out.append(s.substr(i, len));
            i += len;
        }
    }
    return out;
}

namespace {

// TOML files are UTF-8, and NGINX takes any bytes: a directive whose name or arguments are not
// UTF-8 is reported and left out (with its block) before anything else looks at it.
void drop_non_utf8(std::vector<NginxDirective>& list, Converter& c) {
    for (auto it = list.begin(); it != list.end();) {
        bool ok = valid_utf8(it->name);
        for (const auto& a : it->args)
            ok = ok && valid_utf8(a);
        if (!ok) {
            NginxDirective shown = *it;
            shown.name = utf8_or_replaced(shown.name);
            for (auto& a : shown.args)
                a = utf8_or_replaced(a);
            c.not_converted(shown, "not valid UTF-8: a wraith.toml cannot hold it");
            it = list.erase(it);
            continue;
        }
        drop_non_utf8(it->children, c);
        ++it;
    }
}

} // namespace

void Converter::approx(const SourceRef& at, const std::string& text) {
    result_.approximations.push_back(at.text() + ": " + text);
}

void Converter::not_converted(const NginxDirective& d, const std::string& why) {
    std::string text = d.name;
    for (const auto& a : d.args) {
        if (text.size() > 80)
            break;
        text += " " + a;
    }
    if (text.size() > 80)
        text = text.substr(0, 77) + "...";
    result_.not_converted.push_back(d.at.text() + ": " + text + (d.block ? " {...}" : ";") +
                                    " -- " + why);
}

void Converter::not_converted_at(const SourceRef& at, const std::string& what,
                                 const std::string& why) {
    result_.not_converted.push_back(at.text() + ": " + what + " -- " + why);
}

void Converter::ignored(const NginxDirective& d, const std::string& why) {
    ignored_.push_back(d.at.text() + ": " + d.name + ": " + why);
}

bool Converter::check_args(const NginxDirective& d, size_t lo, size_t hi) {
    if (d.args.size() >= lo && d.args.size() <= hi)
        return true;
    not_converted(d, "invalid number of arguments");
    return false;
}

std::optional<uint64_t> Converter::parse_time(const std::string& text) const {
    // nginx: a sequence of NUMBER[UNIT], units ms s m h d w M y; a bare number is seconds.
    if (text.empty() || text.size() > 32)
        return std::nullopt;
    uint64_t total = 0;
    size_t i = 0;
    while (i < text.size()) {
        size_t start = i;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
            ++i;
        if (i == start || i - start > 12)
            return std::nullopt;
        uint64_t n = std::stoull(text.substr(start, i - start));
        std::string unit;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
            unit += text[i++];
        uint64_t mult = unit == "ms"                ? 1
                        : unit == "" || unit == "s" ? 1000
                        : unit == "m"               ? 60000
                        : unit == "h"               ? 3600000
                        : unit == "d"               ? 86400000
                        : unit == "w"               ? 604800000ull
                        : unit == "M"               ? 2592000000ull
                        : unit == "y"               ? 31536000000ull
                                                    : 0;
        if (!mult || n > (1ull << 40))
            return std::nullopt;
        total += n * mult;
        if (unit.empty() && i < text.size())
            return std::nullopt;
    }
    return total;
}

std::string Converter::duration(uint64_t ms) {
    if (ms % 1000 == 0)
        return quote(std::to_string(ms / 1000) + "s");
    return quote(std::to_string(ms) + "ms");
}

std::string Converter::quote(const std::string& raw) {
    std::string s = utf8_or_replaced(raw);
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string Converter::quote_list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i)
        out += (i ? ", " : "") + quote(v[i]);
    return out + "]";
}

std::string Converter::inline_table(const std::vector<std::string>& items) {
    std::string out = "{ ";
    std::vector<std::string> keys;
    for (const auto& item : items) {
        std::string key = item.substr(0, item.find(" = "));
        if (std::find(keys.begin(), keys.end(), key) != keys.end())
            continue;
        out += (keys.empty() ? "" : ", ") + item;
        keys.push_back(key);
    }
    return out + " }";
}

void Converter::apply(Scope& scope, const NginxDirective& d, unsigned ctx) {
    context = ctx;
    const DirectiveSpec* spec = find_directive(d.name);
    if (!spec) {
        not_converted(d, "unknown to the converter (a module's directive?)");
        return;
    }
    if (!(spec->contexts & ctx) && !(ctx == kIf && (spec->contexts & kLocation)))
        approx(d.at, d.name + " is not valid here in NGINX either; converted as written");
    if (spec->handler)
        spec->handler(*this, scope, d);
    else if (spec->not_yet)
        not_converted(d, spec->not_yet);
    else
        ignored(d, spec->ignored ? spec->ignored : "not needed");
}

ConvertResult Converter::run(const NginxConf& conf, const std::string& main_file) {
    main_file_ = main_file;
    size_t slash = main_file.rfind('/');
    conf_dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : main_file.substr(0, slash);
    if (!conf.ok()) {
        result_.errors = conf.errors;
        return result_;
    }
    std::vector<NginxDirective> top = conf.top;
    drop_non_utf8(top, *this);
    walk_main(top);
    result_.toml = render();
    result_.ok = true;
    return result_;
}

void Converter::walk_main(const std::vector<NginxDirective>& top) {
    Scope none;
    bool seen_http = false;
    for (const auto& d : top) {
        if (!d.block) {
            apply(none, d, kMain);
            continue;
        }
        if (d.name == "events") {
            for (const auto& e : d.children)
                if (e.block)
                    not_converted(e, "unknown block");
                else
                    apply(none, e, kEvents);
        } else if (d.name == "http") {
            if (seen_http)
                not_converted(d, "a second http block");
            else
                walk_http(d);
            seen_http = true;
        } else if (d.name == "stream" || d.name == "mail") {
            not_converted(d, "TCP/UDP and mail proxying: Wraith serves HTTP only");
        } else {
            not_converted(d, "unknown block");
        }
    }
    if (!seen_http)
        header_comments_.push_back("the NGINX configuration has no http block: nothing to "
                                   "serve was converted");
}

std::string Converter::conf_path(const std::string& p) const {
    if (p.empty() || p[0] == '/')
        return p;
    return conf_dir_ + "/" + p;
}

// Debian's nginx is built with prefix /usr/share/nginx: a relative root is below it.
std::string Converter::prefix_path(const std::string& p) const {
    if (p.empty() || p[0] == '/')
        return p;
    return "/usr/share/nginx/" + p;
}

void Converter::walk_http(const NginxDirective& http) {
    Scope hs;
    hs.level = 0;
    std::vector<const NginxDirective*> servers;
    // Non-block directives first: at http level NGINX applies them wherever they stand.
    size_t approx_before = result_.approximations.size();
    for (const auto& d : http.children)
        if (!d.block)
            apply(hs, d, kHttp);
    for (size_t i = approx_before; i < result_.approximations.size(); ++i)
        header_comments_.push_back("approximation: " + result_.approximations[i]);
    for (const auto& d : http.children) {
        if (!d.block)
            continue;
        if (d.name == "server") {
            servers.push_back(&d);
        } else if (d.name == "upstream") {
            walk_upstream(d);
        } else if (d.name == "types") {
            if (!mime_types.empty()) {
                approx(d.at, "a second types block: Wraith reads one mime.types file (" +
                                 mime_types + ")");
            } else if (d.at.file != main_file_) {
                mime_types = d.at.file; // Wraith reads NGINX's mime.types syntax
                mime_types_at = d.at;
            } else {
                not_converted(d, "types inline in the main file: move them to a file in "
                                 "NGINX's mime.types syntax and set server.mime_types");
            }
        } else if (d.name == "map" && d.args.size() == 2 && d.args[0] == "$http_upgrade") {
            // The WebSocket idiom ($connection_upgrade for proxy_set_header Connection).
            ignored(d, "Wraith's proxy passes WebSocket upgrades itself");
        } else if (d.name == "map") {
            not_converted(d, "map: Wraith sets no variables; route on the value with match = "
                             "{ headers = ..., query = ..., cookies = ... } on a route");
        } else if (d.name == "geo") {
            not_converted(d, "geo: Wraith sets no variables; test the address where the "
                             "variable is used: allow/deny, or match = { client_ip = [...] }");
        } else if (d.name == "split_clients") {
            not_converted(d, "split_clients: use proxy = { split = [...] } on the route");
        } else {
            not_converted(d, "unknown block");
        }
    }
    if (hs.access_log.set)
        http_access_log_ = hs.access_log;

    // Servers: read each one, then settle host names claimed twice (NGINX keeps them apart by
    // port; Wraith chooses a site by name alone), then make sites in file order (the first
    // one is the default when none says so, in both).
    std::vector<ServerInfo> infos;
    for (const NginxDirective* s : servers)
        infos.push_back(read_server(*s, hs));
    std::map<std::string, size_t> claimed;
    for (size_t i = 0; i < infos.size(); ++i) {
        std::vector<std::string> kept;
        for (const auto& h : infos[i].hosts) {
            auto it = claimed.find(lower(h));
            if (it == claimed.end()) {
                claimed[lower(h)] = i;
                kept.push_back(h);
                continue;
            }
            ServerInfo& first = infos[it->second];
            // The usual pair: a plain server redirecting to HTTPS, and the HTTPS one. The
            // content wins; the redirect cannot be expressed.
            bool take_over = infos[i].has_tls_listener && !first.has_tls_listener;
            ServerInfo& loser = take_over ? first : infos[i];
            ServerInfo& winner = take_over ? infos[i] : first;
            not_converted(*loser.block,
                          "server name " + h + " is also served by the server at " +
                              winner.block->at.text() +
                              ": Wraith chooses a site by host name only, not by port, so "
                              "that server answers it on every listener" +
                              (loser.has_plain_listener && !loser.has_tls_listener
                                   ? " (this server's answers on plain HTTP, e.g. a redirect "
                                     "to HTTPS, are lost)"
                                   : ""));
            if (take_over) {
                auto& fh = first.hosts;
                fh.erase(std::remove_if(fh.begin(), fh.end(),
                                        [&](const std::string& x) { return lower(x) == lower(h); }),
                         fh.end());
                it->second = i;
                kept.push_back(h);
            }
        }
        infos[i].hosts = kept;
    }
    for (size_t i = 0; i < infos.size(); ++i) {
        emit_site(infos[i]);
        // What reading this server's own directives approximated, as comments on its site.
        for (const auto& a : infos[i].approximations)
            sites_.back().comments.push_back("approximation: " + a);
    }
    std::set<std::string> union_keys;
    for (const auto& l : listens_)
        union_keys.insert(l.address);
    for (size_t i = 0; i < infos.size(); ++i) {
        std::set<std::string> mine(infos[i].listen_keys.begin(), infos[i].listen_keys.end());
        if (mine != union_keys && i < sites_.size())
            sites_[i].comments.push_back(
                "approximation: NGINX answered this server only on its own listen "
                "addresses; Wraith sites answer on every [[listen]]");
    }
}

void Converter::set_upstream(UpstreamOut& u, const std::string& key, const std::string& value,
                             const SourceRef& at) {
    for (auto& l : u.lines) {
        if (l.key != key)
            continue;
        if (l.value != value)
            approx(at, "upstream " + u.name + ": " + key + " is per upstream in Wraith; " +
                           l.value + " from an earlier location is kept, not " + value);
        return;
    }
    u.lines.push_back(Line{key, value, at.text()});
}

std::string Converter::implicit_upstream(const std::string& server, bool tls, const SourceRef& at) {
    UpstreamOut u;
    do
        u.name = "route_" + std::to_string(++implicit_upstreams_);
    while (upstream_index.count(u.name));
    u.comments.push_back("made for proxy_pass at " + at.text());
    u.lines.push_back(Line{"servers", quote_list({server}), ""});
    if (tls)
        u.lines.push_back(Line{"tls", "{ verify = false }",
                               "nginx does not verify upstream certificates unless "
                               "proxy_ssl_verify is on; set verify = true"});
    upstream_index[u.name] = upstreams.size();
    upstreams.push_back(std::move(u));
    return upstreams.back().name;
}

void Converter::walk_upstream(const NginxDirective& up) {
    if (up.args.size() != 1) {
        not_converted(up, "invalid upstream");
        return;
    }
    if (upstream_index.count(up.args[0])) {
        not_converted(up, "a second upstream of that name (NGINX refuses it too)");
        return;
    }
    UpstreamOut u;
    u.name = up.args[0];
    std::string servers = "[";
    int count = 0;
    std::string max_fails, fail_timeout;
    for (const auto& d : up.children) {
        context = kUpstream;
        if (d.name == "server" && !d.args.empty()) {
            std::string addr = d.args[0];
            if (addr.rfind("unix:", 0) != 0) {
                bool has_port = addr.back() != ']' && addr.find(':') != std::string::npos &&
                                (addr[0] != '[' || addr.find("]:") != std::string::npos);
                if (!has_port)
                    addr += ":80";
            }
            std::vector<std::string> opts;
            for (size_t i = 1; i < d.args.size(); ++i) {
                const std::string& a = d.args[i];
                auto eq = a.find('=');
                std::string k = a.substr(0, eq),
                            v = eq == std::string::npos ? "" : a.substr(eq + 1);
                if ((k == "weight" || k == "max_conns") && all_digits(v)) {
                    // Found by fuzz_nginx_conf: 23 digits are no TOML integer.
                    if (number(v).size() < 10)
                        opts.push_back(k + " = " + number(v));
                    else
                        approx(d.at, "server parameter " + a + ": too large; left out");
                } else if (k == "backup")
                    opts.push_back("backup = true");
                else if (k == "down")
                    opts.push_back("down = true");
                else if (k == "max_fails") {
                    if (!max_fails.empty() && max_fails != v)
                        approx(d.at,
                               "max_fails is per upstream in Wraith: " + max_fails + " is used");
                    if (max_fails.empty())
                        max_fails = v;
                } else if (k == "fail_timeout") {
                    if (!fail_timeout.empty() && fail_timeout != v)
                        approx(d.at, "fail_timeout is per upstream in Wraith: " + fail_timeout +
                                         " is used");
                    if (fail_timeout.empty())
                        fail_timeout = v;
                } else {
                    approx(d.at, "server parameter " + a + " has no Wraith equivalent");
                }
            }
            servers += count++ ? ", " : "";
            if (opts.empty()) {
                servers += quote(addr);
            } else {
                opts.insert(opts.begin(), "address = " + quote(addr));
                servers += inline_table(opts);
            }
        } else if (d.name == "least_conn") {
            u.lines.push_back(Line{"balance", "\"least_conn\"", d.at.text()});
        } else if (d.name == "ip_hash") {
            u.lines.push_back(Line{"balance", "\"hash\"", d.at.text()});
            u.lines.push_back(Line{"hash_key", "\"client_ip\"", ""});
            approx(d.at, "ip_hash hashes the whole client address (NGINX: the first three "
                         "bytes of an IPv4 address), consistently");
        } else if (d.name == "hash" && !d.args.empty()) {
            const std::string& k = d.args[0];
            std::string key;
            if (k == "$remote_addr" || k == "$binary_remote_addr")
                key = "client_ip";
            else if (k == "$request_uri")
                key = "uri";
            else if (k.rfind("$http_", 0) == 0)
                key = "header:" + k.substr(6);
            else if (k.rfind("$cookie_", 0) == 0)
                key = "cookie:" + k.substr(8);
            if (key.empty()) {
                not_converted(d, "hash key " + k +
                                     ": Wraith hashes the client address, the "
                                     "URI, a header or a cookie");
                continue;
            }
            if (key.rfind("header:", 0) == 0)
                std::replace(key.begin(), key.end(), '_', '-');
            u.lines.push_back(Line{"balance", "\"hash\"", d.at.text()});
            u.lines.push_back(Line{"hash_key", quote(key), ""});
            if (d.args.size() < 2 || d.args[1] != "consistent")
                approx(d.at, "hash without consistent: Wraith's hashing is always consistent");
        } else if (d.name == "random") {
            u.lines.push_back(Line{"balance", "\"random_two\"", d.at.text()});
            if (d.args.empty() || d.args[0] != "two")
                approx(d.at, "random: Wraith picks the less busy of two random servers");
        } else if (d.name == "keepalive" && d.args.size() == 1 && all_digits(d.args[0]) &&
                   d.args[0].size() < 7) {
            u.lines.push_back(Line{"keepalive", number(d.args[0]), d.at.text()});
        } else if (d.name == "keepalive_requests" && d.args.size() == 1 && all_digits(d.args[0]) &&
                   d.args[0].size() < 10) {
            u.lines.push_back(Line{"keepalive_requests", number(d.args[0]), d.at.text()});
        } else if (d.name == "keepalive_timeout" && d.args.size() == 1) {
            if (auto ms = parse_time(d.args[0]))
                u.lines.push_back(Line{"keepalive_timeout", duration(*ms), d.at.text()});
        } else if (d.name == "zone") {
            ignored(d, "Wraith's upstream state is always shared by the workers");
        } else {
            not_converted(d, "no Wraith equivalent in [upstream]");
        }
    }
    if (!count) {
        not_converted(up, "an upstream without servers");
        return;
    }
    u.lines.insert(u.lines.begin(), Line{"servers", servers + "]", up.at.text()});
    if (all_digits(max_fails) && max_fails.size() < 5 && max_fails != "1")
        u.lines.push_back(Line{"max_fails", number(max_fails), ""});
    if (!fail_timeout.empty())
        if (auto ms = parse_time(fail_timeout); ms && *ms != 10000)
            u.lines.push_back(Line{"fail_timeout", duration(*ms), ""});
    upstream_index[u.name] = upstreams.size();
    upstreams.push_back(std::move(u));
}

void Converter::read_listen(ServerInfo& info, const NginxDirective& d, bool http2, bool http3) {
    if (d.args.empty()) {
        not_converted(d, "invalid listen");
        return;
    }
    std::string a = d.args[0];
    if (a.rfind("unix:", 0) == 0) {
        not_converted(d, "listening on a Unix socket: Wraith listens on IP addresses");
        return;
    }
    std::string host, port;
    if (a[0] == '[') {
        size_t close = a.find(']');
        if (close == std::string::npos) {
            not_converted(d, "invalid address");
            return;
        }
        host = a.substr(0, close + 1);
        port = close + 2 <= a.size() && a[close + 1] == ':' ? a.substr(close + 2) : "80";
    } else if (all_digits(a)) {
        host = "0.0.0.0";
        port = a;
    } else {
        size_t colon = a.rfind(':');
        host = colon == std::string::npos ? a : a.substr(0, colon);
        port = colon == std::string::npos ? "80" : a.substr(colon + 1);
        if (host == "*")
            host = "0.0.0.0";
        if (host == "localhost") {
            host = "127.0.0.1";
            approx(d.at, "listen localhost: Wraith listens on addresses; 127.0.0.1 is used");
        }
    }
    std::string address = host + ":" + port;
    ListenOut l;
    l.address = address;
    bool v6 = host[0] == '[';
    if (v6)
        l.ipv6_only = true; // nginx's default for [::] is ipv6only=on
    for (size_t i = 1; i < d.args.size(); ++i) {
        const std::string& o = d.args[i];
        if (o == "ssl")
            l.tls = true;
        else if (o == "http2")
            http2 = true;
        else if (o == "quic" || o == "http3")
            http3 = true;
        else if (o == "default_server" || o == "default")
            info.is_default = true;
        else if (o == "ipv6only=on")
            l.ipv6_only = true;
        else if (o == "ipv6only=off")
            l.ipv6_only = false;
        else if (o.rfind("backlog=", 0) == 0 && all_digits(o.substr(8)) && o.size() <= 13)
            l.backlog = std::clamp(std::stoi(o.substr(8)), 1, 65535);
        else if (o == "reuseport" || o == "deferred" || o == "bind" ||
                 o.rfind("so_keepalive", 0) == 0 || o.rfind("rcvbuf=", 0) == 0 ||
                 o.rfind("sndbuf=", 0) == 0 || o == "fastopen")
            l.comments.push_back(o + ": not needed (the master binds every socket once)");
        else if (o == "proxy_protocol")
            not_converted(d, "proxy_protocol: no Wraith equivalent yet");
        else
            approx(d.at, "listen option " + o + " has no Wraith equivalent");
    }
    if (l.tls) {
        if (http3)
            l.protocols.push_back("h3");
        if (http2)
            l.protocols.push_back("h2");
        l.protocols.push_back("http/1.1");
        if (!http3)
            l.comments.push_back("add \"h3\" (and \"h2\") to protocols for HTTP/3: NGINX did "
                                 "not speak it here");
    } else {
        l.protocols.push_back("http/1.1");
        if (http2)
            l.protocols.push_back("h2c");
        if (http3)
            approx(d.at, "quic without ssl: HTTP/3 needs TLS");
    }
    (l.tls ? info.has_tls_listener : info.has_plain_listener) = true;
    info.listen_keys.push_back(address);
    for (auto& existing : listens_) {
        if (existing.address != address)
            continue;
        if (existing.tls != l.tls)
            approx(d.at, address + " is TLS in one server and not in another; the first wins");
        for (const auto& p : l.protocols)
            if (std::find(existing.protocols.begin(), existing.protocols.end(), p) ==
                existing.protocols.end())
                existing.protocols.insert(existing.protocols.begin(), p);
        return;
    }
    listens_.push_back(std::move(l));
}

void Converter::read_server_name(ServerInfo& info, const NginxDirective& d) {
    for (const auto& raw : d.args) {
        std::string n = raw;
        if (n.empty() || n == "_" || n == "\"\"")
            continue;
        if (n == "$hostname") {
            char buf[256] = {};
            gethostname(buf, sizeof(buf) - 1);
            n = buf;
        }
        if (n[0] == '~') {
            info.hosts.push_back(n);
        } else if (n[0] == '.') {
            info.hosts.push_back(lower(n.substr(1)));
            info.hosts.push_back("*" + lower(n));
        } else if (n.size() > 2 && n.compare(n.size() - 2, 2, ".*") == 0) {
            info.hosts.push_back("~^" + regex_escape(lower(n.substr(0, n.size() - 2))) +
                                 "\\.[^.]+(\\.[^.]+)*$");
        } else if (n.find('*') != std::string::npos && n.rfind("*.", 0) != 0) {
            not_converted(d, "server name " + n + ": a wildcard in the middle");
        } else {
            info.hosts.push_back(lower(n));
        }
    }
}

ServerInfo Converter::read_server(const NginxDirective& server, const Scope& http_scope) {
    size_t approx_before = result_.approximations.size();
    ServerInfo info;
    info.block = &server;
    info.scope = http_scope;
    Scope& s = info.scope;
    s.level = 1;
    bool http2 = false, http3 = false;
    for (const auto& d : server.children) {
        if (d.name == "http2" && !d.block && !d.args.empty())
            http2 = d.args[0] == "on";
        if (d.name == "http3" && !d.block && !d.args.empty())
            http3 = d.args[0] == "on";
    }
    for (const auto& d : server.children) {
        if (d.block)
            continue;
        if (d.name == "listen") {
            read_listen(info, d, http2, http3);
        } else if (d.name == "server_name") {
            read_server_name(info, d);
        } else if (d.name == "http2" || d.name == "http3" || d.name == "quic_retry" ||
                   d.name == "ssl") {
            if (d.name == "ssl")
                approx(d.at, "ssl on: use listen ... ssl; the server's listeners are TLS");
        } else {
            apply(s, d, kServer);
        }
    }
    if (info.listen_keys.empty()) {
        // nginx's default: *:80 (or *:8000 when not root)
        NginxDirective fake;
        fake.name = "listen";
        fake.args = {"80"};
        fake.at = server.at;
        read_listen(info, fake, http2, http3);
    }
    info.approximations.assign(result_.approximations.begin() + approx_before,
                               result_.approximations.end());
    return info;
}

void Converter::emit_site(ServerInfo& info) {
    SiteOut site;
    site.at = info.block->at;
    site.is_default = info.is_default;
    site.comments.push_back("server at " + info.block->at.text());
    if (info.hosts.empty()) {
        // A server without a name (or "_"): NGINX reaches it as a default server only.
        int n = unnamed_sites_++;
        site.hosts.push_back(n == 0 ? "~^$" : "~^$(?:" + std::to_string(n) + ")?");
        site.comments.push_back("no server_name: matches only requests without a host name; "
                                "reached as the default site");
    } else {
        site.hosts = info.hosts;
    }
    Scope& s = info.scope;
    // TLS
    if (info.has_tls_listener) {
        size_t n = std::min(s.ssl_certificate.size(), s.ssl_certificate_key.size());
        if (n == 0) {
            site.comments.push_back("approximation: a TLS server without ssl_certificate: "
                                    "it uses another site's certificate");
        } else {
            std::string t = "{ ";
            if (n == 1) {
                t += "cert = " + quote(conf_path(s.ssl_certificate[0])) +
                     ", key = " + quote(conf_path(s.ssl_certificate_key[0]));
            } else {
                t += "certificates = [";
                for (size_t i = 0; i < n; ++i)
                    t += std::string(i ? ", " : "") +
                         "{ cert = " + quote(conf_path(s.ssl_certificate[i])) +
                         ", key = " + quote(conf_path(s.ssl_certificate_key[i])) + " }";
                t += "]";
            }
            if (s.tls_min_version == "1.3")
                t += ", min_version = \"1.3\"";
            if (!s.verify_client.empty()) {
                t += ", client_auth = " + quote(s.verify_client == "on" ? "require" : "optional");
                if (!s.client_ca.empty())
                    t += ", client_ca = " + quote(conf_path(s.client_ca));
                if (!s.crl.empty())
                    t += ", crl = " + quote(conf_path(s.crl));
            }
            if (!s.ocsp_staple.empty())
                t += ", ocsp_staple = " + quote(conf_path(s.ocsp_staple));
            else if (!s.stapling)
                t += ", ocsp_fetch = false";
            site.tls = t + " }";
        }
        if (s.ssl_certificate.size() != s.ssl_certificate_key.size())
            approx(s.ssl_at, "ssl_certificate and ssl_certificate_key counts differ");
    }
    // Error pages (server level; locations' are merged by the routes)
    std::map<int, std::string> pages = s.error_pages.value;
    sites_.push_back(std::move(site));
    SiteOut& out = sites_.back();
    make_routes(*this, info, out, pages);
    if (!pages.empty()) {
        std::string t = "{ ";
        bool first = true;
        for (const auto& [code, uri] : pages) {
            t += (first ? "" : ", ") + quote(std::to_string(code)) + " = " + quote(uri);
            first = false;
        }
        out.error_pages = t + " }";
    }
    if (s.access_log.set && !(s.access_log.at.file == http_access_log_.at.file &&
                              s.access_log.at.line == http_access_log_.at.line)) {
        out.access_log = s.access_log.path == "off"
                             ? "{ path = \"off\" }"
                             : "{ path = " + quote(prefix_path(s.access_log.path)) +
                                   ", format = " + quote(s.access_log.format) + " }";
    }
}

} // namespace wraith::convert
