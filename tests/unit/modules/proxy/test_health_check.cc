// Active health checks' pure parts: which worker checks an upstream, status ranges, the
// shared verdicts and their staleness; and the config keys of health_check, sticky, Unix
// sockets and the new timeouts.
#include <catch2/catch.hpp>

#include <sys/un.h>

#include <set>
#include <string>

#include "common/config.h"
#include "modules/proxy/health.h"
#include "modules/proxy/health_check.h"
#include "modules/proxy/upstream_config.h"

using namespace wraith;
using namespace wraith::proxy;

namespace {

std::shared_ptr<const Config> load(const std::string& upstream, std::string* errors = nullptr) {
    Diagnostics diag;
    std::string text = "[[listen]]\naddress = \"127.0.0.1:8080\"\n" + upstream +
                       "\n[[site]]\nhosts = [\"*\"]\n  [[site.route]]\n  path = \"/\"\n"
                       "  proxy = { upstream = \"app\" }\n";
    auto config = load_config_text(text, "t.toml", "/tmp", diag);
    if (errors)
        for (const Diagnostic& d : diag.list())
            *errors += d.text() + "\n";
    return config;
}

} // namespace

TEST_CASE("health checks: exactly one worker checks each upstream", "[proxy]") {
    for (int workers : {1, 2, 3, 8}) {
        std::set<int> owners;
        for (int slot = 0; slot < workers; ++slot)
            if (checks_upstream("api", slot, workers))
                owners.insert(slot);
        CHECK(owners.size() == 1);
    }
    // Many upstreams spread over the workers.
    std::set<int> used;
    for (int i = 0; i < 64; ++i)
        for (int slot = 0; slot < 4; ++slot)
            if (checks_upstream("up" + std::to_string(i), slot, 4))
                used.insert(slot);
    CHECK(used.size() == 4);
}

TEST_CASE("health checks: status ranges", "[proxy]") {
    HealthCheckConfig hc;
    CHECK(status_accepted(hc, 200));
    CHECK(status_accepted(hc, 399));
    CHECK_FALSE(status_accepted(hc, 404));
    hc.statuses = {{204, 204}, {300, 302}};
    CHECK(status_accepted(hc, 204));
    CHECK(status_accepted(hc, 301));
    CHECK_FALSE(status_accepted(hc, 200));
}

TEST_CASE("health checks: a down verdict holds only while fresh", "[proxy]") {
    static Health table; // a worker-private table: this process has no shared zone
    Health& h = table;
    uint64_t key = Health::key("unit-active", "127.0.0.1:1");
    CHECK(h.active_up(key, 1000, 500));
    h.set_active(key, false, 1000);
    CHECK_FALSE(h.active_up(key, 1200, 500));
    CHECK_FALSE(h.active_up(key, 999, 500)); // another process's clock read a bit behind
    CHECK(h.active_up(key, 1600, 500));      // stale: no checker kept it up to date
    h.set_active(key, true, 1700);
    CHECK(h.active_up(key, 1800, 500));
}

TEST_CASE("config: health_check, sticky, timeouts and Unix sockets", "[proxy][config]") {
    std::string errors;
    auto config = load("[upstream.app]\nservers = [\"unix:/run/app.sock\", \"127.0.0.1:9000\"]\n"
                       "first_byte_timeout = \"3s\"\ntotal_timeout = \"1m\"\n"
                       "sticky = { cookie = \"srv\", max_age = \"2h\", secure = true, "
                       "same_site = \"None\" }\n"
                       "[upstream.app.health_check]\npath = \"/healthz?full=1\"\n"
                       "status = [204, \"200-201\"]\nbody = \"ok\"\ninterval = \"2s\"\n"
                       "timeout = \"1s\"\nrise = 4\nfall = 5\n",
                       &errors);
    REQUIRE(config);
    const UpstreamConfig& up = *proxy_config(*config)->upstreams.at("app");
    REQUIRE(up.servers[0].addr.ss_family == AF_UNIX);
    CHECK(std::string(reinterpret_cast<const sockaddr_un&>(up.servers[0].addr).sun_path) ==
          "/run/app.sock");
    CHECK(up.first_byte_timeout.count() == 3000);
    CHECK(up.total_timeout.count() == 60000);
    CHECK(up.sticky.cookie == "srv");
    CHECK(up.sticky.max_age.count() == 7200000);
    CHECK(up.sticky.same_site == "None");
    const HealthCheckConfig& hc = up.health_check;
    CHECK(hc.enabled);
    CHECK(hc.http);
    CHECK(hc.path == "/healthz?full=1");
    CHECK(hc.statuses == std::vector<std::pair<int, int>>{{204, 204}, {200, 201}});
    CHECK(hc.body == "ok");
    CHECK((hc.interval.count() == 2000 && hc.timeout.count() == 1000));
    CHECK((hc.rise == 4 && hc.fall == 5));

    auto defaults = load("[upstream.app]\nservers = [\"127.0.0.1:9000\"]\n");
    REQUIRE(defaults);
    CHECK_FALSE(proxy_config(*defaults)->upstreams.at("app")->health_check.enabled);
    CHECK(proxy_config(*defaults)->upstreams.at("app")->sticky.cookie.empty());
}

TEST_CASE("config: health_check and sticky errors name the key", "[proxy][config]") {
    struct Case {
        const char* text;
        const char* message;
    } cases[] = {
        {"[upstream.app.health_check]\nstatus = \"99-200\"\n", "upstream.app.health_check.status"},
        {"[upstream.app.health_check]\nstatus = []\n", "at least one status"},
        {"[upstream.app.health_check]\npath = \"/a b\"\n", "upstream.app.health_check.path"},
        {"[upstream.app.health_check]\ntype = \"tcp\"\npath = \"/\"\n", "applies to type"},
        {"[upstream.app.health_check]\nbogus = 1\n", "bogus"},
        {"sticky = { cookie = \"\" }\n", "upstream.app.sticky.cookie"},
        {"sticky = { cookie = \"s\", max_age = \"10ms\" }\n", "max_age"},
        {"total_timeout = \"0s\"\n", "total_timeout"},
    };
    for (const Case& c : cases) {
        std::string errors;
        auto config =
            load(std::string("[upstream.app]\nservers = [\"127.0.0.1:9000\"]\n") + c.text, &errors);
        INFO(c.text);
        CHECK_FALSE(config);
        CHECK(errors.find(c.message) != std::string::npos);
        CHECK(errors.find("t.toml:") != std::string::npos);
    }
}
