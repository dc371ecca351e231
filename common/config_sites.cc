// The loader's [[site]] tables: hosts, TLS, access log, error pages; routes and the filter
// keys of the site itself are built by config_scopes.cc.
#include <algorithm>
#include <cstring>

#include <toml++/toml.h>

#include "common/config_loader.h"
#include "common/config_values.h"

namespace wraith::config_loader {

using namespace config_values;

void Loader::load_sites(const toml::node* n) {
    for (const toml::table* t : tables_of(n, "site"))
        load_site(*t);
    // A server of stream listeners only (a TCP proxy) needs no site.
    bool serves_http = cfg_.listeners.empty() ||
                       std::any_of(cfg_.listeners.begin(), cfg_.listeners.end(),
                                   [](const ListenConfig& l) { return l.http() || l.quic(); });
    if (serves_http && cfg_.sites.empty() && (!n || (n->as_array() && n->as_array()->empty())))
        diag_.error(SourcePos{diag_.file(), 1, 1},
                    "no [[site]] table: add one, e.g. [[site]] hosts = [\"*\"] with a "
                    "[[site.route]]");
    // With no explicit default, the first site in the file catches unclaimed hosts (as
    // nginx's first server block does).
    if (!default_site_ && !cfg_.sites.empty())
        cfg_.sites.front()->is_default = true;
}

void Loader::load_site(const toml::table& t) {
    auto site = std::make_unique<Site>();
    site->pos = diag_.pos(&t);
    TableReader r(t, diag_, "site");
    r.set_heading("[[site]]");

    if (const toml::node* hosts = r.node("hosts"))
        read_hosts(*hosts, *site);
    else
        diag_.error(site->pos, "site.hosts: required, e.g. hosts = [\"example.com\"] "
                               "(\"*\" matches any host)");

    if (r.boolean("default", false)) {
        if (default_site_) {
            r.error("default", "only one site may be the default, and the site at " +
                                   pos_text(default_site_->pos) + " already is");
        } else {
            site->is_default = true;
            default_site_ = site.get();
        }
    }

    site->access_log = cfg_.access_log; // absent or partial: inherit the global one
    if (const toml::table* log = r.table("access_log")) {
        TableReader lr(*log, diag_, "site.access_log");
        read_access_log(lr, site->access_log);
    }

    if (const toml::table* tls = r.table("tls")) {
        TableReader tr(*tls, diag_, "site.tls");
        site->tls = read_site_tls(tr);
    }

    if (const toml::table* pages = r.table("error_pages"))
        read_error_pages(*pages, *site);

    const toml::node* route_node = r.node("route");
    std::vector<const toml::table*> routes = tables_of(route_node, "site.route");
    if (routes.empty() &&
        (!route_node || (route_node->as_array() && route_node->as_array()->empty())))
        diag_.error(site->pos, "[[site]] needs at least one [[site.route]]");
    mark_filter_keys(r);
    r.finish();

    cfg_.sites.push_back(std::move(site));
    Site& built = *cfg_.sites.back();
    read_filters(t, Scope::site, &built, &cfg_.filters, built.filters);
    for (const toml::table* route : routes)
        load_route(*route, built);
}

std::unique_ptr<SiteTls> Loader::read_site_tls(TableReader& r) {
    auto tls = std::make_unique<SiteTls>();
    tls->pos = r.table_pos();
    auto read_pair = [&](TableReader& pr) {
        TlsCertificate c;
        c.pos = pr.pos("cert");
        std::optional<std::string> cert = pr.string("cert");
        std::optional<std::string> key = pr.string("key");
        if (!cert || cert->empty())
            pr.error("cert", "required: the certificate chain (PEM), e.g. cert = "
                             "\"example.com.pem\" (relative to server.cert_dir)");
        if (!key || key->empty())
            pr.error("key", "required: the private key (PEM) of cert, e.g. key = "
                            "\"example.com.key\"");
        if (cert && !cert->empty())
            c.cert = readable_file(pr, "cert", *cert, cfg_.server.cert_dir);
        if (key && !key->empty())
            c.key = readable_file(pr, "key", *key, cfg_.server.cert_dir);
        if (!c.cert.empty() && !c.key.empty())
            tls->certificates.push_back(std::move(c));
    };
    if (r.has("certificates")) {
        if (r.has("cert") || r.has("key"))
            r.error("certificates", "give either cert + key or certificates, not both");
        if (const toml::array* list = r.array("certificates")) {
            if (list->empty())
                r.error("certificates", "needs at least one { cert = ..., key = ... }");
            for (const toml::node& item : *list) {
                if (const toml::table* t = item.as_table()) {
                    TableReader pr(*t, diag_, "site.tls.certificates");
                    read_pair(pr);
                } else {
                    diag_.error(&item, "site.tls.certificates: expected a table "
                                       "{ cert = ..., key = ... }, got " +
                                           describe_value(item));
                }
            }
        }
    } else {
        read_pair(r);
    }
    std::string v = r.choice("min_version", "1.2", {"1.2", "1.3"});
    tls->min_version = v == "1.3" ? 0x0304 : 0x0303;
    std::string auth = r.choice("client_auth", "off", {"off", "optional", "require"});
    tls->client_auth = auth == "require"    ? SiteTls::ClientAuth::require
                       : auth == "optional" ? SiteTls::ClientAuth::optional
                                            : SiteTls::ClientAuth::off;
    if (std::optional<std::string> ca = r.string("client_ca")) {
        tls->client_ca_pos = r.pos("client_ca");
        tls->client_ca = readable_file(r, "client_ca", *ca, cfg_.server.cert_dir);
    }
    if (std::optional<std::string> crl = r.string("crl"))
        tls->crl = readable_file(r, "crl", *crl, cfg_.server.cert_dir);
    if (tls->client_auth != SiteTls::ClientAuth::off && tls->client_ca.empty())
        r.error("client_auth", "needs client_ca: the CA certificates (PEM) that issue "
                               "client certificates");
    if (!tls->crl.empty() && tls->client_ca.empty())
        r.error("crl", "applies to client certificates: set client_ca and client_auth");
    if (std::optional<std::string> staple = r.string("ocsp_staple")) {
        tls->ocsp_staple_pos = r.pos("ocsp_staple");
        tls->ocsp_staple = readable_file(r, "ocsp_staple", *staple, cfg_.server.cert_dir);
    }
    tls->ocsp_fetch = r.boolean("ocsp_fetch", true);
    tls->early_data = r.boolean("early_data", false);
    r.finish();
    return tls;
}

void Loader::read_hosts(const toml::node& hosts, Site& site) {
    std::vector<const toml::node*> items;
    if (hosts.is_string()) {
        items.push_back(&hosts);
    } else if (const toml::array* arr = hosts.as_array()) {
        for (const toml::node& element : *arr)
            items.push_back(&element);
        if (arr->empty())
            diag_.error(&hosts, "site.hosts: needs at least one host (\"*\" matches any)");
    } else {
        diag_.error(&hosts,
                    "site.hosts: expected an array of strings, got " + describe_value(hosts));
    }
    for (const toml::node* item : items) {
        const auto* s = item->as_string();
        if (!s) {
            diag_.error(item,
                        "site.hosts: expected an array of strings, got " + describe_value(*item));
            continue;
        }
        HostMatch m;
        if (std::string err = parse_host(s->get(), m); !err.empty()) {
            diag_.error(item, "site.hosts: " + err);
            continue;
        }
        std::string key = std::to_string(static_cast<int>(m.kind)) + m.text;
        auto [it, inserted] = loading_module_site_ ? std::pair{claimed_hosts_.end(), true}
                                                   : claimed_hosts_.emplace(key, diag_.pos(item));
        if (!inserted) {
            diag_.error(item, "site.hosts: " + in_quotes(s->get()) + " is already listed at " +
                                  pos_text(it->second));
            continue;
        }
        site.hosts.push_back(std::move(m));
    }
}

void Loader::read_error_pages(const toml::table& pages, Site& site) {
    for (const auto& [key, value] : pages) {
        std::string_view code = key.str();
        bool ok = code.size() == 3 && all_digits(code) && code >= "400" && code <= "599";
        if (!ok) {
            SourcePos p{diag_.file(), static_cast<int>(key.source().begin.line),
                        static_cast<int>(key.source().begin.column)};
            if (p.line == 0)
                p = diag_.pos(&value);
            diag_.error(p, "site.error_pages: " + in_quotes(code) +
                               " is not an error status (expected \"400\" to \"599\")");
            continue;
        }
        const auto* uri = value.as_string();
        if (!uri || uri->get().empty() || uri->get().front() != '/') {
            diag_.error(&value, "site.error_pages." + std::string(code) +
                                    ": expected a URI starting with \"/\", got " +
                                    describe_value(value));
            continue;
        }
        site.error_pages[std::stoi(std::string(code))] = uri->get();
    }
}

} // namespace wraith::config_loader
