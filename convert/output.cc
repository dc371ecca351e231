// wraith.toml text from what the Converter built, and the `wraith convert` command.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "convert/converter.h"

namespace wraith::convert {

namespace {

// One line of comment text: no line breaks or control characters.
std::string clean(const std::string& raw) {
    std::string s = utf8_or_replaced(raw);
    std::string out;
    for (unsigned char c : s)
        out += c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c);
    return out;
}

std::string key(const std::string& k) {
    bool bare = !k.empty();
    for (unsigned char c : k)
        bare &= std::isalnum(c) || c == '_' || c == '-';
    return bare ? k : Converter::quote(k);
}

void lines(std::string& out, const std::map<std::string, Line>& table) {
    for (const auto& [k, l] : table) {
        out += key(l.key) + " = " + l.value;
        if (!l.comment.empty())
            out += "   # " + clean(l.comment);
        out += "\n";
    }
}

void comment_block(std::string& out, const std::vector<std::string>& comments,
                   const char* indent = "") {
    for (const auto& c : comments)
        out += std::string(indent) + "# " + clean(c) + "\n";
}

} // namespace

std::string Converter::render() const {
    std::string out;
    out += "# wraith.toml converted from " + clean(main_file_) + " by `wraith convert`.\n";
    out += "# Check it with `wraith -t -c FILE`. Comments marked \"approximation\" are places\n"
           "# where Wraith does not do exactly what NGINX did; what could not be converted is\n"
           "# listed at the end with FILE:LINE. Wraith sites answer on every [[listen]]\n"
           "# address and are chosen by host name alone (NGINX: per listen address).\n";
    comment_block(out, header_comments_);

    std::map<std::string, Line> server_table = server;
    if (!mime_types.empty())
        server_table["mime_types"] = Line{"mime_types", quote(mime_types), mime_types_at.text()};
    if (!server_table.empty()) {
        out += "\n[server]\n";
        lines(out, server_table);
    }
    if (!http.empty()) {
        out += "\n[http]\n";
        lines(out, http);
    }
    if (http_access_log_.set) {
        out += "\n[access_log]   # " + clean(http_access_log_.at.text()) + "\n";
        out += "path = " +
               quote(http_access_log_.path == "off" ? "off" : prefix_path(http_access_log_.path)) +
               "\n";
        if (http_access_log_.path != "off")
            out += "format = " + quote(http_access_log_.format) + "\n";
    }
    for (const auto& l : listens_) {
        out += "\n[[listen]]\n";
        comment_block(out, l.comments);
        out += "address = " + quote(l.address) + "\n";
        if (l.tls)
            out += "tls = true\n";
        out += "protocols = " + quote_list(l.protocols) + "\n";
        if (l.ipv6_only && *l.ipv6_only)
            out += "ipv6_only = true\n";
        if (l.backlog)
            out += "backlog = " + std::to_string(*l.backlog) + "\n";
    }
    for (const auto& u : upstreams) {
        out += "\n[upstream." + key(u.name) + "]\n";
        comment_block(out, u.comments);
        std::set<std::string> keys; // a directive given twice (least_conn; ip_hash;): first wins
        for (const auto& l : u.lines) {
            if (!keys.insert(l.key).second)
                continue;
            out += key(l.key) + " = " + l.value;
            if (!l.comment.empty())
                out += "   # " + clean(l.comment);
            out += "\n";
        }
    }
    for (const auto& z : limit_zones) {
        const bool says_something = std::any_of(z.lines.begin(), z.lines.end(), [](const Line& l) {
            return l.key == "rate" || l.key == "connections" || l.key == "bandwidth";
        });
        if (!says_something) {
            // A limit_conn_zone no limit_conn uses: Wraith has no empty connection zone.
            out += "\n# " + clean(z.comments.front()) + ": no limit_conn uses it; not written\n";
            continue;
        }
        out += "\n[limit." + key(z.name) + "]\n";
        comment_block(out, z.comments);
        std::set<std::string> keys;
        for (const auto& l : z.lines)
            if (keys.insert(l.key).second)
                out += key(l.key) + " = " + l.value + "\n";
    }
    for (const auto& site : sites_) {
        out += "\n[[site]]\n";
        comment_block(out, site.comments);
        std::vector<std::string> hosts;
        std::set<std::string> seen;
        for (const auto& h : site.hosts)
            if (seen.insert(h).second)
                hosts.push_back(h);
        out += "hosts = " + quote_list(hosts) + "\n";
        if (site.is_default)
            out += "default = true\n";
        if (!site.tls.empty())
            out += "tls = " + site.tls + "\n";
        if (!site.error_pages.empty())
            out += "error_pages = " + site.error_pages + "\n";
        if (!site.access_log.empty())
            out += "access_log = " + site.access_log + "\n";
        std::vector<RouteOut> routes = site.routes;
        if (routes.empty()) {
            RouteOut r;
            r.path = "/";
            r.handler = "respond";
            r.options = "{ status = 404 }";
            r.comments.push_back("nothing in this server could be converted");
            routes.push_back(r);
        }
        std::set<std::string> paths;
        for (const auto& r : routes) {
            out += "\n  [[site.route]]\n";
            comment_block(out, r.comments, "  ");
            if (!paths.insert(r.path).second)
                out += "  # the same path as a route above: NGINX would refuse it too\n";
            out += "  path = " + quote(r.path) + "\n";
            out += "  " + r.handler + " = " + r.options + "\n";
            for (const auto& line : r.extra)
                out += "  " + line + "\n";
            if (!r.compress.empty())
                out += "  compress = " + r.compress + "\n";
        }
    }
    out += "\n# Not converted (" + std::to_string(result_.not_converted.size()) + "):\n";
    for (const auto& n : result_.not_converted)
        out += "#   " + clean(n) + "\n";
    out += "# Approximations (" + std::to_string(result_.approximations.size()) + "):\n";
    for (const auto& a : result_.approximations)
        out += "#   " + clean(a) + "\n";
    out += "# Ignored, nothing to do in Wraith (" + std::to_string(ignored_.size()) + "):\n";
    for (const auto& i : ignored_)
        out += "#   " + clean(i) + "\n";
    return out;
}

