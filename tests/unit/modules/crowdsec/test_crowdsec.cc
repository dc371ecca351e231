// The crowdsec module's config and filter (modules/crowdsec): every config mistake at its
// FILE:LINE:COL; a banned client gets the ban page, others and opted-out routes pass; the
// fallback before the first pull; fallback_remediation for types the bouncer lacks; accept.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/module.h"
#include "modules/crowdsec/crowdsec.h"
#include "modules/crowdsec/crowdsec_worker.h"
#include "modules/crowdsec/decision_table.h"
#include "modules/router/router.h"
#include "support/recording_writer.h"
#include "tests/unit/modules/crowdsec/zone_fixture.h"
#include "worker/pipeline.h"

using namespace wraith;
using namespace wraith::crowdsec;

namespace {

using crowdsec_test::ip;
using crowdsec_test::net;
using crowdsec_test::Zone;

} // namespace

namespace {

const char* const kHead = "[[listen]]\naddress = \"127.0.0.1:8080\"\n";

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/wraith-crowdsec-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        path = tmpl;
        std::ofstream(path + "/key") << "s3cr3t\n";
        std::ofstream(path + "/empty") << "";
        std::ofstream(path + "/page.html") << "<p>go away</p>";
    }
    ~TempDir() {
        for (const char* f : {"/key", "/empty", "/page.html"})
            ::unlink((path + f).c_str());
        ::rmdir(path.c_str());
    }
};

std::vector<std::string> errors_of(const std::string& text, const std::string& dir) {
    Diagnostics diag;
    auto cfg = load_config_text(kHead + text, "cs.toml", dir, diag);
    std::vector<std::string> out;
    for (const auto& d : diag.list())
        out.push_back(d.text());
    return out;
}

const char* const kSite = R"(
[[site]]
hosts = ["a.test"]
  [[site.route]]
  path = "/"
  respond = { status = 200, body = "ok" }
  [[site.route]]
  path = "/open/"
  crowdsec = false
  respond = { status = 200, body = "open" }
)";

} // namespace

TEST_CASE("crowdsec config: every mistake at its FILE:LINE:COL") {
    TempDir d;
    auto one = [&](const std::string& text, const std::string& expected) {
        std::vector<std::string> e = errors_of(text + kSite, d.path);
        INFO(text);
        std::string all;
        for (const auto& x : e)
            all += x + "\n";
        INFO(all);
        REQUIRE(e.size() == 1);
        CHECK(e[0] == expected);
    };
    one("[crowdsec]\nurl = \"ftp://x/\"\napi_key_file = \"key\"\n",
        "cs.toml:4:7: crowdsec.url: expected the Local API as http://HOST[:PORT]/ (https is not "
        "supported yet: run the LAPI on a local address), got \"ftp://x/\"");
    one("[crowdsec]\napi_key_file = \"missing\"\n",
        "cs.toml:4:16: crowdsec.api_key_file: cannot read \"" + d.path +
            "/missing\": No such file or directory");
    one("[crowdsec]\napi_key_file = \"empty\"\n",
        "cs.toml:4:16: crowdsec.api_key_file: \"" + d.path +
            "/empty\" is empty: put the key of `cscli bouncers add wraith` in it");
    one("[crowdsec]\nurl = \"http://127.0.0.1:8080/\"\n",
        "cs.toml:3:1: crowdsec.api_key_file: required: a file with the bouncer's key from "
        "`cscli bouncers add wraith`");
    one("[crowdsec]\napi_key_file = \"key\"\ninterval = \"soon\"\n",
        "cs.toml:5:12: crowdsec.interval: expected a duration like \"250ms\", \"30s\", \"5m\", "
        "got \"soon\"");
    one("[crowdsec]\napi_key_file = \"key\"\ninterval = \"10ms\"\n",
        "cs.toml:5:12: crowdsec.interval: must be between 100ms and 24h");
    one("[crowdsec]\napi_key_file = \"key\"\nfallback = \"maybe\"\n",
        "cs.toml:5:12: crowdsec.fallback: expected one of \"pass\", \"block\", got \"maybe\"");
    one("[server]\ncrowdsec = true\n",
        "cs.toml:4:12: crowdsec: needs a [crowdsec] table (url, api_key_file) naming the Local "
        "API");
    CHECK(errors_of(
              std::string("[crowdsec]\napi_key_file = \"key\"\nban_page = \"page.html\"\n"
                          "scopes = [\"ip\", \"range\"]\norigins = [\"cscli\", \"crowdsec\"]\n") +
                  kSite,
              d.path)
              .empty());
}

