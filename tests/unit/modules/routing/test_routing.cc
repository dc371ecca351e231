// modules/routing through the phase engine: `match` conditions and their combinators decide
// routes (falling through to the next candidate), rewrites re-run routing with captures and stop
// after ten, header rules add up down the scopes and never emit CR/LF, allow/deny refuse with
// 403, real_ip finds the client behind trusted proxies, and wrong configurations are reported
// at their FILE:LINE:COL.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/module.h"
#include "modules/router/router.h"
#include "support/recording_writer.h"
#include "worker/pipeline.h"

using namespace wraith;
using modtest::NoBody;
using modtest::RecordingWriter;
using modtest::TestExchange;

namespace {

const std::string kListen = "[[listen]]\naddress = \"127.0.0.1:8080\"\n";

struct Server {
    std::shared_ptr<const Config> config;
    std::unique_ptr<Router> router;
    std::unique_ptr<Pipeline> pipeline;
    Diagnostics diag;

    explicit Server(const std::string& text) {
        config = load_config_text(kListen + text, "routing.toml", "/tmp", diag);
        for (const auto& d : diag.list())
            FAIL(d.text());
        REQUIRE(config);
        router = std::make_unique<Router>(*config);
        pipeline = std::make_unique<Pipeline>(*config, *router, nullptr, nullptr);
    }
};

struct Call {
    TestExchange ex;
    NoBody body;
    RecordingWriter out;
    ConnectionInfo conn;
    Call(Server& s, std::string_view target,
         std::vector<std::pair<std::string, std::string>> hs = {},
         std::string_view peer = "192.0.2.10", int version = 11) {
        size_t q = target.find('?');
        ex.req.target = ex.arena.copy(target);
        ex.req.path = ex.req.target.substr(0, q);
        ex.req.query =
            q == std::string_view::npos ? std::string_view{} : ex.req.target.substr(q + 1);
        ex.req.version = version;
        for (auto& [n, v] : hs)
            ex.req.headers.add(ex.arena.copy(n), ex.arena.copy(v));
        conn.peer_ip = ex.arena.copy(peer);
        auto* a = reinterpret_cast<sockaddr_in*>(&conn.peer);
        a->sin_family = AF_INET;
        inet_pton(AF_INET, std::string(peer).c_str(), &a->sin_addr);
        ex.req.conn = &conn;
        s.pipeline->run(ex.req, body, out);
    }
    std::string text() const { return std::to_string(out.status) + " " + out.body; }
};

std::vector<std::string> errors(const std::string& text) {
    Diagnostics diag;
    auto cfg = load_config_text(kListen + text, "routing.toml", "/tmp", diag);
    std::vector<std::string> out;
    for (const auto& d : diag.list())
        out.push_back(d.text());
    return out;
}

std::string respond(const std::string& body) {
    return "respond = { body = \"" + body + "\" }";
}

} // namespace

TEST_CASE("routing: match conditions pick a route and failing ones fall through") {
    Server s(R"(
[[site]]
hosts = ["example.com"]
  [[site.route]]
  path = "/"
  match = { headers = { "X-Beta" = "1" }, methods = ["GET"] }
  )" + respond("beta") +
             R"(
  [[site.route]]
  path = "/"
  match = { query = { v = "~^2" }, cookies = { s = true } }
  )" + respond("v2") +
             R"(
  [[site.route]]
  path = "/"
  match = { any = [{ headers = { "X-A" = true } }, { client_ip = ["10.0.0.0/8"] }] }
  )" + respond("any") +
             R"(
  [[site.route]]
  path = "/"
  match = { not = { headers = { "User-Agent" = "~bot" } }, protocol = ["h2", "h3"] }
  )" + respond("not-bot-h2") +
             R"(
  [[site.route]]
  path = "/"
  )" + respond("plain") +
             R"(
)");
    CHECK(Call(s, "/x", {{"x-beta", "1"}}).text() == "200 beta");
    CHECK(Call(s, "/x", {{"x-beta", "2"}}).text() == "200 plain");
    CHECK(Call(s, "/x?v=21", {{"cookie", "a=1; s=xyz"}}).text() == "200 v2");
    CHECK(Call(s, "/x?v=21", {{"cookie", "a=1"}}).text() == "200 plain");
    CHECK(Call(s, "/x", {{"x-a", ""}}).text() == "200 any");
    CHECK(Call(s, "/x", {}, "10.9.9.9").text() == "200 any");
    CHECK(Call(s, "/x", {{"user-agent", "curl"}}, "192.0.2.1", 20).text() == "200 not-bot-h2");
    CHECK(Call(s, "/x", {{"user-agent", "googlebot"}}, "192.0.2.1", 20).text() == "200 plain");
    CHECK(Call(s, "/x", {{"user-agent", "curl"}}, "192.0.2.1", 11).text() == "200 plain");
    // A header with several fields matches when any of them does; cookies across fields.
    CHECK(Call(s, "/x", {{"x-beta", "0"}, {"x-beta", "1"}}).text() == "200 beta");
    CHECK(Call(s, "/x?v=2", {{"cookie", "a=1"}, {"cookie", "s=1"}}).text() == "200 v2");
}

