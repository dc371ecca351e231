// What each NGINX directive becomes. One entry per directive: a handler that records its
// meaning in the Scope or the Converter, or "not yet" (no Wraith feature today: reported with
// FILE:LINE; when the feature lands, the entry gets a handler), or "ignored" (Wraith does it
// anyway, or it tunes something Wraith does not have). Over 800 lines on purpose: one short
// entry per directive, read as one table. Blocks (http, server, location,
// upstream, events, types, if, map, geo...) are walked by converter.cc.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "convert/converter.h"
#include "convert/limits.h"

namespace wraith::convert {

namespace {

bool is_on(const NginxDirective& d) {
    return !d.args.empty() && d.args[0] == "on";
}

// A small decimal number, or `fallback` (never undefined behaviour on long digit runs).
int small_number(const std::string& s, int fallback) {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit))
        return fallback;
    return std::stoi(s);
}

// A decimal integer argument (nothing else may reach the TOML as a number).
bool integer_arg(Converter& c, const NginxDirective& d, size_t max_digits) {
    if (!c.check_args(d, 1, 1))
        return false;
    const std::string& v = d.args[0];
    if (v.empty() || v.size() > max_digits || !std::all_of(v.begin(), v.end(), ::isdigit)) {
        c.not_converted(d, "expected a number");
        return false;
    }
    return true;
}

// nginx sizes ("10m", "512k", "1g", "1024") are wraith's syntax too.
std::string size_value(const std::string& s) {
    std::string v = s;
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    return Converter::quote(v);
}

void set_time(Converter& c, const NginxDirective& d, std::map<std::string, Line>& table,
              const char* key) {
    if (!c.check_args(d, 1, 2))
        return;
    auto ms = c.parse_time(d.args[0]);
    if (!ms) {
        c.not_converted(d, "cannot read the time " + Converter::quote(d.args[0]));
        return;
    }
    if (d.args.size() > 1)
        c.approx(d.at, d.name + ": the second value (a Keep-Alive header) is not sent");
    if (c.context != kHttp)
        c.approx(d.at, d.name + " is one value for every site in Wraith ([http]); this "
                                "block's value is used for all");
    table[key] = Line{key, Converter::duration(*ms), d.at.text() + ": " + d.name};
}

std::optional<uint64_t> time_arg(Converter& c, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return std::nullopt;
    auto ms = c.parse_time(d.args[0]);
    if (!ms)
        c.not_converted(d, "cannot read the time " + Converter::quote(d.args[0]));
    return ms;
}

void h_user(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 2))
        return;
    c.server["user"] = Line{"user", Converter::quote(d.args[0]), d.at.text()};
    if (d.args.size() == 2)
        c.server["group"] = Line{"group", Converter::quote(d.args[1]), d.at.text()};
}

void h_worker_processes(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    const std::string& v = d.args[0];
    if (v == "auto") {
        c.server["workers"] = Line{"workers", "\"auto\"", d.at.text()};
    } else if (!v.empty() && v.size() < 4 && std::all_of(v.begin(), v.end(), ::isdigit) &&
               std::stoi(v) >= 1 && std::stoi(v) <= 256) {
        c.server["workers"] = Line{"workers", std::to_string(std::stoi(v)), d.at.text()};
    } else {
        c.not_converted(d, "workers must be \"auto\" or 1 to 256");
    }
}

void h_pid(Converter& c, Scope&, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        c.server["pid_file"] = Line{"pid_file", Converter::quote(d.args[0]), d.at.text()};
}

void h_error_log(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 2))
        return;
    if (c.context != kMain) {
        c.approx(d.at, "Wraith has one error log (server.error_log); the main one is kept, "
                       "this one is not used");
        return;
    }
    std::string path = d.args[0];
    if (path.rfind("syslog:", 0) == 0) {
        c.not_converted(d, "syslog error logs: Wraith writes to a file or stderr");
        return;
    }
    c.server["error_log"] = Line{"error_log", Converter::quote(path), d.at.text()};
    if (d.args.size() == 2) {
        std::string l = d.args[1], level;
        if (l == "debug")
            level = "debug";
        else if (l == "info" || l == "notice")
            level = "info";
        else if (l == "warn")
            level = "warn";
        else
            level = "error"; // error, crit, alert, emerg
        if (l != level)
            c.approx(d.at, "log level " + l + " is \"" + level + "\" in Wraith");
        c.server["log_level"] = Line{"log_level", Converter::quote(level), d.at.text()};
    }
}

void h_worker_connections(Converter& c, Scope&, const NginxDirective& d) {
    if (!integer_arg(c, d, 7))
        return;
    c.server["max_connections"] =
        Line{"max_connections", std::to_string(std::stoull(d.args[0])),
             d.at.text() + ": approximation: nginx counts upstream connections too, Wraith "
                           "only client connections"};
}

