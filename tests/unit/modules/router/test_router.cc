// Router: which site a host reaches and which route a path reaches (NGINX location order).
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/config.h"
#include "common/module.h"
#include "modules/router/router.h"

using namespace wraith;

namespace {

// A condition for the tests: the request has field `name` with value `value`.
class FieldCondition final : public RouteCondition {
public:
    FieldCondition(std::string name, std::string value)
        : name_(std::move(name)), value_(std::move(value)) {}
    bool matches(const Request& req) const override { return req.headers.get(name_) == value_; }

private:
    std::string name_, value_;
};

std::unique_ptr<RouteCondition> build_field(TableReader& r, BuildContext&) {
    return std::make_unique<FieldCondition>(r.string("name", "x-test"), r.string("value", ""));
}

const ModuleRegistrar field_registrar{
    ModuleSpec{.key = "router_field", .build_condition = build_field}};

// The route for a request whose decoded path is `path` (and header x-test, when given).
const Route* route_for(const Site& site, std::string_view path, std::string_view x_test) {
    Request req;
    req.decoded_path = path;
    req.headers.add("x-test", x_test);
    return Router::route_for(site, req);
}

// The route for a request whose decoded path is `path`.
const Route* route_for(const Site& site, std::string_view path) {
    Request req;
    req.decoded_path = path;
    return Router::route_for(site, req);
}

std::shared_ptr<const Config> load(const std::string& text) {
    Diagnostics diag;
    auto cfg = load_config_text(text, "router.toml", "/tmp", diag);
    for (const auto& d : diag.list())
        FAIL(d.text());
    REQUIRE(cfg);
    return cfg;
}

const char* kSites = R"(
[[listen]]
address = "127.0.0.1:8080"

[[site]]
hosts = ["example.com", "www.example.com"]
  [[site.route]]
  respond = { status = 200, body = "a" }

[[site]]
hosts = ["*.example.com"]
  [[site.route]]
  respond = { status = 200, body = "b" }

[[site]]
hosts = ["*.deep.example.com"]
  [[site.route]]
  respond = { status = 200, body = "c" }

[[site]]
hosts = ["~^api[0-9]+\\.test$"]
  [[site.route]]
  respond = { status = 200, body = "d" }

[[site]]
hosts = ["fallback.test"]
default = true
  [[site.route]]
  respond = { status = 200, body = "e" }
)";

const char* kRoutes = R"(
[[listen]]
address = "127.0.0.1:8080"

[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "root" }
  [[site.route]]
  path = "/static/"
  respond = { status = 200, body = "static" }
  [[site.route]]
  path = "/static/img/"
  respond = { status = 200, body = "img" }
  [[site.route]]
  path = "=/static/exact"
  respond = { status = 200, body = "exact" }
  [[site.route]]
  path = "~\\.php$"
  respond = { status = 200, body = "php" }
  [[site.route]]
  path = "~^/static/.*\\.(png|jpg)$"
  respond = { status = 200, body = "image-regex" }
)";

size_t site_index(const Config& cfg, const Site* s) {
    for (size_t i = 0; i < cfg.sites.size(); ++i)
        if (cfg.sites[i].get() == s)
            return i;
    return SIZE_MAX;
}

size_t route_index(const Site& site, const Route* r) {
    for (size_t i = 0; i < site.routes.size(); ++i)
        if (&site.routes[i] == r)
            return i;
    return SIZE_MAX;
}

} // namespace

TEST_CASE("router: exact host beats wildcard, longest wildcard wins, then regex, then default") {
    auto cfg = load(kSites);
    Router router(*cfg);
    CHECK(site_index(*cfg, router.site_for("example.com")) == 0);
    CHECK(site_index(*cfg, router.site_for("www.example.com")) == 0);
    CHECK(site_index(*cfg, router.site_for("shop.example.com")) == 1);
    CHECK(site_index(*cfg, router.site_for("a.b.example.com")) == 1);
    CHECK(site_index(*cfg, router.site_for("x.deep.example.com")) == 2);
    CHECK(site_index(*cfg, router.site_for("api7.test")) == 3);
    CHECK(site_index(*cfg, router.site_for("api.test")) == 4);
    CHECK(site_index(*cfg, router.site_for("unknown.org")) == 4);
    CHECK(site_index(*cfg, router.site_for("")) == 4);
}

