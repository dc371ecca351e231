// The limit module's config and filter (modules/limit): every bad value is an error at its
// FILE:LINE:COL; `limit = [...]` at each scope; a request over the rate gets 429 with
// Retry-After and the RateLimit fields, or the zone's own status and body; dry_run only
// notes; an empty key falls back to the client's address; a request refused by a later zone
// gives the earlier zone its request back; the accept phase counts and refuses connections.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "common/config.h"
#include "common/module.h"
#include "modules/limit/limit_config.h"
#include "modules/limit/limit_worker.h"
#include "modules/router/router.h"
#include "support/recording_writer.h"
#include "worker/pipeline.h"

using namespace wraith;
using modtest::NoBody;
using modtest::RecordingWriter;
using modtest::TestExchange;

namespace {

const char* const kHead = "[[listen]]\naddress = \"127.0.0.1:8080\"\n";

std::vector<std::string> errors_of(const std::string& text) {
    Diagnostics diag;
    std::string site = text.find("[[site]]") == std::string::npos
                           ? "[[site]]\nhosts = [\"*\"]\n  [[site.route]]\n  respond = {}\n"
                           : "";
    auto cfg = load_config_text(kHead + text + site, "limit.toml", "/tmp", diag);
    std::vector<std::string> out;
    for (const auto& d : diag.list())
        out.push_back(d.text());
    if (!cfg)
        REQUIRE_FALSE(out.empty());
    return out;
}

// One error, and it is this text.
void check_error(const std::string& text, const std::string& expected) {
    std::vector<std::string> errors = errors_of(text);
    INFO(text);
    std::string all;
    for (const auto& e : errors)
        all += e + "\n";
    INFO(all);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0] == expected);
}

// A config with a worker's limit state (private tables: no master here).
struct Server {
    std::shared_ptr<const Config> config;
    std::unique_ptr<Router> router;
    std::unique_ptr<ModuleWorkers> modules;
    std::unique_ptr<Pipeline> pipeline;

    explicit Server(const std::string& text) {
        Diagnostics diag;
        config = load_config_text(kHead + text, "limit.toml", "/tmp", diag);
        for (const auto& d : diag.list())
            FAIL(d.text());
        REQUIRE(config);
        router = std::make_unique<Router>(*config);
        modules = std::make_unique<ModuleWorkers>(ModuleRegistry::instance().all().size());
        const ModuleSpec* spec = ModuleRegistry::instance().find("limit");
        REQUIRE(spec);
        WorkerContext ctx{nullptr, config, 0, 1, 1, nullptr};
        modules->set(ModuleRegistry::instance().index_of(*spec), spec->worker_start(ctx));
        pipeline = std::make_unique<Pipeline>(*config, *router, nullptr, modules.get());
    }
};

struct Run {
    TestExchange ex;
    NoBody body;
    RecordingWriter out;
    ConnectionInfo conn;
    Run(Server& s, std::string_view path, std::string_view client = "192.0.2.1",
        std::vector<Header> fields = {}) {
        ex.req.host = "a.test";
        ex.req.path = ex.req.target = ex.arena.copy(path);
        // The pipeline takes the client's address from the connection (real_ip may change it).
        conn.peer_ip = ex.arena.copy(client);
        ex.req.conn = &conn;
        for (const Header& h : fields)
            ex.req.headers.add(h.name, h.value);
        s.pipeline->run(ex.req, body, out);
    }
    std::string note() const {
        for (const LogNote* n = ex.req.log_notes; n; n = n->next)
            if (n->name == "limit")
                return std::string(n->value);
        return {};
    }
};

const char* const kSite = R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "ok" }
)";

ConnectionInfo peer(const char* ip) {
    ConnectionInfo c;
    c.peer.v4.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &c.peer.v4.sin_addr);
    return c;
}

} // namespace