void h_root(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.root = d.args[0];
    s.root_at = d.at;
    if (s.root.find('$') != std::string::npos)
        c.not_converted(d, "variables in root: Wraith's root is a fixed directory");
}

void h_alias(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.alias = d.args[0];
    s.alias_at = d.at;
}

void h_index(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 64))
        return;
    s.index.clear();
    for (const auto& a : d.args) {
        if (a.find('/') != std::string::npos || a.find('$') != std::string::npos) {
            c.approx(d.at, "index " + a + " left out: Wraith takes plain file names");
            continue;
        }
        s.index.push_back(a);
    }
}

void h_autoindex(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.autoindex = is_on(d);
}

void h_try_files(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 64))
        return;
    s.try_files = d.args;
    s.try_files_at = d.at;
}

void h_charset(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.charset = d.args[0] == "off" ? "" : d.args[0];
}

void h_default_type(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.default_type = d.args[0];
    if (c.context != kLocation && d.args[0] != "application/octet-stream")
        c.approx(d.at, "default_type " + d.args[0] +
                           ": Wraith serves files of unknown type "
                           "as application/octet-stream; this type "
                           "is used for return bodies");
}

void h_expires(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 2))
        return;
    std::string v = d.args.back();
    if (d.args.size() == 2 || v == "off") {
        if (v == "off") {
            s.cache_control.clear();
            return;
        }
        c.not_converted(d, "expires modified: no Wraith equivalent");
        return;
    }
    if (v == "epoch") {
        s.cache_control = "no-cache";
    } else if (v == "max") {
        s.cache_control = "max-age=315360000";
    } else {
        bool negative = !v.empty() && v[0] == '-';
        auto ms = c.parse_time(negative ? v.substr(1) : v);
        if (!ms) {
            c.not_converted(d, "cannot read the time " + Converter::quote(v));
            return;
        }
        s.cache_control = negative ? "no-cache" : "max-age=" + std::to_string(*ms / 1000);
    }
    c.approx(d.at, "expires " + v + " becomes Cache-Control: " + s.cache_control +
                       " on 200/206/304 answers of static files; no Expires field is sent");
}

void h_add_header(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 3))
        return;
    if (d.args[1].find('$') != std::string::npos) {
        c.not_converted(d, "variables in header values: no Wraith equivalent yet");
        return;
    }
    s.add_headers.at(s.level).emplace_back(d.args[0], d.args[1]);
    s.add_header_at = d.at;
}

void h_error_page(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 64))
        return;
    const std::string& uri = d.args.back();
    if (uri.empty() || uri[0] != '/' || d.args[d.args.size() - 2][0] == '=') {
        c.not_converted(d, "error pages that change the status, name a location (@...) or "
                           "redirect: Wraith's error_pages serve a local URI with the error's "
                           "status");
        return;
    }
    auto& pages = s.error_pages.at(s.level);
    for (size_t i = 0; i + 1 < d.args.size(); ++i) {
        const std::string& code = d.args[i];
        if (code.size() == 3 && std::all_of(code.begin(), code.end(), ::isdigit) &&
            code[0] >= '4' && code[0] <= '5')
            pages[std::stoi(code)] = uri;
        else
            c.approx(d.at, "error_page " + code + " left out (Wraith: 400 to 599)");
    }
}

void h_return(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 2))
        return;
    Return r;
    r.at = d.at;
    const std::string& first = d.args[0];
    if (std::all_of(first.begin(), first.end(), ::isdigit) && first.size() == 3) {
        r.status = std::stoi(first);
        if (d.args.size() == 2)
            r.text = d.args[1];
    } else if (d.args.size() == 1) {
        r.status = 302;
        r.text = first;
    } else {
        c.not_converted(d, "invalid return");
        return;
    }
    s.ret = r;
}

// stub_status: its seven numbers are among the Prometheus series of `metrics = {}`.
void h_stub_status(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 0, 1))
        return;
    s.stub_status = true;
    c.approx(d.at, "stub_status: Wraith answers with Prometheus series (wraith_connections, "
                   "wraith_requests_total ...; wraith.toml(5), METRICS), not stub_status's text");
}

void h_rewrite(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 3))
        return;
    s.rewrites.push_back(Rewrite{d.args[0], d.args[1], d.args.size() == 3 ? d.args[2] : "", d.at});
}

// allow/deny ADDRESS|CIDR|all: kept in order; routes.cc turns them into allow/deny lists.
void h_access(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    const std::string& a = d.args[0];
    if (a.rfind("unix:", 0) == 0) {
        c.not_converted(d, "Unix-socket clients: no Wraith equivalent");
        return;
    }
    s.access.at(s.level).emplace_back(d.name == "allow", a);
    s.access_at = d.at;
}

void h_auth_basic(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.auth_basic = d.args[0];
    s.auth_basic_at = d.at;
}

void h_auth_basic_user_file(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.auth_basic_user_file = c.conf_path(d.args[0]);
}

