// Variables in config strings (common/variables.h): compiling (unknown names, ${...}, $$,
// positions of errors), expanding every core variable, and prefix families.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/variables.h"
#include "support/recording_writer.h"

using namespace wraith;

namespace {

std::string expand(const std::string& text, const Request& req, Arena& arena) {
    VarString v;
    std::string error;
    REQUIRE(v.compile(text, &error));
    return std::string(v.expand(req, arena));
}

} // namespace

TEST_CASE("variables: the request's own values") {
    modtest::TestExchange ex("GET");
    Request& req = ex.req;
    req.host = "example.com";
    req.target = "/a%20b?x=1&name=Ada&flag";
    req.path = "/a%20b";
    req.decoded_path = "/a b";
    req.query = "x=1&name=Ada&flag";
    req.version = 20;
    req.headers.add("x-api-key", "k-123");
    req.headers.add("cookie", "theme=dark; session=abc=def;  last=1");
    ConnectionInfo conn;
    auto& peer = reinterpret_cast<sockaddr_in&>(conn.peer);
    peer.sin_family = AF_INET;
    peer.sin_port = htons(54321);
    auto& local = reinterpret_cast<sockaddr_in&>(conn.local);
    local.sin_family = AF_INET;
    local.sin_port = htons(443);
    conn.peer_ip = "192.0.2.7";
    req.conn = &conn;
    Arena& a = ex.arena;

    CHECK(expand("$host", req, a) == "example.com");
    CHECK(expand("$uri", req, a) == "/a b");
    CHECK(expand("$args", req, a) == "x=1&name=Ada&flag");
    CHECK(expand("$request_uri", req, a) == "/a%20b?x=1&name=Ada&flag");
    CHECK(expand("$scheme://$host$request_uri", req, a) ==
          "https://example.com/a%20b?x=1&name=Ada&flag");
    CHECK(expand("$method $protocol", req, a) == "GET HTTP/2.0");
    CHECK(expand("$client_ip:$remote_port>$server_port", req, a) == "192.0.2.7:54321>443");
    req.client_ip = "203.0.113.9"; // what real_ip found behind a trusted proxy
    CHECK(expand("$client_ip", req, a) == "203.0.113.9");
    CHECK(expand("$arg_name|$arg_x|$arg_flag|$arg_missing", req, a) == "Ada|1||");
    CHECK(expand("$http_x_api_key", req, a) == "k-123");
    CHECK(expand("$http_X_API_KEY", req, a) == "k-123");
    CHECK(expand("[$http_absent]", req, a) == "[]");
    CHECK(expand("$cookie_session|$cookie_last|$cookie_theme|$cookie_none", req, a) ==
          "abc=def|1|dark|");
    CHECK(expand("${host}x", req, a) == "example.comx");
    CHECK(expand("cost: $$5", req, a) == "cost: $5");
    // $request_id is made once and stays the same for the exchange.
    std::string id = expand("$request_id", req, a);
    CHECK(id.size() == 32);
    CHECK(expand("$request_id", req, a) == id);
}

TEST_CASE("variables: compile errors name the problem and where it is") {
    VarString v;
    std::string error;
    size_t at = 0;
    CHECK_FALSE(v.compile("key:$nosuch:x", &error, &at));
    CHECK(error == "unknown variable $nosuch");
    CHECK(at == 4);
    CHECK_FALSE(v.compile("a ${host", &error, &at));
    CHECK(error.find("unclosed ${") != std::string::npos);
    CHECK(at == 2);
    CHECK_FALSE(v.compile("50$", &error, &at));
    CHECK(error.find("without a variable name") != std::string::npos);
    CHECK(v.compile("plain text", &error));
    CHECK(v.constant());
    CHECK(v.compile("$http_", &error) == false); // a family needs a name after the prefix
}

TEST_CASE("variables: modules add their own, and a name is registered once") {
    Variables::instance().add("test_var_answer", [](const Request&, std::string_view, Arena&) {
        return std::string_view("42");
    });
    modtest::TestExchange ex("GET");
    CHECK(expand("<$test_var_answer>", ex.req, ex.arena) == "<42>");
}