TEST_CASE("limit config: bad rates, sizes and keys are errors at their position") {
    check_error("[limit.a]\nrate = \"0/s\"\n",
                "limit.toml:4:8: limit.a.rate: a rate must allow at least one request per "
                "period; to block a route, answer it with respond = { status = 403 }");
    check_error("[limit.a]\nrate = \"fast\"\n",
                "limit.toml:4:8: limit.a.rate: expected a rate like \"20/s\", \"600/m\", "
                "\"1000/h\" or \"10000/d\", got \"fast\"");
    check_error("[limit.a]\nrate = \"20/y\"\n",
                "limit.toml:4:8: limit.a.rate: expected a rate like \"20/s\", \"600/m\", "
                "\"1000/h\" or \"10000/d\", got \"20/y\"");
    check_error("[limit.a]\nrate = \"99999999999999999999/s\"\n",
                "limit.toml:4:8: limit.a.rate: rate too large: \"99999999999999999999/s\"");
    check_error("[limit.a]\nrate = \"2000000/s\"\n",
                "limit.toml:4:8: limit.a.rate: at most 1000000 per second");
    check_error("[limit.a]\nrate = \"20/s\"\nsize = \"1k\"\n",
                "limit.toml:5:8: limit.a.size: too small: a zone needs at least \"32k\" (about "
                "813 keys)");
    check_error("[limit.a]\nrate = \"20/s\"\nsize = \"2g\"\n",
                "limit.toml:5:8: limit.a.size: too large: at most \"1g\" (about 26843504 keys)");
    check_error("[limit.a]\nrate = \"20/s\"\nkey = \"$client_ip:$nope\"\n",
                "limit.toml:5:19: limit.a.key: unknown variable $nope");
    check_error("[limit.a]\nrate = \"20/s\"\nburst = -1\n",
                "limit.toml:5:9: limit.a.burst: expected an integer between 0 and 1000000, got "
                "-1");
    check_error("[limit.a]\nrate = \"20/s\"\nmode = \"queue\"\n",
                "limit.toml:5:8: limit.a.mode: expected one of \"reject\", \"delay\", "
                "\"dry_run\", got \"queue\"");
    check_error("[limit.a]\nrate = \"20/s\"\nburst = 5\ndelay_after = 2\n",
                "limit.toml:6:15: limit.a.delay_after: applies to mode = \"delay\"");
    check_error("[limit.a]\nrate = \"20/s\"\nstatus = 200\n",
                "limit.toml:5:10: limit.a.status: expected an integer between 400 and 599, got "
                "200");
    check_error("[limit.a]\nburst = 3\n",
                "limit.toml:3:1: limit.a: says nothing to limit; give rate = \"20/s\", "
                "connections = 10, connection_rate = \"5/s\" or bandwidth = \"500k\"");
    check_error("[limit.a]\nrate = \"20/s\"\nconnections = 4\n",
                "limit.toml:3:1: limit.a: a zone limits one thing: requests (rate), connections "
                "(connections, connection_rate) or bandwidth; split it into two [limit.*] "
                "tables");
    check_error("[limit.c]\nconnections = 4\nkey = \"$http_x_api_key\"\n",
                "limit.toml:5:7: limit.c.key: a connection limit is checked at accept, before "
                "any request is read: its key is \"$client_ip\" (per client address) or a "
                "constant such as \"all\" (one count for every client)");
    check_error("[limit.c]\nconnections = 0\n",
                "limit.toml:4:15: limit.c.connections: expected an integer between 1 and "
                "1000000, got 0");
    check_error("[limit.b]\nbandwidth = \"10\"\n",
                "limit.toml:4:13: limit.b.bandwidth: at least \"1k\" (bytes per second)");
    check_error("[limit.b]\nbandwidth = \"1m\"\nkey = \"$host\"\n",
                "limit.toml:5:7: limit.b.key: applies to request and connection zones (a "
                "bandwidth paces each connection on its own)");
}