TEST_CASE("routing: client certificate conditions") {
    Server s(R"(
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  match = { client_cert = { subject = "~CN=alice", san = "alice.example", issuer = "CN=Test CA" } }
  respond = { body = "alice" }
  [[site.route]]
  path = "/"
  match = { client_cert = { fingerprint = "AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC" } }
  respond = { body = "by fingerprint" }
  [[site.route]]
  path = "/"
  match = { client_cert = true }
  respond = { body = "someone" }
  [[site.route]]
  path = "/"
  respond = { body = "anonymous" }
)");
    auto with_cert = [&](std::string_view subject, std::string_view sans, std::string_view issuer,
                         std::string_view fp) {
        TestExchange ex;
        NoBody body;
        RecordingWriter out;
        TlsInfo tls;
        tls.client_subject = subject;
        tls.client_sans = sans;
        tls.client_issuer = issuer;
        tls.client_fingerprint = fp;
        ConnectionInfo conn;
        conn.peer_ip = "192.0.2.1";
        conn.tls = &tls;
        ex.req.conn = &conn;
        s.pipeline->run(ex.req, body, out);
        return out.body;
    };
    CHECK(with_cert("CN=alice,O=Example", "DNS:alice.example, email:a@example.com", "CN=Test CA",
                    "00") == "alice");
    CHECK(with_cert("CN=alice,O=Example", "DNS:bob.example", "CN=Test CA", "00") == "someone");
    CHECK(with_cert("CN=bob", "", "CN=Other",
                    "abcdef00112233445566778899aabbccddeeff00112233445566778899aabbcc") ==
          "by fingerprint");
    CHECK(with_cert("CN=bob", "", "CN=Other", "00") == "someone");
    CHECK(with_cert("", "", "", "") == "anonymous");
    CHECK(errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  match = { client_cert = { fingerprint = "xyz" } }
  respond = {}
)")
              .size() == 1);
}

TEST_CASE("routing: thousands of cookies and odd bytes are handled in one pass") {
    Server s(R"(
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  match = { cookies = { last = "yes" } }
  )" + respond("found") +
             R"(
  [[site.route]]
  path = "/"
  )" + respond("plain") +
             R"(
)");
    std::string jar;
    for (int i = 0; i < 5000; ++i)
        jar += "c" + std::to_string(i) + "=" + std::to_string(i) + "; ";
    CHECK(Call(s, "/", {{"cookie", jar + "last=yes"}}).text() == "200 found");
    CHECK(Call(s, "/", {{"cookie", jar}}).text() == "200 plain");
    CHECK(Call(s, "/", {{"cookie", ";;;=;==; last"}}).text() == "200 plain");
}

TEST_CASE("routing: captures of the path regex and of rewrites; rewrite loops end in 500") {
    Server s(R"(
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/old/"
  rewrite = { pattern = '^/old/(.*)$', replace = '/new/$1?via=old' }
  [[site.route]]
  path = '~^/new/(\w+)/(\w+)'
  respond = { body = "new $1 $2 $args" }
  [[site.route]]
  path = "/new/"
  respond = { body = "new-prefix $1 $uri" }
  [[site.route]]
  path = "/loop/"
  rewrite = { pattern = '^/loop/(.*)$', replace = '/loop/$1' }
  [[site.route]]
  path = "/serve/"
  rewrite = { pattern = '^/serve/(.*)$', replace = '/elsewhere/$1' }
  respond = { body = "served $uri" }
  [[site.route]]
  path = "/drop/"
  rewrite = { pattern = '^/drop/(.*)$', replace = '/new/$1?' }
)");
    CHECK(Call(s, "/old/a/b?x=1").text() == "200 new a b via=old&x=1");
    CHECK(Call(s, "/old/only").text() == "200 new-prefix only /new/only");
    CHECK(Call(s, "/drop/z?x=1").text() == "200 new-prefix z /new/z");
    CHECK(Call(s, "/loop/x").out.status == 500);
    // A route with a handler serves the rewritten URI itself.
    CHECK(Call(s, "/serve/q").text() == "200 served /elsewhere/q");
    // An encoded space survives: decoded for routing, encoded again for the upstream.
    Call c(s, "/old/a%20b");
    CHECK(c.out.status == 200);
    CHECK(c.ex.req.path == "/new/a%20b");
}

