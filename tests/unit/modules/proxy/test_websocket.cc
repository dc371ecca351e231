// The WebSocket handshake helpers of the proxy (modules/proxy/websocket.h) and its tunnel
// options (tunnel_timeout, tunnels()).
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <openssl/evp.h>

#include "common/config.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/websocket.h"

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

const char* const kTail = R"toml(
[[listen]]
address = "8080"

[[site]]
hosts = ["example.com"]
  [[site.route]]
  path = "/api/"
  proxy = { upstream = "app" }
  [[site.route]]
  path = "/ws/"
  proxy = { upstream = "app", tunnel_timeout = "1h" }
)toml";

} // namespace

TEST_CASE("websocket_accept follows RFC 6455 §1.3's example", "[proxy][websocket]") {
    CHECK(websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST_CASE("websocket_key is 16 fresh random bytes in base64", "[proxy][websocket]") {
    std::set<std::string> seen;
    for (int i = 0; i < 64; ++i) {
        std::string key = websocket_key();
        REQUIRE(key.size() == 24);
        CHECK(key.substr(22) == "==");
        unsigned char raw[32];
        CHECK(EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(key.data()), 24) == 18);
        seen.insert(key);
    }
    CHECK(seen.size() == 64);
}

TEST_CASE("list_contains matches comma-separated tokens ignoring case and spaces",
          "[proxy][websocket]") {
    CHECK(list_contains("websocket", "websocket"));
    CHECK(list_contains("WebSocket", "websocket"));
    CHECK(list_contains("keep-alive, Upgrade", "upgrade"));
    CHECK(list_contains("h2c,\twebsocket ", "websocket"));
    CHECK(list_contains(",, websocket,", "websocket"));
    CHECK_FALSE(list_contains("websockets", "websocket"));
    CHECK_FALSE(list_contains("web socket", "websocket"));
    CHECK_FALSE(list_contains("", "websocket"));
    CHECK_FALSE(list_contains("h2c", "websocket"));
}

TEST_CASE("field_lists looks at every field of the name", "[proxy][websocket]") {
    Headers h;
    h.add("connection", "keep-alive");
    h.add("upgrade", "h2c");
    h.add("connection", "Upgrade");
    CHECK(field_lists(h, "connection", "upgrade"));
    CHECK(field_lists(h, "upgrade", "h2c"));
    CHECK_FALSE(field_lists(h, "upgrade", "websocket"));
    CHECK_FALSE(field_lists(h, "sec-websocket-accept", "upgrade"));
}

TEST_CASE("proxy tunnel_timeout: its own value, else the upstream's read_timeout",
          "[proxy][websocket]") {
    std::vector<std::string> errors;
    auto config = load("[upstream.app]\nservers = [\"127.0.0.1:9000\"]\nread_timeout = \"7s\"\n" +
                           std::string(kTail),
                       errors);
    REQUIRE(errors.empty());
    REQUIRE(config);
    const Site& site = *config->sites.front();
    REQUIRE(site.routes.size() == 2);
    const auto* api = dynamic_cast<const ProxyHandler*>(site.routes[0].handler.get());
    const auto* ws = dynamic_cast<const ProxyHandler*>(site.routes[1].handler.get());
    REQUIRE(api);
    REQUIRE(ws);
    CHECK(api->tunnels());
    CHECK(api->tunnel_timeout() == Duration{7000});
    CHECK(ws->tunnel_timeout() == Duration{3600 * 1000});
}

TEST_CASE("proxy tunnel_timeout must be positive", "[proxy][websocket]") {
    std::vector<std::string> errors;
    std::string text = "[upstream.app]\nservers = [\"127.0.0.1:9000\"]\n" + std::string(kTail);
    text.replace(text.find("\"1h\""), 4, "\"0s\"");
    auto config = load(text, errors);
    CHECK_FALSE(config);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find("tunnel_timeout") != std::string::npos);
    CHECK(errors[0].find("longer than 0") != std::string::npos);
}