void h_auth_request(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.auth_request = d.args[0];
    s.auth_request_at = d.at;
}

// auth_request_set $user $upstream_http_x_user: the auth answer's field reaches the upstream
// through proxy_set_header; Wraith copies it (copy_headers) under its own name.
void h_auth_request_set(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 2))
        return;
    const std::string& v = d.args[1];
    if (v.rfind("$upstream_http_", 0) != 0) {
        c.not_converted(d, "only $upstream_http_NAME values convert (copy_headers)");
        return;
    }
    std::string name = v.substr(15);
    for (char& ch : name)
        ch = ch == '_' ? '-' : ch;
    s.auth_request_copy.push_back(name);
    c.approx(d.at, "the auth service's " + name +
                       " field is copied into the upstream request "
                       "as " +
                       name +
                       " (forward_auth copy_headers), whatever proxy_set_header "
                       "named it");
}

void update_real_ip(Converter& c) {
    std::vector<std::string> items{"header = " + Converter::quote(c.real_ip_header),
                                   "trusted = " + Converter::quote_list(c.real_ip_from)};
    c.server["real_ip"] = Line{"real_ip", Converter::inline_table(items), c.real_ip_at.text()};
}

void h_set_real_ip_from(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    if (d.args[0].rfind("unix:", 0) == 0) {
        c.not_converted(d, "Unix-socket proxies: no Wraith equivalent");
        return;
    }
    if (c.context != kHttp)
        c.approx(d.at, "real_ip is one setting for every site in Wraith ([server] real_ip)");
    c.real_ip_from.push_back(d.args[0]);
    c.real_ip_at = d.at;
    update_real_ip(c);
}

void h_real_ip_header(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    if (d.args[0] == "proxy_protocol") {
        c.not_converted(d, "the address comes from the PROXY header: set proxy_protocol = "
                           "true on the [[listen]] instead (it is the peer address then)");
        return;
    }
    c.real_ip_header = d.args[0];
    if (!c.real_ip_from.empty())
        update_real_ip(c);
}

void h_real_ip_recursive(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    c.real_ip_recursive = d.args[0] == "on";
    if (!c.real_ip_recursive)
        c.approx(d.at, "real_ip_recursive off: Wraith always skips trusted addresses from the "
                       "right (as with on)");
}

void h_client_max_body_size(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    std::string v = d.args[0] == "0" ? "\"1g\"" : size_value(d.args[0]);
    if (d.args[0] == "0")
        c.approx(d.at, "0 (no limit) becomes 1g: Wraith always has a limit");
    if (c.context != kHttp)
        c.approx(d.at, "client_max_body_size is one value for every site in Wraith ([http])");
    c.http["client_max_body_size"] = Line{"client_max_body_size", v, d.at.text()};
}

void h_keepalive_timeout(Converter& c, Scope&, const NginxDirective& d) {
    set_time(c, d, c.http, "keepalive_timeout");
}
void h_send_timeout(Converter& c, Scope&, const NginxDirective& d) {
    set_time(c, d, c.http, "send_timeout");
}
void h_client_header_timeout(Converter& c, Scope&, const NginxDirective& d) {
    set_time(c, d, c.http, "header_timeout");
}
void h_client_body_timeout(Converter& c, Scope&, const NginxDirective& d) {
    set_time(c, d, c.http, "body_timeout");
}

void h_keepalive_requests(Converter& c, Scope&, const NginxDirective& d) {
    if (integer_arg(c, d, 9))
        c.http["keepalive_requests"] =
            Line{"keepalive_requests", std::to_string(std::stoull(d.args[0])), d.at.text()};
}

void h_gzip(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.gzip = is_on(d);
}
void h_gzip_comp_level(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.gzip_level = std::clamp(small_number(d.args[0], 1), 1, 9);
}
void h_gzip_min_length(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.gzip_min_length = d.args[0];
}
void h_gzip_types(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 256))
        return;
    s.gzip_types = {"text/html"}; // nginx always compresses text/html
    for (const auto& t : d.args)
        if (t != "text/html")
            s.gzip_types.push_back(t == "*" ? "*/*" : t);
}
void h_gzip_static(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.gzip_static = d.args[0] != "off";
    if (s.gzip_static)
        c.approx(d.at, "gzip_static: Wraith's precompressed also serves FILE.br and "
                       "FILE.zst siblings when they exist");
}
void h_gzip_proxied(Converter& c, Scope&, const NginxDirective& d) {
    c.approx(d.at, "gzip_proxied: Wraith compresses answers whatever the request's Via");
}