TEST_CASE("limit config: the limit key names known zones, connection zones only in [server]") {
    const std::string zones = "[limit.api]\nrate = \"5/s\"\n[limit.conn]\nconnections = 2\n";
    check_error(zones + "[[site]]\nhosts = [\"a\"]\nlimit = [\"apii\"]\n  [[site.route]]\n  "
                        "respond = {}\n",
                "limit.toml:9:10: site.limit: unknown zone \"apii\" (define it with "
                "[limit.apii]; defined: \"api\", \"conn\")");
    check_error(zones + "[[site]]\nhosts = [\"a\"]\n  [[site.route]]\n  limit = [\"conn\"]\n  "
                        "respond = {}\n",
                "limit.toml:10:12: site.route.limit: \"conn\" limits connections, which are "
                "counted at accept, before TLS and before any site is known: list it in "
                "[server] limit");
    check_error("[server]\nlimit = [\"api\", \"api\"]\n" + zones,
                "limit.toml:4:17: server.limit: zone \"api\" is listed twice");
    check_error("[server]\nlimit = []\n" + zones,
                "limit.toml:4:9: server.limit: an empty list; `limit = false` turns inherited "
                "limits off");
    check_error("[server]\nlimit = 3\n" + zones,
                "limit.toml:4:9: server.limit: expected a list of [limit.NAME] zones, like "
                "limit = [\"api\"], got 3");
    CHECK(errors_of("[server]\nlimit = \"api\"\n" + zones).empty()); // one name alone
    CHECK(errors_of("[server]\nlimit = [\"conn\", \"api\"]\n" + zones).empty());
}

TEST_CASE("limit: over the rate is 429 with Retry-After and the RateLimit fields") {
    Server s(R"(
[limit.api]
rate = "2/s"
burst = 1
)" + std::string(kSite) + "limit = [\"api\"]\n");
    CHECK(Run(s, "/a").out.status == 200);
    CHECK(Run(s, "/a").out.status == 200);
    Run refused(s, "/a");
    CHECK(refused.out.status == 429);
    CHECK(refused.out.header("retry-after") == "1");
    CHECK(refused.out.header("ratelimit-policy") == "\"api\";q=2;w=1");
    CHECK(refused.out.header("ratelimit") == "\"api\";r=0;t=1");
    CHECK(refused.out.header("content-type") == "text/html; charset=utf-8");
    CHECK(refused.note() == "api:reject");
    // Another client has its own allowance.
    CHECK(Run(s, "/a", "192.0.2.2").out.status == 200);
}

TEST_CASE("limit: the zone's status, body and no RateLimit fields when asked") {
    Server s(R"(
[limit.api]
rate = "1/m"
status = 503
body = "{\"error\":\"slow down\"}"
content_type = "application/json"
headers = false
)" + std::string(kSite) + "limit = [\"api\"]\n");
    CHECK(Run(s, "/").out.status == 200);
    Run refused(s, "/");
    CHECK(refused.out.status == 503);
    CHECK(refused.out.body == "{\"error\":\"slow down\"}");
    CHECK(refused.out.header("content-type") == "application/json");
    CHECK(refused.out.header("retry-after") == "60");
    CHECK_FALSE(refused.out.has_header("ratelimit"));
}

TEST_CASE("limit: dry_run serves and notes what it would have refused") {
    Server s(R"(
[limit.api]
rate = "1/m"
mode = "dry_run"
)" + std::string(kSite) + "limit = [\"api\"]\n");
    CHECK(Run(s, "/").note().empty());
    Run over(s, "/");
    CHECK(over.out.status == 200);
    CHECK(over.note() == "api:dry_run");
}

TEST_CASE("limit: an empty key falls back to the client's address, not one shared bucket") {
    Server s(R"(
[limit.keyed]
rate = "1/m"
key = "$http_x_api_key"
)" + std::string(kSite) + "limit = [\"keyed\"]\n");
    CHECK(Run(s, "/", "192.0.2.1").out.status == 200);
    CHECK(Run(s, "/", "192.0.2.2").out.status == 200); // no key, another client: passes
    CHECK(Run(s, "/", "192.0.2.1").out.status == 429);
    // A key is its own bucket, whoever sends it; one that spells an address is not that
    // address's fallback.
    CHECK(Run(s, "/", "192.0.2.1", {{"x-api-key", "k1"}}).out.status == 200);
    CHECK(Run(s, "/", "192.0.2.9", {{"x-api-key", "k1"}}).out.status == 429);
    CHECK(Run(s, "/", "192.0.2.3", {{"x-api-key", "192.0.2.2"}}).out.status == 200);
}

