// HTTP/3 upstream settings ([upstream.NAME] protocol = "h3", fallback = "h2"; pass = "h3://"):
// what loads, and every misuse reported as FILE:LINE:COL (no TLS, a Unix socket, a fallback
// without h3, health checks that could not reach the server).
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <string>
#include <vector>

#include "common/config.h"
#include "modules/proxy/h3_tls.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/upstream_config.h"

using namespace wraith;
using namespace wraith::proxy;

namespace {

std::shared_ptr<const Config> load(const std::string& text, std::vector<std::string>& errors) {
    Diagnostics diag;
    auto config = load_config_text(text, "test.toml", "/nonexistent", diag);
    for (const Diagnostic& d : diag.list())
        errors.push_back(d.text());
    return config;
}

// An upstream "app" with `lines` after its servers (from line 3), used by a route.
std::string config(const std::string& lines, const std::string& servers = "\"127.0.0.1:9443\"",
                   const std::string& route = "upstream = \"app\"") {
    return "[upstream.app]\n"
           "servers = [" +
           servers + "]\n" + lines +
           "\n"
           "[[listen]]\n"
           "address = \"8080\"\n"
           "[[site]]\n"
           "hosts = [\"*\"]\n"
           "  [[site.route]]\n"
           "  proxy = { " +
           route + " }\n";
}

} // namespace

TEST_CASE("protocol = \"h3\": QUIC with both TLS contexts built", "[proxy][h3][config]") {
    std::vector<std::string> errors;
    auto cfg = load(config("protocol = \"h3\"\ntls = { verify = false }"), errors);
    REQUIRE(errors.empty());
    const UpstreamConfig& up = *proxy_config(*cfg)->upstreams.at("app");
    CHECK(up.http3);
    CHECK_FALSE(up.http2);
    CHECK_FALSE(up.fallback_h2);
    REQUIRE(up.tls);
    CHECK(up.tls->quic_context != nullptr);
    CHECK_FALSE(up.tls->quic_context->verify());
    CHECK(up.tls->context != nullptr);

    errors.clear();
    cfg = load(config("protocol = \"h3\"\ntls = { verify = false }\nfallback = \"h2\""), errors);
    REQUIRE(errors.empty());
    CHECK(proxy_config(*cfg)->upstreams.at("app")->fallback_h2);

    // A host name is fine (resolved by the worker); TCP health checks go with the fallback.
    errors.clear();
    cfg = load(config("protocol = \"h3\"\ntls = { verify = false }\nfallback = \"h2\"\n"
                      "[upstream.app.health_check]\ntype = \"tcp\"",
                      "\"app.internal:443\""),
               errors);
    REQUIRE(errors.empty());
    CHECK(proxy_config(*cfg)->upstreams.at("app")->servers[0].host == "app.internal");

    // Other protocols have no QUIC context.
    errors.clear();
    cfg = load(config("protocol = \"h2\"\ntls = { verify = false }"), errors);
    REQUIRE(errors.empty());
    CHECK(proxy_config(*cfg)->upstreams.at("app")->tls->quic_context == nullptr);
}

TEST_CASE("protocol = \"h3\": misuse is reported at its place", "[proxy][h3][config]") {
    struct Case {
        std::string lines, servers, error;
    };
    const std::vector<Case> cases = {
        {"protocol = \"h3\"", "\"127.0.0.1:9443\"",
         "test.toml:3:12: upstream.app.protocol: HTTP/3 runs over QUIC, which is always TLS: "
         "add tls = true (or tls = { ca = \"...\" })"},
        {"protocol = \"h3\"\ntls = true", "\"unix:/run/app.sock\"",
         "test.toml:3:12: upstream.app.protocol: HTTP/3 needs UDP, but server "
         "\"unix:/run/app.sock\" is a Unix socket"},
        {"fallback = \"h2\"", "\"127.0.0.1:9443\"",
         "test.toml:3:12: upstream.app.fallback: applies to protocol = \"h3\""},
        {"protocol = \"h3\"\ntls = true\nfallback = \"h1\"", "\"127.0.0.1:9443\"",
         "test.toml:5:12: upstream.app.fallback: expected \"h2\" (HTTP/2 over TLS on TCP when "
         "UDP is blocked), got \"h1\""},
        {"protocol = \"h3\"\ntls = true\n[upstream.app.health_check]\npath = \"/\"",
         "\"127.0.0.1:9443\"",
         "test.toml:3:12: upstream.app.protocol: health checks probe over TCP: an HTTP/3 "
         "upstream takes health_check.type = \"tcp\" with fallback = \"h2\" only"},
        {"protocol = \"h4\"", "\"127.0.0.1:9443\"", "upstream.app.protocol"},
    };
    for (const Case& c : cases) {
        std::vector<std::string> errors;
        load(config(c.lines, c.servers), errors);
        INFO(c.lines);
        REQUIRE(!errors.empty());
        CHECK(errors[0].find(c.error) != std::string::npos);
        CHECK(errors[0].rfind("test.toml:", 0) == 0);
    }
}

TEST_CASE("pass = \"h3://...\": QUIC with TLS defaults, port 443", "[proxy][h3][config]") {
    UpstreamConfig up;
    CHECK(parse_pass_url("h3://app.internal", up).empty());
    REQUIRE(up.servers.size() == 1);
    CHECK(up.servers[0].host == "app.internal");
    CHECK(up.servers[0].port == 443);
    CHECK(up.http3);
    CHECK_FALSE(up.http2);
    REQUIRE(up.tls);
    CHECK(up.tls->verify);

    UpstreamConfig ip;
    CHECK(parse_pass_url("h3://[::1]:8443/", ip).empty());
    CHECK(ip.servers[0].addr.ss_family == AF_INET6);
    CHECK(ip.http3);

    UpstreamConfig unix_h3;
    CHECK(parse_pass_url("h3://unix:/run/app.sock", unix_h3) ==
          "HTTP/3 needs UDP: h3:// takes a host and port, not a Unix socket");

    std::vector<std::string> errors;
    auto cfg = load(config("", "\"127.0.0.1:1\"", "pass = \"h3://127.0.0.1:9443\""), errors);
    REQUIRE(errors.empty());
    errors.clear();
    load(config("", "\"127.0.0.1:1\"", "pass = \"h3://unix:/run/app.sock\""), errors);
    REQUIRE(errors.size() == 1);
    INFO(errors[0]);
    CHECK(errors[0].rfind("test.toml:9:20: proxy.pass:", 0) == 0);
    CHECK(errors[0].find("not a Unix socket") != std::string::npos);
}