void h_ssl_certificate(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    if (s.ssl_certificate.size() != s.ssl_certificate_key.size() && !s.ssl_certificate.empty() &&
        s.level == 0)
        s.ssl_certificate.clear();
    s.ssl_certificate.push_back(d.args[0]);
    s.ssl_at = d.at;
}
void h_ssl_certificate_key(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.ssl_certificate_key.push_back(d.args[0]);
}
void h_ssl_protocols(Converter& c, Scope& s, const NginxDirective& d) {
    bool v12 = false, v13 = false, old = false;
    for (const auto& p : d.args) {
        v12 |= p == "TLSv1.2";
        v13 |= p == "TLSv1.3";
        old |= p == "TLSv1" || p == "TLSv1.1" || p == "SSLv3" || p == "SSLv2";
    }
    s.tls_min_version = v12 ? "1.2" : v13 ? "1.3" : "1.2";
    if (old)
        c.approx(d.at, "TLS 1.0/1.1 and SSL are not spoken: Wraith speaks TLS 1.2 and 1.3");
    if (!v13)
        c.approx(d.at, "TLS 1.3 stays on: Wraith always offers it");
}
void h_ssl_ciphers(Converter& c, Scope&, const NginxDirective& d) {
    c.approx(d.at, "ssl_ciphers: Wraith offers only forward-secret AEAD suites (ECDHE with "
                   "AES-GCM or ChaCha20-Poly1305), in its own order");
}
void h_ssl_client_certificate(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.client_ca = d.args[0];
}
void h_ssl_verify_client(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    const std::string& v = d.args[0];
    if (v == "on" || v == "optional") {
        s.verify_client = v;
    } else if (v == "optional_no_ca") {
        s.verify_client = "optional";
        c.approx(d.at, "optional_no_ca: Wraith verifies a client certificate it gets");
    } else {
        s.verify_client.clear();
    }
}
void h_ssl_crl(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.crl = d.args[0];
}
void h_ssl_stapling(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.stapling = is_on(d);
}
void h_ssl_stapling_file(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.ocsp_staple = d.args[0];
}

void h_proxy_pass(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    s.proxy_pass = d.args[0];
    s.proxy_pass_at = d.at;
}
void h_grpc_pass(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 1))
        return;
    std::string v = d.args[0];
    if (v.find("://") == std::string::npos)
        v = "grpc://" + v;
    s.proxy_pass = v;
    s.proxy_pass_at = d.at;
}
void h_proxy_set_header(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 2, 2))
        return;
    s.proxy_set_headers.at(s.level).emplace_back(d.args[0], d.args[1]);
    s.proxy_set_header_at = d.at;
}
void h_proxy_hide_header(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.proxy_hide_headers.push_back(d.args[0]);
}
void h_proxy_connect_timeout(Converter& c, Scope& s, const NginxDirective& d) {
    if (auto ms = time_arg(c, d))
        s.proxy_connect_ms = ms;
}
void h_proxy_read_timeout(Converter& c, Scope& s, const NginxDirective& d) {
    if (auto ms = time_arg(c, d))
        s.proxy_read_ms = ms;
}
void h_proxy_send_timeout(Converter& c, Scope& s, const NginxDirective& d) {
    if (auto ms = time_arg(c, d))
        s.proxy_send_ms = ms;
}
void h_proxy_http_version(Converter& c, Scope&, const NginxDirective& d) {
    if (!d.args.empty() && d.args[0] != "1.1")
        c.approx(d.at, "Wraith always speaks HTTP/1.1 to HTTP/1 upstreams (keep-alive on)");
}
void h_proxy_buffering(Converter& c, Scope&, const NginxDirective& d) {
    if (is_on(d))
        c.approx(d.at, "proxy_buffering on: Wraith streams answers with backpressure and "
                       "never buffers them whole");
}
void h_proxy_request_buffering(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.proxy_request_buffering = is_on(d);
}
void h_proxy_redirect(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 2))
        return;
    if (d.args[0] == "default" && d.args.size() == 1)
        s.proxy_redirect_default = true;
    else if (d.args[0] == "off")
        s.proxy_redirect_default = false;
    else
        c.not_converted(d, "proxy_redirect with explicit rewrites: Wraith has only the "
                           "default rewrite (redirect_rewrite)");
}
void h_proxy_next_upstream(Converter& c, Scope& s, const NginxDirective& d) {
    s.proxy_next_upstream_statuses.clear();
    for (const auto& a : d.args) {
        int status = a.rfind("http_", 0) == 0 && a.size() == 8 ? small_number(a.substr(5), 0) : 0;
        if (status >= 400 && status <= 599)
            s.proxy_next_upstream_statuses.push_back(status);
        else if (a != "error" && a != "timeout" && a != "off")
            c.approx(d.at, "proxy_next_upstream " + a +
                               ": Wraith retries on errors, "
                               "timeouts and fail_statuses");
    }
}
void h_proxy_next_upstream_tries(Converter& c, Scope& s, const NginxDirective& d) {
    if (c.check_args(d, 1, 1))
        s.proxy_next_upstream_tries = small_number(d.args[0], 0);
}