namespace {

// A config, a worker's crowdsec state over an in-memory zone (slot 1: no puller), a pipeline.
struct Server {
    std::shared_ptr<const Config> config;
    std::unique_ptr<Router> router;
    std::unique_ptr<ModuleWorkers> modules;
    std::unique_ptr<Pipeline> pipeline;
    std::unique_ptr<Zone> zone;
    SharedZones zones;
    DecisionTable table;

    Server(const std::string& text, const std::string& dir) {
        Diagnostics diag;
        config = load_config_text(kHead + text, "cs.toml", dir, diag);
        for (const auto& d : diag.list())
            FAIL(d.text());
        REQUIRE(config);
        const CrowdsecConfig* cc = crowdsec_config(*config);
        REQUIRE(cc);
        zone = std::make_unique<Zone>(cc->max_decisions);
        zones.add({kZoneName, zone->mem, zone->size, kZoneVersion});
        table = DecisionTable(zone->mem, zone->size);
        router = std::make_unique<Router>(*config);
        modules = std::make_unique<ModuleWorkers>(ModuleRegistry::instance().all().size());
        const ModuleSpec* spec = ModuleRegistry::instance().find("crowdsec");
        REQUIRE(spec);
        WorkerContext ctx{nullptr, config, 1, 2, 1, &zones};
        modules->set(ModuleRegistry::instance().index_of(*spec), spec->worker_start(ctx));
        pipeline = std::make_unique<Pipeline>(*config, *router, nullptr, modules.get());
    }

    void synced() { table.header().synced.store(1); }
};

struct Run {
    modtest::TestExchange ex;
    modtest::NoBody body;
    modtest::RecordingWriter out;
    ConnectionInfo conn;
    Run(Server& s, std::string_view path, std::string_view client) {
        ex.req.host = "a.test";
        ex.req.path = ex.req.target = ex.arena.copy(path);
        conn.peer_ip = ex.arena.copy(client);
        ex.req.conn = &conn;
        s.pipeline->run(ex.req, body, out);
    }
};

} // namespace

TEST_CASE("crowdsec filter: a banned client gets the ban page, others and opted-out routes pass") {
    TempDir d;
    Server s("[crowdsec]\napi_key_file = \"key\"\nban_page = \"page.html\"\n" + std::string(kSite),
             d.path);
    REQUIRE(s.table.lock());
    REQUIRE(
        s.table.upsert(net("198.51.100.0/24"), 1, Remedy::ban, Origin::cscli, now_ms() + 60000, 1));
    REQUIRE(s.table.upsert(net("2001:db8::/32"), 2, Remedy::captcha, Origin::cscli,
                           now_ms() + 60000, 1));
    s.table.unlock();
    s.synced();
    {
        Run r(s, "/", "198.51.100.7");
        CHECK(r.out.status == 403);
        CHECK(r.out.body == "<p>go away</p>");
        CHECK(r.out.header("cache-control") == "no-store");
    }
    CHECK(Run(s, "/", "192.0.2.1").out.status == 200);
    CHECK(Run(s, "/open/x", "198.51.100.7").out.status == 200); // crowdsec = false there
    // captcha is not implemented: fallback_remediation (default ban) decides.
    CHECK(Run(s, "/", "2001:db8::1").out.status == 403);
    const ZoneHeader& h = s.table.header();
    uint64_t blocked = 0;
    for (const auto& sh : h.shards)
        blocked += sh.blocked.load();
    CHECK(blocked == 2);
}