TEST_CASE("routing: rewrite and capture errors are reported with their position") {
    CHECK(errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = "/old/"
  rewrite = { pattern = '^/old/(.*', replace = '/new/$1' }
)") == std::vector<std::string>{
           "routing.toml:7:25: rewrite.pattern: bad regex \"^/old/(.*\": missing closing "
           "parenthesis at offset 9"});
    CHECK(errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = "/old/"
  rewrite = { pattern = '^/old/(.*)$', replace = '/new/$2' }
)") == std::vector<std::string>{
           "routing.toml:7:50: rewrite.replace: $2 names a capture group the pattern does "
           "not have (it has 1)"});
    CHECK(errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = '~^/a/(\d+)$'
  respond = { body = "$2" }
)") == std::vector<std::string>{
           "routing.toml:7:22: respond.body: $2 names a capture group the route's path regex "
           "\"^/a/(\\d+)$\" does not have (it has 1)"});
    CHECK(errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = '/'
  redirect = { to = "https://x$nope" }
)")
              .size() == 1);
}

TEST_CASE("routing: match errors name the value and its position") {
    auto e = errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  match = { headers = { "X-A" = "~(" }, protocol = ["h4"], client_ip = ["10.0.0.0/33"] }
  respond = {}
)");
    REQUIRE(e.size() == 3);
    CHECK(e[0].find("routing.toml:7:") == 0);
    CHECK(e[0].find("match.headers.X-A: bad regex \"(\"") != std::string::npos);
    CHECK(e[1].find("unknown protocol \"h4\"") != std::string::npos);
    CHECK(e[2].find("bad prefix length") != std::string::npos);
    // Geo conditions need a database; country codes must exist; an ASN is a number.
    auto g = errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  match = { country = ["XX"], asn = ["AS12x"] }
  respond = {}
)");
    REQUIRE(g.size() == 2);
    CHECK(g[0].find("unknown country code \"XX\"") != std::string::npos);
    CHECK(g[1].find("match.asn: \"AS12x\" is not an AS number") != std::string::npos);
    auto n = errors(R"([[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  match = { country = ["de"] }
  respond = {}
)");
    REQUIRE(n.size() == 1);
    CHECK(n[0].find("match.country: needs a geo database") != std::string::npos);
}

TEST_CASE("routing: a CIDR with host bits set is a warning naming the network") {
    Diagnostics diag;
    auto cfg = load_config_text(kListen + R"([[site]]
hosts = ["*"]
deny = ["10.1.2.3/8"]
  [[site.route]]
  path = "/"
  respond = {}
)",
                                "routing.toml", "/tmp", diag);
    CHECK(cfg);
    REQUIRE(diag.warnings().size() == 1);
    CHECK(diag.warnings()[0].text() ==
          "routing.toml:5:9: warning: deny: \"10.1.2.3/8\" has host bits set; it means the "
          "network 10.0.0.0/8 (write that, or a /32 for the one address)");
}

TEST_CASE("routing: header rules add up down the scopes and never carry CR or LF") {
    Server s(R"(
[server]
headers = { response = { set = { "X-Server" = "s" } } }
[[site]]
hosts = ["*"]
headers = { response = { set = { "X-Site" = "$host", "X-Echo" = "$http_x_in" } }, preset = "security" }
  [[site.route]]
  path = "/"
  headers = { request = { set = { "X-Up" = "$client_ip" } }, response = { add = { "X-Route" = "r" }, remove = ["X-Server"] } }
  respond = { body = "$http_x_up" }
  [[site.route]]
  path = "/off/"
  headers = false
  respond = { body = "off" }
)");
    Call c(s, "/", {{"x-in", "abc\x01"}});
    CHECK(c.out.body == "192.0.2.10");
    CHECK(c.out.header("x-site") == "example.com");
    CHECK(c.out.header("x-route") == "r");
    CHECK_FALSE(c.out.has_header("x-server")); // the route removed what the server set
    CHECK(c.out.header("x-content-type-options") == "nosniff");
    CHECK(c.out.header("strict-transport-security").find("max-age=") == 0); // https request
    CHECK(c.out.header("x-echo") == "abc\x01"); // no CR/LF: sent (logs escape it)
    Call bad(s, "/", {{"x-in", "a\r\nSet-Cookie: x=1"}});
    CHECK_FALSE(bad.out.has_header("x-echo")); // would carry CR/LF: left out
    CHECK_FALSE(bad.out.has_header("set-cookie"));
    Call off(s, "/off/x");
    CHECK_FALSE(off.out.has_header("x-site"));
    CHECK_FALSE(off.out.has_header("x-server"));
}