TEST_CASE("limit: a request refused by a later zone gives the earlier one its request back") {
    Server s(R"(
[limit.loose]
rate = "2/m"
burst = 1
[limit.strict]
rate = "1/m"
key = "$http_x_user"
)" + std::string(kSite) + "limit = [\"loose\", \"strict\"]\n");
    CHECK(Run(s, "/", "192.0.2.1", {{"x-user", "u"}}).out.status == 200);
    Run refused(s, "/", "192.0.2.1", {{"x-user", "u"}});
    CHECK(refused.out.status == 429);
    CHECK(refused.out.header("ratelimit-policy") == "\"strict\";q=1;w=60");
    // loose still has its second request: the refused one was given back.
    CHECK(Run(s, "/", "192.0.2.1", {{"x-user", "v"}}).out.status == 200);
    CHECK(Run(s, "/", "192.0.2.1", {{"x-user", "w"}}).out.status == 429);
}

TEST_CASE("limit: route limits replace the inherited list; limit = false turns them off") {
    Server s(R"(
[server]
limit = ["all"]
[limit.all]
rate = "1/m"
[limit.route]
rate = "2/m"
burst = 1
[[site]]
hosts = ["a.test"]
  [[site.route]]
  path = "/own/"
  limit = ["route"]
  respond = { status = 200 }
  [[site.route]]
  path = "/free/"
  limit = false
  respond = { status = 200 }
  [[site.route]]
  path = "/"
  respond = { status = 200 }
)");
    CHECK(Run(s, "/").out.status == 200);
    CHECK(Run(s, "/").out.status == 429);
    CHECK(Run(s, "/own/").out.status == 200);
    CHECK(Run(s, "/own/").out.status == 200);
    CHECK(Run(s, "/own/").out.status == 429);
    for (int i = 0; i < 5; ++i)
        CHECK(Run(s, "/free/").out.status == 200);
}

TEST_CASE("limit: the accept phase counts connections per address and refuses over the cap") {
    Server s(R"(
[server]
limit = ["per_ip", "all"]
[limit.per_ip]
connections = 2
[limit.all]
key = "all"
connections = 3
)" + std::string(kSite));
    REQUIRE(s.pipeline->has_accept_filters());
    ConnectionInfo a1 = peer("198.51.100.1"), a2 = peer("198.51.100.1"),
                   a3 = peer("198.51.100.1"), b1 = peer("198.51.100.2"),
                   c1 = peer("198.51.100.3");
    AcceptContext x1{a1}, x2{a2}, x3{a3}, y1{b1}, z1{c1};
    CHECK(s.pipeline->accept(x1));
    CHECK(s.pipeline->accept(x2));
    CHECK_FALSE(s.pipeline->accept(x3)); // per_ip
    CHECK(x3.refusal_status == 429);
    CHECK(x3.retry_after_s == 1);
    CHECK(s.pipeline->accept(y1));
    CHECK_FALSE(s.pipeline->accept(z1)); // all: three already
    CHECK(z1.refusal_status == 503);
    s.pipeline->connection_closed(a1);
    CHECK(s.pipeline->accept(z1)); // room again for both zones
}

TEST_CASE("limit: new connections from one address are paced by connection_rate") {
    Server s(R"(
[server]
limit = ["rate"]
[limit.rate]
connection_rate = "1/m"
burst = 1
)" + std::string(kSite));
    std::vector<ConnectionInfo> conns(3, peer("203.0.113.5"));
    AcceptContext c0{conns[0]}, c1{conns[1]}, c2{conns[2]};
    CHECK(s.pipeline->accept(c0));
    CHECK(s.pipeline->accept(c1));
    CHECK_FALSE(s.pipeline->accept(c2));
    CHECK(c2.refusal_status == 429);
    CHECK(c2.retry_after_s == 60);
}