void h_access_log(Converter& c, Scope& s, const NginxDirective& d) {
    if (!c.check_args(d, 1, 16))
        return;
    AccessLogSetting a;
    a.set = true;
    a.at = d.at;
    a.path = d.args[0];
    if (a.path == "off") {
        s.access_log = a;
        return;
    }
    if (a.path.rfind("syslog:", 0) == 0) {
        c.not_converted(d, "syslog access logs: Wraith writes to a file, stdout or stderr");
        return;
    }
    if (a.path == "/dev/stdout")
        a.path = "stdout";
    if (a.path == "/dev/stderr")
        a.path = "stderr";
    std::string format = d.args.size() > 1 ? d.args[1] : "combined";
    a.format = "combined";
    if (format != "combined") {
        auto it = c.log_formats.find(format);
        bool json = it != c.log_formats.end() && it->second.find("escape=json") == 0;
        a.format = json ? "json" : "combined";
        c.approx(d.at, "log_format " + format + " has no Wraith equivalent yet: the \"" + a.format +
                           "\" format is used");
    }
    if (d.args.size() > 2)
        c.approx(d.at, "access_log buffer/flush/gzip/if options: Wraith buffers and writes "
                       "at least once a second");
    if (c.context & (kLocation | kIf))
        c.approx(d.at, "access logs are per site in Wraith; this location's is not used");
    else
        s.access_log = a;
}

void h_log_format(Converter& c, Scope&, const NginxDirective& d) {
    if (!c.check_args(d, 2, 256))
        return;
    std::string text;
    size_t first = 1;
    if (d.args[1].rfind("escape=", 0) == 0) {
        text = d.args[1] + " ";
        first = 2;
    }
    for (size_t i = first; i < d.args.size(); ++i)
        text += d.args[i];
    c.log_formats[d.args[0]] = text;
}

// Directives that set nothing Wraith has (yet). Each is reported with FILE:LINE.
constexpr const char* kVariables = "variables (set/map/geo): no Wraith equivalent yet";
constexpr const char* kScripting = "embedded scripting (Perl, Lua, njs): no equivalent in "
                                   "Wraith";
constexpr const char* kFastcgi = "FastCGI/uwsgi/SCGI upstreams: Wraith proxies HTTP only";
constexpr const char* kCache = "response caching: no Wraith equivalent yet";

