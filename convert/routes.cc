// NGINX locations become Wraith routes: prefix, exact and regex locations in NGINX's match
// order, `return` and `rewrite` as redirect/rewrite routes, access rules, auth and the
// proxy/static/respond actions each location ends in. Over 800 lines because the location
// semantics (nesting, inheritance, case folding, regex order) only read right side by side.
#include "convert/routes.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <regex>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "convert/limits.h"

namespace wraith::convert {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool is_letter(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0;
}

char other_case(char c) {
    return std::islower(static_cast<unsigned char>(c))
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string compress_value(const Scope& s) {
    if (!s.gzip)
        return "false";
    return "{ encodings = [\"gzip\"], types = " + Converter::quote_list(s.gzip_types) +
           ", gzip_level = " + std::to_string(s.gzip_level) +
           ", min_size = " + Converter::quote(s.gzip_min_length) + " }";
}

// Where a location's match came from, for messages and prefix arithmetic.
struct Match {
    std::string modifier; // "", "=", "~", "~*", "^~", "@"
    std::string pattern;
};

struct Context {
    Converter& c;
    ServerInfo& info;
    SiteOut& site;
    std::map<int, std::string>& pages;
    bool any_regex = false;
    bool has_root = false;
    std::string server_name; // for $server_name
};

// The server's dialect is PCRE2, as NGINX's: a pattern is checked with it here. One longer than
// any real location's is reported as not converted instead.
constexpr size_t kMaxRegex = 1024;

bool valid_wraith_regex(const std::string& re) {
    if (re.size() > kMaxRegex)
        return false;
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* r = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                  PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &code, &offset, nullptr);
    if (!r)
        return false;
    pcre2_code_free(r);
    return true;
}

std::optional<RouteOut> return_route(Context& x, const Scope& s, const std::string& path) {
    const Return& r = *s.ret;
    RouteOut out;
    out.path = path;
    out.compress = compress_value(s);
    if (r.status == 301 || r.status == 302 || r.status == 303 || r.status == 307 ||
        r.status == 308) {
        std::string to, unknown;
        if (!map_redirect_variables(r.text, x.server_name, &to, &unknown)) {
            x.c.not_converted_at(r.at, "return " + std::to_string(r.status) + " " + r.text,
                                 "variable " + unknown +
                                     " has no Wraith equivalent in "
                                     "redirects");
            return std::nullopt;
        }
        if (to.find_first_of(" \t") != std::string::npos || to.empty()) {
            x.c.not_converted_at(r.at, "return " + r.text, "not a URL Wraith can redirect to");
            return std::nullopt;
        }
        out.handler = "redirect";
        out.options =
            "{ to = " + Converter::quote(to) + ", status = " + std::to_string(r.status) + " }";
        return out;
    }
    if (r.status == 444 || r.status < 200 || r.status > 599) {
        x.c.not_converted_at(r.at, "return " + std::to_string(r.status),
                             r.status == 444 ? "closing without an answer: no Wraith equivalent"
                                             : "Wraith answers 200 to 599");
        return std::nullopt;
    }
    std::string body = r.text, unknown_var;
    if (r.text.find('$') != std::string::npos &&
        !map_variables(r.text, x.server_name, &body, &unknown_var, false)) {
        x.c.not_converted_at(r.at, "return " + std::to_string(r.status) + " " + r.text,
                             "variable " + unknown_var + " has no Wraith equivalent");
        return std::nullopt;
    }
    out.handler = "respond";
    out.options = "{ status = " + std::to_string(r.status);
    bool no_body = r.status == 204 || r.status == 205 || r.status == 304;
    if (!r.text.empty() && !no_body) {
        std::string type = s.default_type;
        if (!s.charset.empty() && type.rfind("text/", 0) == 0)
            type += "; charset=" + s.charset;
        out.options +=
            ", body = " + Converter::quote(body) + ", content_type = " + Converter::quote(type);
        if (path.find('.') != std::string::npos)
            out.comments.push_back("approximation: NGINX took the Content-Type from the "
                                   "URI's extension (mime.types) before default_type; "
                                   "Wraith sends " +
                                   type);
    }
    out.options += " }";
    if (r.text.empty() && r.status >= 400)
        out.comments.push_back("NGINX answered with its built-in error page; Wraith's "
                               "answer has no body unless error_pages names one");
    return out;
}

// proxy_pass URL -> proxy = { ... } (and settings on the upstream it uses).
std::optional<RouteOut> proxy_route(Context& x, const Scope& s, const std::string& path,
                                    const Match& m) {
    Converter& c = x.c;
    const std::string& url = s.proxy_pass;
    const SourceRef& at = s.proxy_pass_at;
    if (url.find('$') != std::string::npos) {
        c.not_converted_at(at, "proxy_pass " + url,
                           "variables in proxy_pass: no Wraith "
                           "equivalent yet");
        return std::nullopt;
    }
    size_t sep = url.find("://");
    if (sep == std::string::npos) {
        c.not_converted_at(at, "proxy_pass " + url, "not a URL");
        return std::nullopt;
    }
    std::string scheme = lower(url.substr(0, sep)), rest = url.substr(sep + 3);
    std::string hostport, uri;
    if (rest.rfind("unix:", 0) == 0) {
        size_t colon = rest.find(':', 5);
        hostport = rest.substr(0, colon);
        if (colon != std::string::npos)
            uri = rest.substr(colon + 1);
    } else {
        size_t slash = rest.find('/');
        hostport = rest.substr(0, slash);
        if (slash != std::string::npos)
            uri = rest.substr(slash);
    }
    bool tls = scheme == "https" || scheme == "grpcs";
    bool grpc = scheme == "grpc" || scheme == "grpcs";
    if (scheme != "http" && !tls && !grpc) {
        c.not_converted_at(at, "proxy_pass " + url, "scheme " + scheme);
        return std::nullopt;
    }
    RouteOut out;
    out.path = path;
    out.handler = "proxy";
    out.compress = compress_value(s);
    std::vector<std::string> opts;
    bool needs_upstream = s.proxy_connect_ms || s.proxy_read_ms || s.proxy_send_ms ||
                          !s.proxy_next_upstream_statuses.empty() || s.proxy_next_upstream_tries;
    std::string upstream;
    if (c.upstream_index.count(hostport) && !grpc) {
        upstream = hostport;
        if (tls)
            c.set_upstream(c.upstream(upstream), "tls", "{ verify = false }", at);
        out.comments.push_back("approximation: NGINX sent Host: " + hostport +
                               " (the upstream's name); Wraith sends the server's address "
                               "unless preserve_host");
    } else if (grpc) {
        opts.push_back("pass = " + Converter::quote(scheme + "://" + hostport));
        if (needs_upstream)
            c.approx(at, "timeouts of a grpc_pass location: set them in an [upstream] table");
    } else {
        std::string server = hostport;
        bool is_unix = server.rfind("unix:", 0) == 0;
        if (!is_unix &&
            (server.empty() || server.back() == ']' || server.find(':') == std::string::npos))
            server += tls ? ":443" : ":80";
        if (tls || needs_upstream)
            upstream = c.implicit_upstream(server, tls, at);
        else
            opts.push_back("pass = " + Converter::quote("http://" + server));
    }
    if (!upstream.empty())
        opts.insert(opts.begin(), "upstream = " + Converter::quote(upstream));
    // The URI part replaces the location's prefix.
    if (!uri.empty()) {
        if (m.modifier == "" || m.modifier == "^~" || m.modifier == "=") {
            if (uri != m.pattern) {
                opts.push_back("strip_prefix = " + Converter::quote(m.pattern));
                opts.push_back("replace_prefix = " + Converter::quote(uri));
            }
        } else {
            c.not_converted_at(at, "proxy_pass " + url, "a URI in proxy_pass of a regex location");
            return std::nullopt;
        }
    }
    // Request headers.
    std::vector<std::string> set_headers;
    for (const auto& [name, value] : s.proxy_set_headers.value) {
        std::string n = lower(name);
        if (n == "host") {
            if (value == "$host" || value == "$http_host") {
                opts.push_back("preserve_host = true");
            } else if (value == "$proxy_host") {
            } else if (value.find('$') == std::string::npos) {
                set_headers.push_back(Converter::quote(name) + " = " + Converter::quote(value));
            } else {
                c.not_converted_at(s.proxy_set_header_at, "proxy_set_header Host " + value,
                                   "variables in header values: no Wraith equivalent yet");
            }
        } else if ((n == "x-forwarded-for" &&
                    (value == "$proxy_add_x_forwarded_for" || value == "$remote_addr")) ||
                   (n == "x-forwarded-proto" && value == "$scheme") ||
                   (n == "x-forwarded-host" && (value == "$host" || value == "$http_host")) ||
                   (n == "upgrade" && value == "$http_upgrade") ||
                   (n == "connection" && (value == "upgrade" || value == "Upgrade" ||
                                          value == "$connection_upgrade" || value.empty()))) {
            // Wraith does these itself: forwarding fields always, WebSocket upgrades and
            // upstream keep-alive on its own.
        } else if (n == "x-real-ip" && value == "$remote_addr") {
            c.approx(s.proxy_set_header_at, "X-Real-IP is not sent: Wraith sends the client's "
                                            "address in X-Forwarded-For and Forwarded");
        } else if (value.find('$') == std::string::npos) {
            set_headers.push_back(Converter::quote(name) + " = " + Converter::quote(value));
        } else {
            c.not_converted_at(s.proxy_set_header_at, "proxy_set_header " + name + " " + value,
                               "variables in header values: no Wraith equivalent yet");
        }
    }
    if (!set_headers.empty())
        opts.push_back("request_headers = { set = " + Converter::inline_table(set_headers) + " }");
    // Response headers.
    std::string resp;
    if (!s.add_headers.value.empty()) {
        std::vector<std::string> add;
        for (const auto& [name, value] : s.add_headers.value)
            add.push_back(Converter::quote(name) + " = " + Converter::quote(value));
        resp += "add = " + Converter::inline_table(add);
        out.comments.push_back("approximation: add_header applied to every answer (NGINX: "
                               "2xx and 3xx unless \"always\")");
    }
    if (!s.proxy_hide_headers.empty())
        resp += (resp.empty() ? "" : ", ") + std::string("remove = ") +
                Converter::quote_list(s.proxy_hide_headers);
    if (!resp.empty())
        opts.push_back("response_headers = { " + resp + " }");
    if (s.proxy_request_buffering.value_or(false))
        opts.push_back("buffer_request_body = true");
    if (s.proxy_redirect_default && !*s.proxy_redirect_default)
        opts.push_back("redirect_rewrite = false");
    if (!upstream.empty()) {
        UpstreamOut& u = c.upstream(upstream);
        if (s.proxy_connect_ms)
            c.set_upstream(u, "connect_timeout", Converter::duration(*s.proxy_connect_ms), at);
        if (s.proxy_read_ms)
            c.set_upstream(u, "read_timeout", Converter::duration(*s.proxy_read_ms), at);
        if (s.proxy_send_ms)
            c.set_upstream(u, "send_timeout", Converter::duration(*s.proxy_send_ms), at);
        if (!s.proxy_next_upstream_statuses.empty()) {
            std::string list = "[";
            for (size_t i = 0; i < s.proxy_next_upstream_statuses.size(); ++i)
                list += (i ? ", " : "") + std::to_string(s.proxy_next_upstream_statuses[i]);
            c.set_upstream(u, "fail_statuses", list + "]", at);
        }
        if (s.proxy_next_upstream_tries && *s.proxy_next_upstream_tries > 1)
            c.set_upstream(u, "retries",
                           std::to_string(std::min(10, *s.proxy_next_upstream_tries - 1)), at);
    }
    out.options = Converter::inline_table(opts);
    return out;
}

std::optional<RouteOut> static_route(Context& x, const Scope& s, const std::string& path,
                                     const Match& m) {
    Converter& c = x.c;
    std::string root = s.root;
    if (!s.alias.empty()) {
        // location /static/ { alias /srv/app/static/; } is root /srv/app.
        std::string alias = s.alias, pat = m.pattern;
        bool prefix = m.modifier == "" || m.modifier == "^~" || m.modifier == "=";
        if (prefix && alias.size() >= pat.size() &&
            alias.compare(alias.size() - pat.size(), pat.size(), pat) == 0) {
            root = alias.substr(0, alias.size() - pat.size());
        } else if (prefix && pat.back() != '/' && alias.back() != '/' &&
                   alias.size() > pat.size() &&
                   alias.compare(alias.size() - pat.size(), pat.size(), pat) == 0) {
            root = alias.substr(0, alias.size() - pat.size());
        } else {
            c.not_converted_at(s.alias_at, "alias " + s.alias,
                               "the location's path is not the end of the alias: Wraith's "
                               "static routes look the whole path up below root");
            return std::nullopt;
        }
        if (root.empty())
            root = "/";
    }
    root = c.prefix_path(root);
    RouteOut out;
    out.path = path;
    out.handler = "static";
    out.compress = compress_value(s);
    std::vector<std::string> opts{"root = " + Converter::quote(root)};
    if (s.index != std::vector<std::string>{"index.html"} && !s.index.empty())
        opts.push_back("index = " + Converter::quote_list(s.index));
    if (!s.try_files.empty()) {
        std::vector<std::string> entries;
        for (size_t i = 0; i < s.try_files.size(); ++i) {
            std::string e = s.try_files[i];
            bool last = i + 1 == s.try_files.size();
            if (last && e[0] == '@') {
                c.not_converted_at(s.try_files_at, "try_files ... " + e,
                                   "a named location as fallback: no Wraith equivalent; the "
                                   "route answers 404 instead");
                entries.push_back("=404");
                continue;
            }
            size_t q = e.find('?');
            if (q != std::string::npos) {
                c.approx(s.try_files_at, "try_files " + e + ": the query part is dropped");
                e = e.substr(0, q);
            }
            bool ok = e == "$uri" || e == "$uri/" ||
                      (e.rfind("$uri", 0) == 0 && e.find('$', 1) == std::string::npos) ||
                      (e[0] == '/' && e.find('$') == std::string::npos) || (last && e[0] == '=');
            if (!ok) {
                c.approx(s.try_files_at, "try_files entry " + e + " left out (variables)");
                continue;
            }
            entries.push_back(e);
        }
        if (entries.size() >= 2 || (entries.size() == 1 && entries[0][0] != '$'))
            opts.push_back("try_files = " + Converter::quote_list(entries));
    }
    if (s.autoindex)
        opts.push_back("autoindex = true");
    opts.push_back("charset = " + Converter::quote(s.charset)); // nginx adds none unless set
    opts.push_back(std::string("precompressed = ") + (s.gzip_static ? "true" : "false"));
    if (!s.cache_control.empty())
        opts.push_back("cache_control = " + Converter::quote(s.cache_control));
    if (!s.add_headers.value.empty()) {
        std::string names;
        for (const auto& h : s.add_headers.value)
            names += (names.empty() ? "" : ", ") + h.first;
        c.not_converted_at(s.add_header_at,
                           "add_header " + names + " (static files at " + path + ")",
                           "response header rules for static files: no Wraith equivalent yet");
    }
    out.options = Converter::inline_table(opts);
    return out;
}

std::optional<RouteOut> content_route(Context& x, const Scope& s, const std::string& path,
                                      const Match& m) {
    if (s.ret)
        return return_route(x, s, path);
    if (s.stub_status) {
        RouteOut out;
        out.path = path;
        out.handler = "metrics";
        out.options = "{}";
        return out;
    }
    if (!s.proxy_pass.empty())
        return proxy_route(x, s, path, m);
    return static_route(x, s, path, m);
}

// rewrite REGEX REPLACEMENT [last|break|permanent|redirect]: a redirect route, or an internal
// rewrite route (`rewrite = { pattern, replace }`, routing again), with captures.
void rewrite_routes(Context& x, const Scope& s) {
    for (const auto& rw : s.rewrites) {
        int status = rw.flag == "permanent" ? 301 : rw.flag == "redirect" ? 302 : 0;
        bool external = rw.replacement.rfind("http://", 0) == 0 ||
                        rw.replacement.rfind("https://", 0) == 0 ||
                        rw.replacement.rfind("$scheme", 0) == 0;
        if (!status && external && rw.flag.empty())
            status = 302;
        std::string what = "rewrite " + rw.regex + " " + rw.replacement + " " + rw.flag;
        std::string replacement = rw.replacement, to, unknown;
        bool keep_args = true;
        if (!replacement.empty() && replacement.back() == '?') {
            if (status)
                replacement.pop_back(); // an internal rewrite keeps the '?' (Wraith's meaning too)
            keep_args = false;
        }
        if (!map_variables(replacement, x.server_name, &to, &unknown, status != 0)) {
            x.c.not_converted_at(rw.at, what, "variable " + unknown + " in the replacement");
            continue;
        }
        std::string path = "~" + rw.regex;
        if (status &&
            (rw.regex == "^" || rw.regex == "^/" || rw.regex == "^(.*)$" ||
             rw.regex == "^/(.*)$") &&
            to.find("${") == std::string::npos)
            path = "/";
        if (path != "/" && !valid_wraith_regex(rw.regex)) {
            x.c.not_converted_at(rw.at, what, "the regular expression does not compile");
            continue;
        }
        RouteOut out;
        out.path = path;
        out.comments.push_back("from " + rw.at.text() + ": " + what);
        if (status) {
            out.handler = "redirect";
            out.options =
                "{ to = " + Converter::quote(to) + ", status = " + std::to_string(status) + " }";
            out.compress = compress_value(s);
            if (keep_args && to.find("$request_uri") == std::string::npos &&
                to.find("$query") == std::string::npos)
                out.comments.push_back("approximation: NGINX appended the query string to this "
                                       "redirect; Wraith does not (add ?$query when needed)");
        } else {
            if (to.empty() || to.front() != '/') {
                x.c.not_converted_at(rw.at, what, "an internal rewrite must produce a path");
                continue;
            }
            out.handler = "rewrite";
            out.options = "{ pattern = " + Converter::quote(rw.regex) +
                          ", replace = " + Converter::quote(to) + " }";
            if (rw.flag == "break")
                out.comments.push_back("approximation: break served the rewritten URI in this "
                                       "location; Wraith routes it again (as last)");
        }
        if (s.level >= 2)
            out.comments.push_back("approximation: this rewrite was inside a location; here "
                                   "it matches on its own");
        if (path == "/")
            x.has_root = true;
        x.site.routes.push_back(std::move(out));
    }
}

// Whether an auth_request anywhere in these directives (and their blocks) names `uri`.
bool auth_request_target(const std::vector<NginxDirective>& ds, const std::string& uri) {
    for (const auto& d : ds) {
        if (d.name == "auth_request" && d.args.size() == 1 && d.args[0] == uri)
            return true;
        if (d.block && auth_request_target(d.children, uri))
            return true;
    }
    return false;
}

// allow/deny, auth_basic and auth_request of a location's scope, as the route's filter keys.
void access_keys(Context& x, const Scope& s, RouteOut& out) {
    const auto& rules = s.access.value;
    if (!rules.empty()) {
        // NGINX takes the first rule that matches; Wraith refuses what a deny entry matches,
        // then what no allow entry matches. The same when every deny comes before every allow
        // (a final "deny all" is the allow list's meaning).
        std::vector<std::string> allow, deny;
        bool allow_all = false, deny_all = false, exact = true, seen_allow = false;
        for (const auto& [is_allow, what] : rules) {
            if (allow_all || deny_all)
                break; // unreachable after "all"
            if (what == "all") {
                (is_allow ? allow_all : deny_all) = true;
                continue;
            }
            if (is_allow) {
                allow.push_back(what);
                seen_allow = true;
            } else {
                deny.push_back(what);
                exact = exact && !seen_allow;
            }
        }
        if (deny_all && allow.empty()) {
            out.extra.push_back("deny = [\"all\"]");
            deny.clear(); // refused anyway: one deny key (a second would be invalid TOML)
        } else if (deny_all)
            out.extra.push_back("allow = " + Converter::quote_list(allow));
        else if (!allow.empty() && !allow_all)
            exact = false; // NGINX let everyone else in too
        if (!deny.empty())
            out.extra.push_back("deny = " + Converter::quote_list(deny));
        if (!exact)
            out.comments.push_back("approximation: allow/deny at " + s.access_at.text() +
                                   " mixed in an order Wraith's allow and deny lists cannot "
                                   "keep (a deny entry here wins over an earlier allow)");
    }
    if (!s.auth_basic.empty() && s.auth_basic != "off") {
        if (s.auth_basic_user_file.empty()) {
            x.c.not_converted_at(s.auth_basic_at, "auth_basic " + s.auth_basic,
                                 "no auth_basic_user_file");
        } else {
            out.extra.push_back(
                "basic_auth = { file = " + Converter::quote(s.auth_basic_user_file) +
                ", realm = " + Converter::quote(s.auth_basic) + " }");
        }
    }
    if (!s.auth_request.empty() && s.auth_request != "off") {
        // The auth location: `location = /auth { proxy_pass http://...; }` of this server.
        std::string pass, uri = s.auth_request;
        for (const auto& d : x.info.block->children) {
            if (!d.block || d.name != "location" || d.args.empty())
                continue;
            std::string pat = d.args.back();
            if (!pat.empty() && pat[0] == '=')
                pat.erase(0, 1);
            if (pat != s.auth_request)
                continue;
            for (const auto& c : d.children)
                if (c.name == "proxy_pass" && c.args.size() == 1)
                    pass = c.args[0];
        }
        size_t scheme = pass.find("://");
        size_t slash = scheme == std::string::npos ? std::string::npos : pass.find('/', scheme + 3);
        std::string target = pass.substr(0, slash);
        if (slash != std::string::npos && pass.substr(slash) != "/")
            uri = pass.substr(slash);
        if (pass.empty() || pass.find('$') != std::string::npos) {
            x.c.not_converted_at(s.auth_request_at, "auth_request " + s.auth_request,
                                 "no location " + s.auth_request +
                                     " with a plain proxy_pass to the auth service in this "
                                     "server");
        } else {
            std::string host = target.substr(scheme + 3);
            std::string service = x.c.upstream_index.count(host)
                                      ? "upstream = " + Converter::quote(host)
                                      : "pass = " + Converter::quote(target);
            std::string line = "forward_auth = { " + service + ", uri = " + Converter::quote(uri);
            if (!s.auth_request_copy.empty())
                line += ", copy_headers = " + Converter::quote_list(s.auth_request_copy);
            out.extra.push_back(line + " }");
        }
    }
}

void location(Context& x, const NginxDirective& d, const Scope& parent, int level) {
    Converter& c = x.c;
    Match m;
    if (d.args.size() == 2) {
        m.modifier = d.args[0];
        m.pattern = d.args[1];
    } else if (d.args.size() == 1) {
        const std::string& a = d.args[0];
        if (a[0] == '@') {
            m.modifier = "@";
            m.pattern = a;
        } else if (a[0] == '=') {
            m.modifier = "=";
            m.pattern = a.substr(1);
        } else if (a.rfind("~*", 0) == 0) {
            m.modifier = "~*";
            m.pattern = a.substr(2);
        } else if (a[0] == '~') {
            m.modifier = "~";
            m.pattern = a.substr(1);
        } else if (a.rfind("^~", 0) == 0) {
            m.modifier = "^~";
            m.pattern = a.substr(2);
        } else {
            m.pattern = a;
        }
    } else {
        c.not_converted(d, "invalid location");
        return;
    }
    if (m.modifier == "@") {
        c.not_converted(d, "named location: reached only through try_files or error_page "
                           "fallbacks, which Wraith has not");
        return;
    }
    // An internal location that auth_request calls: forward_auth reaches the service itself,
    // and a route would expose it to clients.
    bool internal = std::any_of(d.children.begin(), d.children.end(),
                                [](const NginxDirective& ch) { return ch.name == "internal"; });
    if (internal && auth_request_target(x.info.block->children, m.pattern)) {
        c.ignored(d, "the auth_request location: forward_auth calls the auth service directly "
                     "(no route, so clients cannot reach it)");
        return;
    }
    size_t approx_before = c.approximations().size();
    Scope s = parent;
    s.level = level;
    s.ret.reset();
    s.stub_status = false;
    s.rewrites.clear();
    s.proxy_pass.clear();
    s.try_files.clear();
    s.alias.clear();
    for (const auto& child : d.children) {
        if (!child.block)
            c.apply(s, child, kLocation);
        else if (child.name == "if")
            c.not_converted(child, "if: conditions come with the routing issue; no Wraith "
                                   "equivalent yet");
        else if (child.name == "limit_except")
            c.not_converted(child, "limit_except: no Wraith access rules yet");
        else if (child.name != "location")
            c.not_converted(child, "unknown block");
    }
    std::string path;
    if (m.modifier == "=") {
        path = "=" + m.pattern;
    } else if (m.modifier == "~" || m.modifier == "~*") {
        std::string re = m.modifier == "~*" ? fold_case(m.pattern) : m.pattern;
        if (!valid_wraith_regex(re)) {
            c.not_converted(d, "the regular expression is not valid ECMAScript (Wraith's "
                               "dialect)");
            return;
        }
        path = "~" + re;
    } else if (m.modifier == "" || m.modifier == "^~") {
        path = m.pattern;
    } else {
        c.not_converted(d, "unknown location modifier " + m.modifier);
        return;
    }
    if (path.empty() || (path[0] != '/' && path[0] != '=' && path[0] != '~')) {
        c.not_converted(d, "a location path must start with /");
        return;
    }
    for (const auto& [code, uri] : s.error_pages.value) {
        auto it = x.pages.find(code);
        if (it == x.pages.end()) {
            x.pages[code] = uri;
            if (level >= 2 && s.error_pages.level == level)
                c.approx(d.at, "error_page " + std::to_string(code) +
                                   " of this location "
                                   "applies to the whole "
                                   "site in Wraith");
        }
    }
    rewrite_routes(x, s);
    auto route = content_route(x, s, path, m);
    if (route) {
        route->comments.insert(route->comments.begin(),
                               "location " + (m.modifier.empty() ? "" : m.modifier + " ") +
                                   m.pattern + " at " + d.at.text());
        if (m.modifier == "^~" && x.any_regex)
            route->comments.push_back("approximation: ^~ is a plain prefix in Wraith; a "
                                      "regex route may take requests NGINX gave to it");
        if (m.modifier == "~*")
            route->comments.push_back("case-insensitive (~*): letters matched as [xX]");
        if (level >= 3)
            route->comments.push_back("approximation: nested location, flattened");
        limit_keys(c, s, *route); // before the comments: what it notes is about this route
        for (size_t i = approx_before; i < c.approximations().size(); ++i)
            route->comments.push_back("approximation: " + c.approximations()[i]);
        if (path == "/")
            x.has_root = true;
        access_keys(x, s, *route);
        x.site.routes.push_back(std::move(*route));
    }
    for (const auto& child : d.children)
        if (child.block && child.name == "location")
            location(x, child, s, level + 1);
}

bool has_regex_locations(const std::vector<NginxDirective>& children) {
    for (const auto& d : children) {
        if (!d.block || d.name != "location")
            continue;
        for (const auto& a : d.args)
            if (a[0] == '~')
                return true;
        if (has_regex_locations(d.children))
            return true;
    }
    return false;
}

} // namespace

