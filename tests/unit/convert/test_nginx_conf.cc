// The NGINX configuration reader of `wraith convert`: NGINX's tokens, quoting and escapes,
// blocks, includes with globs, and hostile input (errors with FILE:LINE, limits).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "convert/nginx_conf.h"

using namespace wraith::convert;

namespace {

NginxConf parse(std::string_view text, NginxLimits limits = {}) {
    return parse_nginx_conf(text, "n.conf", "/nonexistent", limits, false);
}

std::string tmpdir() {
    char tmpl[] = "/tmp/wraith-unit-nginx-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    return tmpl;
}

void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

} // namespace

TEST_CASE("nginx_conf: directives, arguments and blocks with their lines", "[convert]") {
    NginxConf c = parse("user www-data;\n# comment ; {\nhttp {\n  server { listen 80; }\n}\n");
    REQUIRE(c.ok());
    REQUIRE(c.top.size() == 2);
    CHECK(c.top[0].name == "user");
    CHECK(c.top[0].args == std::vector<std::string>{"www-data"});
    CHECK(c.top[0].at.line == 1);
    CHECK(c.top[1].block);
    CHECK(c.top[1].at.line == 3);
    const auto& server = c.top[1].children.at(0);
    CHECK(server.name == "server");
    CHECK(server.children.at(0).args == std::vector<std::string>{"80"});
    CHECK(server.children.at(0).at.text() == "n.conf:4");
}

TEST_CASE("nginx_conf: quotes, escapes and variables as NGINX reads them", "[convert]") {
    NginxConf c = parse(R"(a "x y" 'it\'s' "tab\there" \.php$ ${host}x "semi;colon" "";)");
    REQUIRE(c.ok());
    const auto& args = c.top.at(0).args;
    REQUIRE(args.size() == 7);
    CHECK(args[0] == "x y");
    CHECK(args[1] == "it's");
    CHECK(args[2] == "tab\there");
    CHECK(args[3] == "\\.php$"); // a regex keeps its backslash
    CHECK(args[4] == "${host}x");
    CHECK(args[5] == "semi;colon");
    CHECK(args[6].empty());
}

TEST_CASE("nginx_conf: malformed input is an error with FILE:LINE", "[convert]") {
    CHECK(parse("a \"open;\n").errors.at(0).rfind("n.conf:1: unexpected end of file", 0) == 0);
    CHECK(parse("http {\n server {\n").errors.at(0) ==
          "n.conf:3: unexpected end of file, expecting \"}\"");
    CHECK(parse("}\n").errors.at(0) == "n.conf:1: unexpected \"}\"");
    CHECK(parse("a b\n").errors.at(0).find("expecting \";\"") != std::string::npos);
    CHECK(parse(";").errors.at(0) == "n.conf:1: unexpected \";\"");
    CHECK(parse("a \"b\"c;").errors.at(0) == "n.conf:1: unexpected \"c\"");
    CHECK(parse("a ${x;").errors.at(0).find("closing bracket") != std::string::npos);
    CHECK(parse(std::string("a \0b;", 5)).ok()); // a NUL is just a byte
}

TEST_CASE("nginx_conf: limits bound hostile input", "[convert]") {
    NginxLimits l;
    l.max_depth = 8;
    std::string deep;
    for (int i = 0; i < 100; ++i)
        deep += "a {";
    CHECK(parse(deep, l).errors.at(0).find("nested too deeply") != std::string::npos);
    l.max_token = 16;
    CHECK(parse("a " + std::string(100, 'x') + ";", l).errors.at(0).find("too long") !=
          std::string::npos);
    l.max_directives = 10;
    std::string many;
    for (int i = 0; i < 50; ++i)
        many += "a;";
    CHECK(parse(many, l).errors.at(0).find("too many directives") != std::string::npos);
}

TEST_CASE("nginx_conf: include follows globs in order, relative to the main file", "[convert]") {
    std::string d = tmpdir();
    std::filesystem::create_directories(d + "/conf.d");
    write(d + "/nginx.conf", "http {\n  include conf.d/*.conf;\n  include mime.types;\n}\n");
    write(d + "/conf.d/b.conf", "server { listen 2; }\n");
    write(d + "/conf.d/a.conf", "server { listen 1; }\n");
    write(d + "/mime.types", "types { text/html html; }\n");
    NginxConf c = read_nginx_conf(d + "/nginx.conf");
    REQUIRE(c.ok());
    const auto& http = c.top.at(0).children;
    REQUIRE(http.size() == 3);
    CHECK(http[0].children.at(0).args.at(0) == "1"); // a.conf before b.conf
    CHECK(http[1].children.at(0).args.at(0) == "2");
    CHECK(http[0].at.file == d + "/conf.d/a.conf");
    CHECK(http[0].included_from == d + "/nginx.conf");
    CHECK(http[2].name == "types");
    CHECK(c.files.size() == 4);

    write(d + "/loop.conf", "include loop.conf;\n");
    NginxConf loop = read_nginx_conf(d + "/loop.conf");
    REQUIRE_FALSE(loop.ok());
    CHECK(loop.errors.at(0).find("nested too deeply") != std::string::npos);

    write(d + "/missing.conf", "include nothere.conf;\n");
    NginxConf missing = read_nginx_conf(d + "/missing.conf");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.errors.at(0).rfind(d + "/missing.conf:1: include", 0) == 0);
    // A glob that matches nothing is fine, as in NGINX.
    write(d + "/empty.conf", "include none/*.conf;\n");
    CHECK(read_nginx_conf(d + "/empty.conf").ok());
    std::filesystem::remove_all(d);
}