TEST_CASE("crowdsec filter: fallback before the first pull, fallback_remediation, accept") {
    TempDir d;
    {
        Server s("[crowdsec]\napi_key_file = \"key\"\nfallback = \"block\"\n"
                 "fallback_remediation = \"pass\"\nban_at_accept = true\n" +
                     std::string(kSite),
                 d.path);
        CHECK(Run(s, "/", "192.0.2.1").out.status == 403); // nothing pulled yet: block
        s.synced();
        CHECK(Run(s, "/", "192.0.2.1").out.status == 200);
        REQUIRE(s.table.lock());
        REQUIRE(s.table.upsert(net("192.0.2.1"), 1, Remedy::captcha, Origin::cscli,
                               now_ms() + 60000, 1));
        REQUIRE(
            s.table.upsert(net("192.0.2.2"), 2, Remedy::ban, Origin::cscli, now_ms() + 60000, 1));
        s.table.unlock();
        CHECK(Run(s, "/", "192.0.2.1").out.status == 200); // captcha passes with "pass"
        CHECK(Run(s, "/", "192.0.2.2").out.status == 403);
        // The accept phase sees the peer address.
        ConnectionInfo c;
        c.peer.v4.sin_family = AF_INET;
        inet_pton(AF_INET, "192.0.2.2", &c.peer.v4.sin_addr);
        AcceptContext ctx{c, s.modules.get()};
        CHECK_FALSE(s.pipeline->accept(ctx));
        CHECK(ctx.refusal_status == 0);
        inet_pton(AF_INET, "192.0.2.3", &c.peer.v4.sin_addr);
        AcceptContext ok{c, s.modules.get()};
        CHECK(s.pipeline->accept(ok));
    }
    {
        Server s("[crowdsec]\napi_key_file = \"key\"\n" + std::string(kSite), d.path);
        CHECK(Run(s, "/", "192.0.2.1").out.status == 200); // fallback = "pass" by default
        CHECK_FALSE(s.pipeline->has_accept_filters());
    }
}

TEST_CASE("crowdsec: the stream URL carries scopes and origins; metrics and status read the zone") {
    TempDir d;
    Server s("[crowdsec]\nurl = \"http://127.0.0.1:8080\"\napi_key_file = \"key\"\n"
             "origins = [\"cscli\", \"crowdsec\"]\n" +
                 std::string(kSite),
             d.path);
    const CrowdsecConfig* cc = crowdsec_config(*s.config);
    CHECK(cc->stream_url ==
          "http://127.0.0.1:8080/v1/decisions/stream?scopes=ip,range&origins=cscli,crowdsec");
    CHECK(cc->api_key == "s3cr3t");
    REQUIRE(s.table.lock());
    REQUIRE(s.table.upsert(net("192.0.2.1"), 1, Remedy::ban, Origin::cscli, now_ms() + 60000, 1));
    s.table.recount(now_ms());
    s.table.unlock();
    s.synced();
    s.table.header().pulls_ok.store(3);
    s.table.header().lapi_state.store(static_cast<uint32_t>(LapiState::up));
    CHECK(Run(s, "/", "192.0.2.1").out.status == 403);
    MetricsExport ctx{*s.config, s.zones, false, 1};
    std::string metrics;
    export_metrics(ctx, metrics);
    CHECK(metrics.find("wraith_crowdsec_decisions{type=\"ban\",origin=\"cscli\"} 1\n") !=
          std::string::npos);
    CHECK(metrics.find("wraith_crowdsec_blocked_total{phase=\"request\"} 1\n") !=
          std::string::npos);
    CHECK(metrics.find("wraith_crowdsec_pulls_total{result=\"ok\"} 3\n") != std::string::npos);
    CHECK(metrics.find("wraith_crowdsec_lapi_up 1\n") != std::string::npos);
    std::string status;
    export_status(ctx, status);
    CHECK(status == ",\"crowdsec\":{\"decisions\":1,\"lookups\":1,\"blocked\":1,"
                    "\"refused_at_accept\":0,\"pulls_ok\":3,\"pulls_failed\":0,\"lapi\":\"up\"}");
}