const DirectiveSpec kDirectives[] = {
    // main and events
    {"user", kMain, h_user, nullptr, nullptr},
    {"worker_processes", kMain, h_worker_processes, nullptr, nullptr},
    {"pid", kMain, h_pid, nullptr, nullptr},
    {"error_log", kMain | kAnyHttp, h_error_log, nullptr, nullptr},
    {"worker_connections", kEvents, h_worker_connections, nullptr, nullptr},
    {"multi_accept", kEvents, nullptr, nullptr, "Wraith's workers accept as they need"},
    {"use", kEvents, nullptr, nullptr, "Wraith uses epoll"},
    {"accept_mutex", kEvents, nullptr, nullptr, "the kernel spreads accepts"},
    {"worker_rlimit_nofile", kMain, nullptr, nullptr, "the systemd unit sets LimitNOFILE=65536"},
    {"daemon", kMain, nullptr, nullptr, "systemd runs wraith in the foreground"},
    {"master_process", kMain, nullptr, nullptr, "Wraith always has a master"},
    {"pcre_jit", kMain, nullptr, nullptr, "Wraith's regular expressions are PCRE2, JIT-compiled"},
    {"load_module", kMain, nullptr, "dynamic nginx modules have no Wraith equivalent", nullptr},
    {"env", kMain, nullptr, nullptr, "not needed"},
    {"worker_cpu_affinity", kMain, nullptr, "CPU affinity: not configurable in Wraith", nullptr},
    {"worker_priority", kMain, nullptr, "process priority: not configurable in Wraith", nullptr},
    {"thread_pool", kMain, nullptr, nullptr, "Wraith sizes its own"},
    // static content
    {"root", kAnyHttp, h_root, nullptr, nullptr},
    {"alias", kLocation, h_alias, nullptr, nullptr},
    {"index", kAnyHttp, h_index, nullptr, nullptr},
    {"autoindex", kAnyHttp, h_autoindex, nullptr, nullptr},
    {"try_files", kServer | kLocation, h_try_files, nullptr, nullptr},
    {"charset", kAnyHttp, h_charset, nullptr, nullptr},
    {"charset_types", kAnyHttp, nullptr, nullptr, "Wraith adds the charset to every textual type"},
    {"source_charset", kAnyHttp, nullptr, "charset conversion: no Wraith equivalent", nullptr},
    {"default_type", kAnyHttp, h_default_type, nullptr, nullptr},
    {"expires", kAnyHttp, h_expires, nullptr, nullptr},
    {"add_header", kAnyHttp, h_add_header, nullptr, nullptr},
    {"error_page", kAnyHttp, h_error_page, nullptr, nullptr},
    {"return", kServer | kLocation | kIf, h_return, nullptr, nullptr},
    {"rewrite", kServer | kLocation | kIf, h_rewrite, nullptr, nullptr},
    {"sendfile", kAnyHttp, nullptr, nullptr, "Wraith always uses sendfile"},
    {"tcp_nopush", kAnyHttp, nullptr, nullptr, "Wraith corks responses itself"},
    {"tcp_nodelay", kAnyHttp, nullptr, nullptr, "always on in Wraith"},
    {"types_hash_max_size", kAnyHttp, nullptr, nullptr, "not needed"},
    {"types_hash_bucket_size", kAnyHttp, nullptr, nullptr, "not needed"},
    {"server_names_hash_bucket_size", kHttp, nullptr, nullptr, "not needed"},
    {"server_names_hash_max_size", kHttp, nullptr, nullptr, "not needed"},
    {"variables_hash_max_size", kHttp, nullptr, nullptr, "not needed"},
    {"server_tokens", kAnyHttp, nullptr, nullptr, "Wraith's Server field carries no version"},
    {"etag", kAnyHttp, nullptr, nullptr, "Wraith sends ETags"},
    {"if_modified_since", kAnyHttp, nullptr, nullptr, "Wraith answers conditionals"},
    {"log_not_found", kAnyHttp, nullptr, nullptr, "not needed"},
    {"open_file_cache", kAnyHttp, nullptr, nullptr, "Wraith's own open-file cache is on"},
    {"open_file_cache_valid", kAnyHttp, nullptr, nullptr, "Wraith's own open-file cache is on"},
    {"open_file_cache_min_uses", kAnyHttp, nullptr, nullptr, "not needed"},
    {"open_file_cache_errors", kAnyHttp, nullptr, nullptr, "not needed"},
    {"output_buffers", kAnyHttp, nullptr, nullptr, "not needed"},
    {"aio", kAnyHttp, nullptr, nullptr, "not needed"},
    {"directio", kAnyHttp, nullptr, nullptr, "not needed"},
    {"reset_timedout_connection", kAnyHttp, nullptr, nullptr,
     "Wraith closes timed out "
     "connections"},
    {"keepalive_disable", kAnyHttp, nullptr, nullptr, "not needed"},
    {"msie_padding", kAnyHttp, nullptr, nullptr, "not needed"},
    {"server_name_in_redirect", kAnyHttp, nullptr, nullptr, "Wraith redirects relatively"},
    {"port_in_redirect", kAnyHttp, nullptr, nullptr, "Wraith redirects relatively"},
    {"absolute_redirect", kAnyHttp, nullptr, nullptr, "Wraith redirects relatively"},
    {"disable_symlinks", kAnyHttp, nullptr, nullptr,
     "Wraith follows symbolic links only within the root (static.follow_symlinks)"},
    // limits and timeouts
    {"client_max_body_size", kAnyHttp, h_client_max_body_size, nullptr, nullptr},
    {"keepalive_timeout", kAnyHttp, h_keepalive_timeout, nullptr, nullptr},
    {"keepalive_requests", kAnyHttp, h_keepalive_requests, nullptr, nullptr},
    {"send_timeout", kAnyHttp, h_send_timeout, nullptr, nullptr},
    {"client_header_timeout", kHttp | kServer, h_client_header_timeout, nullptr, nullptr},
    {"client_body_timeout", kAnyHttp, h_client_body_timeout, nullptr, nullptr},
    {"client_body_buffer_size", kAnyHttp, nullptr, nullptr, "not needed"},
    {"client_header_buffer_size", kHttp | kServer, nullptr, nullptr, "not needed"},
    {"large_client_header_buffers", kHttp | kServer, nullptr, nullptr,
     "Wraith's limit is http.max_header_size (32k)"},
    // compression
    {"gzip", kAnyHttp, h_gzip, nullptr, nullptr},
    {"gzip_comp_level", kAnyHttp, h_gzip_comp_level, nullptr, nullptr},
    {"gzip_min_length", kAnyHttp, h_gzip_min_length, nullptr, nullptr},
    {"gzip_types", kAnyHttp, h_gzip_types, nullptr, nullptr},
    {"gzip_static", kAnyHttp, h_gzip_static, nullptr, nullptr},
    {"gzip_proxied", kAnyHttp, h_gzip_proxied, nullptr, nullptr},
    {"gzip_vary", kAnyHttp, nullptr, nullptr, "Wraith always sends Vary: Accept-Encoding"},
    {"gzip_buffers", kAnyHttp, nullptr, nullptr, "not needed"},
    {"gzip_http_version", kAnyHttp, nullptr, nullptr, "not needed"},
    {"gzip_disable", kAnyHttp, nullptr, nullptr, "not needed for today's browsers"},
    // TLS
    {"ssl_certificate", kHttp | kServer, h_ssl_certificate, nullptr, nullptr},
    {"ssl_certificate_key", kHttp | kServer, h_ssl_certificate_key, nullptr, nullptr},
    {"ssl_protocols", kHttp | kServer, h_ssl_protocols, nullptr, nullptr},
    {"ssl_ciphers", kHttp | kServer, h_ssl_ciphers, nullptr, nullptr},
    {"ssl_client_certificate", kHttp | kServer, h_ssl_client_certificate, nullptr, nullptr},
    {"ssl_verify_client", kHttp | kServer, h_ssl_verify_client, nullptr, nullptr},
    {"ssl_crl", kHttp | kServer, h_ssl_crl, nullptr, nullptr},
    {"ssl_stapling", kHttp | kServer, h_ssl_stapling, nullptr, nullptr},
    {"ssl_stapling_file", kHttp | kServer, h_ssl_stapling_file, nullptr, nullptr},
    {"ssl_stapling_verify", kHttp | kServer, nullptr, nullptr, "Wraith always verifies"},
    {"ssl_trusted_certificate", kHttp | kServer, nullptr, nullptr,
     "Wraith verifies OCSP answers against the chain"},
    {"ssl_prefer_server_ciphers", kHttp | kServer, nullptr, nullptr, "always on in Wraith"},
    {"ssl_session_cache", kHttp | kServer, nullptr, nullptr,
     "Wraith resumes with tickets shared by every worker"},
    {"ssl_session_timeout", kHttp | kServer, nullptr, nullptr, "not needed"},
    {"ssl_session_tickets", kHttp | kServer, nullptr, nullptr,
     "Wraith's ticket keys are made at start and rotated every 12 hours"},
    {"ssl_dhparam", kHttp | kServer, nullptr, nullptr, "Wraith uses ECDHE only"},
    {"ssl_ecdh_curve", kHttp | kServer, nullptr, nullptr, "Wraith offers X25519, P-256 and P-384"},
    {"ssl_buffer_size", kHttp | kServer, nullptr, nullptr, "not needed"},
    {"ssl_verify_depth", kHttp | kServer, nullptr, nullptr, "not needed"},
    // proxy
    {"proxy_pass", kLocation | kIf, h_proxy_pass, nullptr, nullptr},
    {"grpc_pass", kLocation | kIf, h_grpc_pass, nullptr, nullptr},
    {"proxy_set_header", kAnyHttp, h_proxy_set_header, nullptr, nullptr},
    {"proxy_hide_header", kAnyHttp, h_proxy_hide_header, nullptr, nullptr},
    {"proxy_connect_timeout", kAnyHttp, h_proxy_connect_timeout, nullptr, nullptr},
    {"proxy_read_timeout", kAnyHttp, h_proxy_read_timeout, nullptr, nullptr},
    {"proxy_send_timeout", kAnyHttp, h_proxy_send_timeout, nullptr, nullptr},
    {"proxy_http_version", kAnyHttp, h_proxy_http_version, nullptr, nullptr},
    {"proxy_buffering", kAnyHttp, h_proxy_buffering, nullptr, nullptr},
    {"proxy_request_buffering", kAnyHttp, h_proxy_request_buffering, nullptr, nullptr},
    {"proxy_redirect", kAnyHttp, h_proxy_redirect, nullptr, nullptr},
    {"proxy_next_upstream", kAnyHttp, h_proxy_next_upstream, nullptr, nullptr},
    {"proxy_next_upstream_tries", kAnyHttp, h_proxy_next_upstream_tries, nullptr, nullptr},
    {"proxy_buffers", kAnyHttp, nullptr, nullptr, "Wraith streams with its own buffers"},
    {"proxy_buffer_size", kAnyHttp, nullptr, nullptr, "Wraith streams with its own buffers"},
    {"proxy_busy_buffers_size", kAnyHttp, nullptr, nullptr, "not needed"},
    {"proxy_max_temp_file_size", kAnyHttp, nullptr, nullptr, "not needed"},
    {"proxy_ssl_server_name", kAnyHttp, nullptr, nullptr, "Wraith sends the server's name as SNI"},
    {"proxy_cache", kAnyHttp, nullptr, kCache, nullptr},
    {"proxy_cache_path", kHttp, nullptr, kCache, nullptr},
    {"proxy_cache_valid", kAnyHttp, nullptr, kCache, nullptr},
    {"proxy_cache_key", kAnyHttp, nullptr, kCache, nullptr},
    {"proxy_intercept_errors", kAnyHttp, nullptr,
     "proxy_intercept_errors: Wraith passes upstream errors on", nullptr},
    {"proxy_pass_header", kAnyHttp, nullptr,
     "proxy_pass_header: Wraith sends its own Date "
     "and Server",
     nullptr},
    // logs
    {"access_log", kAnyHttp, h_access_log, nullptr, nullptr},
    {"log_format", kHttp, h_log_format, nullptr, nullptr},
    // rate, connection and bandwidth limits (limits.cc)
    {"limit_req_zone", kHttp, h_limit_req_zone, nullptr, nullptr},
    {"limit_req", kAnyHttp, h_limit_req, nullptr, nullptr},
    {"limit_req_status", kAnyHttp, h_limit_req_status, nullptr, nullptr},
    {"limit_req_dry_run", kAnyHttp, h_limit_req_dry_run, nullptr, nullptr},
    {"limit_req_log_level", kAnyHttp, nullptr, nullptr,
     "Wraith logs refusals at \"warn\", rate-limited"},
    {"limit_conn_zone", kHttp, h_limit_conn_zone, nullptr, nullptr},
    {"limit_conn", kAnyHttp, h_limit_conn, nullptr, nullptr},
    {"limit_conn_status", kAnyHttp, h_limit_conn_status, nullptr, nullptr},
    {"limit_conn_dry_run", kAnyHttp, h_limit_conn_dry_run, nullptr, nullptr},
    {"limit_conn_log_level", kAnyHttp, nullptr, nullptr,
     "Wraith logs refusals at \"warn\", rate-limited"},
    {"limit_rate", kAnyHttp, h_limit_rate, nullptr, nullptr},
    {"limit_rate_after", kAnyHttp, h_limit_rate_after, nullptr, nullptr},
    // not in Wraith yet
    {"allow", kAnyHttp, h_access, nullptr, nullptr},
    {"deny", kAnyHttp, h_access, nullptr, nullptr},
    {"satisfy", kAnyHttp, nullptr,
     "satisfy any: Wraith requires every access rule and credential check to pass", nullptr},
    {"auth_basic", kAnyHttp, h_auth_basic, nullptr, nullptr},
    {"auth_basic_user_file", kAnyHttp, h_auth_basic_user_file, nullptr, nullptr},
    {"auth_request", kAnyHttp, h_auth_request, nullptr, nullptr},
    {"auth_request_set", kAnyHttp, h_auth_request_set, nullptr, nullptr},
    {"set", kServer | kLocation | kIf, nullptr, kVariables, nullptr},
    {"set_real_ip_from", kAnyHttp, h_set_real_ip_from, nullptr, nullptr},
    {"real_ip_header", kAnyHttp, h_real_ip_header, nullptr, nullptr},
    {"real_ip_recursive", kAnyHttp, h_real_ip_recursive, nullptr, nullptr},
    {"internal", kLocation, nullptr, "internal locations: no Wraith equivalent", nullptr},
    {"valid_referers", kAnyHttp, nullptr, "referer checks: no Wraith equivalent yet", nullptr},
    {"sub_filter", kAnyHttp, nullptr, "body rewriting: no Wraith equivalent", nullptr},
    {"ssi", kAnyHttp, nullptr, "server-side includes: no Wraith equivalent", nullptr},
    {"stub_status", kLocation, h_stub_status, nullptr, nullptr},
    {"mirror", kAnyHttp, nullptr, "request mirroring: no Wraith equivalent", nullptr},
    {"fastcgi_pass", kLocation | kIf, nullptr, kFastcgi, nullptr},
    {"fastcgi_param", kAnyHttp, nullptr, kFastcgi, nullptr},
    {"fastcgi_index", kAnyHttp, nullptr, kFastcgi, nullptr},
    {"fastcgi_split_path_info", kLocation, nullptr, kFastcgi, nullptr},
    {"uwsgi_pass", kLocation | kIf, nullptr, kFastcgi, nullptr},
    {"scgi_pass", kLocation | kIf, nullptr, kFastcgi, nullptr},
    {"perl", kLocation, nullptr, kScripting, nullptr},
    {"perl_set", kHttp, nullptr, kScripting, nullptr},
    {"perl_modules", kHttp, nullptr, kScripting, nullptr},
    {"perl_require", kHttp, nullptr, kScripting, nullptr},
    {"js_import", kAnyHttp, nullptr, kScripting, nullptr},
    {"js_content", kLocation, nullptr, kScripting, nullptr},
    {"content_by_lua_block", kLocation, nullptr, kScripting, nullptr},
    {"access_by_lua_block", kAnyHttp, nullptr, kScripting, nullptr},
    {"content_by_lua", kLocation, nullptr, kScripting, nullptr},
    {"lua_package_path", kHttp, nullptr, kScripting, nullptr},
    {"empty_gif", kLocation, nullptr, "empty_gif: no Wraith equivalent", nullptr},
};

} // namespace

const DirectiveSpec* find_directive(const std::string& name) {
    for (const auto& d : kDirectives)
        if (name == d.name)
            return &d;
    // Any other Lua/Perl/njs directive is scripting too.
    static const DirectiveSpec kLua{"*_by_lua*", kAnyHttp | kMain, nullptr, kScripting, nullptr};
    if (name.find("_by_lua") != std::string::npos || name.rfind("lua_", 0) == 0 ||
        name.rfind("perl_", 0) == 0 || name.rfind("js_", 0) == 0)
        return &kLua;
    return nullptr;
}

} // namespace wraith::convert