bool map_redirect_variables(const std::string& in, const std::string& server_name, std::string* out,
                            std::string* unknown) {
    return map_variables(in, server_name, out, unknown, true);
}

bool map_variables(const std::string& in, const std::string& server_name, std::string* out,
                   std::string* unknown, bool redirect) {
    out->clear();
    for (size_t i = 0; i < in.size();) {
        if (in[i] != '$') {
            out->push_back(in[i++]);
            continue;
        }
        size_t start = i + 1;
        bool braced = start < in.size() && in[start] == '{';
        size_t j = braced ? start + 1 : start;
        if (!braced && j < in.size() && std::isdigit(static_cast<unsigned char>(in[j]))) {
            // $1..$9: one digit, as in NGINX ("$1x" is $1 then "x").
            if (in[j] == '0') {
                *unknown = "$0";
                return false;
            }
            *out += "${" + std::string(1, in[j]) + "}";
            i = j + 1;
            continue;
        }
        while (j < in.size() && (std::isalnum(static_cast<unsigned char>(in[j])) || in[j] == '_'))
            ++j;
        std::string name = in.substr(braced ? start + 1 : start, j - (braced ? start + 1 : start));
        if (braced) {
            if (j >= in.size() || in[j] != '}') {
                *unknown = in.substr(i);
                return false;
            }
            ++j;
        }
        if (name == "scheme" || name == "host" || name == "request_uri" || name == "uri") {
            *out += "$" + name;
        } else if (name == "args" || name == "query_string") {
            *out += redirect ? "$query" : "$args"; // a redirect's own name for the query
        } else if (name == "http_host") {
            *out += "$host";
        } else if (name == "server_name" && !server_name.empty()) {
            *out += server_name;
        } else if (name.size() == 1 && name[0] >= '1' && name[0] <= '9') {
            *out += "${" + name + "}";
        } else if (name.rfind("arg_", 0) == 0 || name.rfind("http_", 0) == 0 ||
                   name.rfind("cookie_", 0) == 0) {
            *out += "${" + name + "}";
        } else if (name == "remote_addr") {
            *out += "$client_ip";
        } else if (name == "request_method") {
            *out += "$method";
        } else {
            *unknown = "$" + name;
            return false;
        }
        i = j;
    }
    return true;
}