TEST_CASE("router: a wildcard needs a label before its suffix; trailing dot is ignored") {
    auto cfg = load(kSites);
    Router router(*cfg);
    // "*.example.com" does not match the bare domain; that one has its own exact entry.
    CHECK(site_index(*cfg, router.site_for("example.com.")) == 0);
    CHECK(site_index(*cfg, router.site_for(".example.com")) == 4);
}

TEST_CASE("router: without default = true the first site is the default") {
    auto cfg = load(R"(
[[listen]]
address = "127.0.0.1:8080"
[[site]]
hosts = ["one.test"]
  [[site.route]]
  respond = { status = 200 }
[[site]]
hosts = ["two.test"]
  [[site.route]]
  respond = { status = 200 }
)");
    Router router(*cfg);
    CHECK(site_index(*cfg, router.site_for("three.test")) == 0);
    CHECK(site_index(*cfg, router.site_for("two.test")) == 1);
}

TEST_CASE("router: exact path wins, then regex in file order, else the longest prefix") {
    auto cfg = load(kRoutes);
    const Site& site = *cfg->sites[0];
    CHECK(route_index(site, route_for(site, "/")) == 0);
    CHECK(route_index(site, route_for(site, "/about")) == 0);
    CHECK(route_index(site, route_for(site, "/static/")) == 1);
    CHECK(route_index(site, route_for(site, "/static/app.css")) == 1);
    CHECK(route_index(site, route_for(site, "/static/img/logo.svg")) == 2);
    CHECK(route_index(site, route_for(site, "/static/exact")) == 3);
    CHECK(route_index(site, route_for(site, "/static/exact/more")) == 1);
    CHECK(route_index(site, route_for(site, "/index.php")) == 4);
    // Both regexes match: the first in file order wins, even over a longer prefix.
    CHECK(route_index(site, route_for(site, "/static/img/a.png")) == 5);
    CHECK(route_index(site, route_for(site, "/static/x.php")) == 4);
}

TEST_CASE("router: no route matches when no prefix covers the path") {
    auto cfg = load(R"(
[[listen]]
address = "127.0.0.1:8080"
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/api/"
  respond = { status = 200 }
)");
    const Site& site = *cfg->sites[0];
    CHECK(route_for(site, "/") == nullptr);
    CHECK(route_for(site, "/api") == nullptr);
    CHECK(route_for(site, "/api/v1") != nullptr);
}

TEST_CASE("router: a route whose conditions fail lets routing fall to the next candidate") {
    auto cfg = load(R"(
[[listen]]
address = "127.0.0.1:8080"
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "=/x"
  router_field = { value = "exact" }
  respond = { status = 200 }
  [[site.route]]
  path = "~^/x"
  router_field = { value = "regex" }
  respond = { status = 200 }
  [[site.route]]
  path = "/x"
  router_field = { value = "long" }
  respond = { status = 200 }
  [[site.route]]
  path = "/"
  respond = { status = 200 }
)");
    const Site& site = *cfg->sites[0];
    CHECK(route_index(site, route_for(site, "/x", "exact")) == 0);
    CHECK(route_index(site, route_for(site, "/x", "regex")) == 1);  // exact failed
    CHECK(route_index(site, route_for(site, "/x", "long")) == 2);   // exact and regex failed
    CHECK(route_index(site, route_for(site, "/x", "none")) == 3);   // every condition failed
    CHECK(route_index(site, route_for(site, "/xy", "exact")) == 3); // not the exact path
    // Without a request that satisfies anything, unconditional routes behave as before.
    CHECK(route_index(site, route_for(site, "/other")) == 3);
}