TEST_CASE("routing: allow and deny refuse with 403 at site and route scope") {
    Server s(R"(
[[site]]
hosts = ["*"]
deny = ["192.0.2.66"]
  [[site.route]]
  path = "/"
  respond = { body = "open" }
  [[site.route]]
  path = "/admin/"
  allow = ["10.0.0.0/8", "2001:db8::/32"]
  respond = { body = "admin" }
  [[site.route]]
  path = "/free/"
  deny = false
  respond = { body = "free" }
)");
    CHECK(Call(s, "/x").text() == "200 open");
    CHECK(Call(s, "/x", {}, "192.0.2.66").out.status == 403);
    CHECK(Call(s, "/admin/", {}, "10.1.1.1").text() == "200 admin");
    CHECK(Call(s, "/admin/", {}, "192.0.2.1").out.status == 403);
    CHECK(Call(s, "/admin/", {}, "192.0.2.66").out.status == 403);
    CHECK(Call(s, "/free/", {}, "192.0.2.66").text() == "200 free");
}

TEST_CASE("routing: real_ip believes trusted proxies only, right to left") {
    Server s(R"(
[server]
real_ip = { header = "X-Forwarded-For", trusted = ["10.0.0.0/8"] }
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { body = "$client_ip" }
)");
    CHECK(Call(s, "/", {{"x-forwarded-for", "198.51.100.7, 10.0.0.2"}}, "10.0.0.1").out.body ==
          "198.51.100.7");
    CHECK(Call(s, "/", {{"x-forwarded-for", "1.1.1.1, 198.51.100.7"}}, "10.0.0.1").out.body ==
          "198.51.100.7");
    // Two fields: the later one is nearer.
    CHECK(
        Call(s, "/", {{"x-forwarded-for", "5.5.5.5"}, {"x-forwarded-for", "10.3.3.3"}}, "10.0.0.1")
            .out.body == "5.5.5.5");
    CHECK(Call(s, "/", {{"x-forwarded-for", "198.51.100.7"}}, "192.0.2.1").out.body ==
          "192.0.2.1"); // untrusted peer
    CHECK(Call(s, "/", {{"x-forwarded-for", "garbage, 10.0.0.9"}}, "10.0.0.1").out.body ==
          "10.0.0.9");
    Server fwd(R"(
[server]
real_ip = { header = "Forwarded", trusted = ["10.0.0.0/8"] }
[[site]]
hosts = ["*"]
  [[site.route]]
  path = "/"
  respond = { body = "$client_ip" }
)");
    CHECK(Call(fwd, "/", {{"forwarded", "for=\"[2001:db8::7]:443\";proto=https, for=10.0.0.5"}},
               "10.0.0.1")
              .out.body == "2001:db8::7");
    CHECK(errors(R"([[site]]
hosts = ["*"]
real_ip = { trusted = ["10.0.0.0/8"] }
  [[site.route]]
  path = "/"
  respond = {}
)") == std::vector<std::string>{"routing.toml:5:11: real_ip: belongs in [server]: the client "
                                "address is settled before a site or route is chosen"});
}

TEST_CASE("routing: explanations name the skipped candidates and why") {
    Server s(R"(
[[site]]
hosts = ["example.com"]
  [[site.route]]
  path = "/"
  match = { headers = { "X-Beta" = "1" } }
  respond = {}
  [[site.route]]
  path = "/"
  respond = {}
)");
    TestExchange ex;
    ex.req.decoded_path = "/p";
    std::string trace, error;
    const Site& site = *s.config->sites[0];
    REQUIRE(Router::resolve(site, ex.req, error, &trace));
    CHECK(ex.req.route == &site.routes[1]);
    CHECK(trace.find("route 1 (path \"/\", routing.toml:6:3): skipped, match: header x-beta is "
                     "absent, wanted \"1\"") != std::string::npos);
    CHECK(trace.find("route 2 (path \"/\", routing.toml:10:3): taken") != std::string::npos);
}