ConvertResult convert_nginx(const NginxConf& conf, const std::string& main_file) {
    Converter c;
    return c.run(conf, main_file);
}

const char kConvertHelp[] =
    "usage: wraith convert [-o OUT] NGINX_CONF\n\n"
    "Reads an NGINX configuration (includes and their globs followed, mime.types used as\n"
    "server.mime_types) and writes the equivalent wraith.toml to OUT or standard output.\n"
    "A comment marks every approximation; directives with no Wraith equivalent yet are\n"
    "listed at the end of the file and on standard error as FILE:LINE: directive -- why.\n"
    "Exit 0 once converted, 1 if the input cannot be read or parsed, 2 on usage errors.\n";

int convert_main(const std::vector<std::string>& args) {
    std::string input, output;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-h" || a == "--help") {
            fputs(kConvertHelp, stdout);
            return 0;
        }
        if (a == "-o" || a == "--output") {
            if (i + 1 >= args.size()) {
                fprintf(stderr, "wraith: convert: %s needs a file name\n", a.c_str());
                return 2;
            }
            output = args[++i];
        } else if (!a.empty() && a[0] == '-' && a != "-") {
            fprintf(stderr, "wraith: convert: unknown option %s\n%s", a.c_str(), kConvertHelp);
            return 2;
        } else if (input.empty()) {
            input = a;
        } else {
            fprintf(stderr, "wraith: convert: one NGINX configuration at a time\n");
            return 2;
        }
    }
    if (input.empty()) {
        fputs(kConvertHelp, stderr);
        return 2;
    }
    NginxConf conf = read_nginx_conf(input);
    ConvertResult r = convert_nginx(conf, input);
    if (!r.ok) {
        for (const auto& e : r.errors)
            fprintf(stderr, "%s\n", e.c_str());
        fprintf(stderr, "wraith: convert: %s could not be read; nothing written\n", input.c_str());
        return 1;
    }
    if (output.empty()) {
        fputs(r.toml.c_str(), stdout);
    } else {
        std::ofstream out(output, std::ios::binary | std::ios::trunc);
        out << r.toml;
        if (!out.flush()) {
            fprintf(stderr, "wraith: convert: cannot write %s\n", output.c_str());
            return 1;
        }
    }
    fprintf(stderr,
            "wraith: convert: %s: %zu file(s) read, %zu approximation(s), %zu not "
            "converted%s\n",
            input.c_str(), conf.files.size(), r.approximations.size(), r.not_converted.size(),
            r.not_converted.empty() ? "" : ":");
    for (const auto& n : r.not_converted)
        fprintf(stderr, "  %s\n", n.c_str());
    return 0;
}

} // namespace wraith::convert