std::string fold_case(const std::string& p) {
    std::string out;
    bool in_class = false;
    for (size_t i = 0; i < p.size(); ++i) {
        char ch = p[i];
        if (ch == '\\' && i + 1 < p.size()) {
            out += ch;
            out += p[++i];
            continue;
        }
        if (!in_class) {
            if (ch == '[') {
                in_class = true;
                out += ch;
                if (i + 1 < p.size() && p[i + 1] == '^')
                    out += p[++i];
            } else if (is_letter(ch)) {
                out += '[';
                out += ch;
                out += other_case(ch);
                out += ']';
            } else {
                out += ch;
            }
            continue;
        }
        if (ch == ']') {
            in_class = false;
            out += ch;
        } else if (is_letter(ch) && i + 2 < p.size() && p[i + 1] == '-' && is_letter(p[i + 2])) {
            out += ch;
            out += '-';
            out += p[i + 2];
            out += other_case(ch);
            out += '-';
            out += other_case(p[i + 2]);
            i += 2;
        } else if (is_letter(ch)) {
            out += ch;
            out += other_case(ch);
        } else {
            out += ch;
        }
    }
    return out;
}

void make_routes(Converter& c, ServerInfo& info, SiteOut& site, std::map<int, std::string>& pages) {
    Context x{c, info, site, pages, false, false, ""};
    x.any_regex = has_regex_locations(info.block->children);
    for (const auto& h : info.hosts)
        if (h[0] != '~' && h[0] != '*') {
            x.server_name = h;
            break;
        }
    Scope& s = info.scope;
    // Server-level rewrite-phase directives run before any location is chosen.
    if (s.ret) {
        auto route = return_route(x, s, "/");
        if (route) {
            route->comments.insert(route->comments.begin(),
                                   "server-level return at " + s.ret->at.text());
            site.routes.push_back(std::move(*route));
            for (const auto& d : info.block->children)
                if (d.block && d.name == "location")
                    c.approx(d.at, "this location is never reached: the server returns "
                                   "before locations are chosen");
            return;
        }
    }
    rewrite_routes(x, s);
    for (const auto& d : info.block->children) {
        if (d.block && d.name == "location")
            location(x, d, s, 2);
        else if (d.block && d.name == "if")
            c.not_converted(d, "if: conditions come with the routing issue; no Wraith "
                               "equivalent yet");
        else if (d.block)
            c.not_converted(d, "unknown block");
    }
    if (!x.has_root) {
        // NGINX serves what no location takes with the server's own settings.
        Match m{"", "/"};
        s.ret.reset();
        auto route = content_route(x, s, "/", m);
        if (route) {
            route->comments.insert(route->comments.begin(),
                                   "no location / in the server: its own settings");
            access_keys(x, s, *route);
            limit_keys(c, s, *route);
            site.routes.push_back(std::move(*route));
        }
    }
}

} // namespace wraith::convert
