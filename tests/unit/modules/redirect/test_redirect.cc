// Redirect handler (modules/redirect): Location templates, their expansion with request
// variables, the response, and config validation.
#include <catch2/catch.hpp>

#include <string>

#include <toml++/toml.h>

#include "common/config.h"
#include "modules/redirect/redirect.h"
#include "support/recording_writer.h"

using namespace wraith;
using namespace wraith::modtest;

namespace {

std::string expand(std::string_view to, const Request& req) {
    std::string error;
    auto t = LocationTemplate::parse(to, error);
    INFO(error);
    REQUIRE(t);
    Arena arena;
    return std::string(t->expand(req, arena));
}

std::string parse_error(std::string_view to) {
    std::string error;
    auto t = LocationTemplate::parse(to, error);
    CHECK_FALSE(t);
    return error;
}

std::unique_ptr<Handler> build_from(const std::string& toml_text, Diagnostics& diag) {
    diag.set_file("test.toml");
    toml::table doc = toml::parse(std::string_view(toml_text), std::string_view("test.toml"));
    const toml::table* t = doc["redirect"].as_table();
    REQUIRE(t != nullptr);
    Config cfg;
    Site site;
    BuildContext ctx{cfg, &site, diag};
    TableReader reader(*t, diag, "redirect");
    auto h = build_redirect(reader, ctx);
    reader.finish();
    return h;
}

std::string all_errors(const Diagnostics& diag) {
    std::string s;
    for (const auto& d : diag.list())
        s += d.text() + "\n";
    return s;
}

} // namespace

TEST_CASE("location templates: literals and variables", "[redirect]") {
    TestExchange ex;
    Request& r = ex.req;
    r.scheme = "http";
    r.host = "example.org";
    r.target = "/docs/a%20b?x=1&y=2";
    r.path = "/docs/a%20b";
    r.query = "x=1&y=2";
    r.decoded_path = "/docs/a b";

    CHECK(expand("https://example.com/", r) == "https://example.com/");
    CHECK(expand("https://$host$request_uri", r) == "https://example.org/docs/a%20b?x=1&y=2");
    CHECK(expand("$scheme://$host/", r) == "http://example.org/");
    CHECK(expand("https://new.example$uri", r) == "https://new.example/docs/a%20b");
    CHECK(expand("/search?$query", r) == "/search?x=1&y=2");
    CHECK(expand("/price/$$5", r) == "/price/$5");
    CHECK(expand("$$$host", r) == "$example.org");
    CHECK(expand("https://${host}x/", r) == "https://example.orgx/");
    CHECK(expand("/a/${uri}", r) == "/a//docs/a%20b");
    CHECK(expand("$uri$uri", r) == "/docs/a%20b/docs/a%20b");
    CHECK(expand("/$query/", r) == "/x=1&y=2/");
}

TEST_CASE("location templates: request_uri without a query", "[redirect]") {
    TestExchange ex;
    ex.req.target = "/plain";
    ex.req.path = "/plain";
    CHECK(expand("https://x$request_uri", ex.req) == "https://x/plain");
    CHECK(expand("https://x/?$query", ex.req) == "https://x/?");
    // An absolute-form target: rebuilt from path and query.
    ex.req.target = "http://example.com/p?q=1";
    ex.req.path = "/p";
    ex.req.query = "q=1";
    CHECK(expand("https://x$request_uri", ex.req) == "https://x/p?q=1");
}

TEST_CASE("location templates: variables cannot inject header bytes", "[redirect]") {
    TestExchange ex;
    ex.req.decoded_path = "/a\r\nset-cookie: x=1 %?#\"<>";
    ex.req.path = "/a%0D%0Aset-cookie:%20x=1%20%25%3F%23";
    ex.req.target = "/a\x7f\xff";
    ex.req.query = "a b";
    CHECK(expand("$uri", ex.req) == "/a%0D%0Aset-cookie:%20x=1%20%25%3F%23%22%3C%3E");
    CHECK(expand("$request_uri", ex.req) == "/a%7F%FF");
    CHECK(expand("?$query", ex.req) == "?a%20b");
    // Decoded path absent (no router): the raw path is used.
    ex.req.decoded_path = {};
    ex.req.path = "/raw%20path";
    CHECK(expand("$uri", ex.req) == "/raw%20path");
}

TEST_CASE("location templates: errors", "[redirect]") {
    CHECK(parse_error("https://$hostname/").find("unknown variable \"$hostname\"") !=
          std::string::npos);
    CHECK(parse_error("https://$hostname/").find("character 9") != std::string::npos);
    CHECK(parse_error("/$request_urix").find("$request_urix") != std::string::npos);
    CHECK(parse_error("/${nope}").find("unknown variable \"$nope\"") != std::string::npos);
    CHECK(parse_error("/x$").find("without a variable name") != std::string::npos);
    CHECK(parse_error("/x$/").find("without a variable name") != std::string::npos);
    CHECK(parse_error("/${host").find("without \"}\"") != std::string::npos);
    CHECK(parse_error("/${}").find("without a variable name") != std::string::npos);
    CHECK(parse_error("/a b").find("space or control") != std::string::npos);
    CHECK(parse_error("/a\r\nx: y").find("character 3") != std::string::npos);
    CHECK(parse_error("/a\tb").find("space or control") != std::string::npos);
    CHECK(parse_error("/caf\xc3\xa9").find("not ASCII") != std::string::npos);
    // Every known variable is listed in the message.
    std::string e = parse_error("$x");
    for (const char* v : {"$scheme", "$host", "$request_uri", "$uri", "$query", "$$"})
        CHECK(e.find(v) != std::string::npos);
}

TEST_CASE("html_escape", "[redirect]") {
    Arena arena;
    CHECK(html_escape("plain/text?a=1", arena) == "plain/text?a=1");
    CHECK(html_escape("a&b<c>d\"e'f", arena) == "a&amp;b&lt;c&gt;d&#34;e&#39;f");
    CHECK(html_escape("", arena) == "");
}

TEST_CASE("redirect responds with location and a small HTML body", "[redirect]") {
    for (int status : {301, 302, 303, 307, 308}) {
        std::string error;
        auto t = LocationTemplate::parse("https://example.com$request_uri", error);
        REQUIRE(t);
        RedirectHandler h(*t, status);
        TestExchange ex;
        ex.req.target = "/a?b=<x>&c";
        ex.req.path = "/a";
        ex.req.query = "b=<x>&c";
        NoBody body;
        RecordingWriter out;
        h.handle(ex.req, body, out);
        INFO(status);
        CHECK(out.status == status);
        CHECK(out.header("location") == "https://example.com/a?b=%3Cx%3E&c");
        CHECK(out.header("content-type") == "text/html; charset=utf-8");
        CHECK(out.content_length == int64_t(out.body.size()));
        CHECK(out.ended);
        CHECK(out.body.find("<a href=\"https://example.com/a?b=%3Cx%3E&amp;c\">") !=
              std::string::npos);
        CHECK(out.body.find(std::to_string(status)) != std::string::npos);
    }
}

TEST_CASE("redirect answers HEAD without a body and drains a request body", "[redirect]") {
    std::string error;
    auto t = LocationTemplate::parse("/new", error);
    REQUIRE(t);
    RedirectHandler h(*t, 308);
    TestExchange ex("HEAD");
    NoBody body;
    RecordingWriter out;
    h.handle(ex.req, body, out);
    CHECK(out.status == 308);
    CHECK(out.headers_end);
    CHECK(out.body.empty());
    CHECK(out.content_length > 0);
    CHECK(out.header("location") == "/new");

    TestExchange post("POST");
    post.req.has_body = true;
    NoBody post_body;
    RecordingWriter post_out;
    h.handle(post.req, post_body, post_out);
    CHECK(post_body.discarded);
    CHECK(post_out.ended);
}

TEST_CASE("redirect config: defaults and valid statuses", "[redirect][config]") {
    Diagnostics diag;
    auto h = build_from(R"(redirect = { to = "https://example.com$request_uri" })", diag);
    INFO(all_errors(diag));
    REQUIRE(h);
    TestExchange ex;
    NoBody body;
    RecordingWriter out;
    h->handle(ex.req, body, out);
    CHECK(out.status == 301);
    CHECK(out.header("location") == "https://example.com/");

    for (int status : {301, 302, 303, 307, 308}) {
        Diagnostics d;
        auto built =
            build_from("redirect = { to = \"/x\", status = " + std::to_string(status) + " }", d);
        CHECK(built);
        CHECK(d.ok());
    }
}

TEST_CASE("redirect config: errors carry positions", "[redirect][config]") {
    struct Case {
        const char* toml;
        const char* expect;
    };
    for (const Case& c : {
             Case{"redirect = { status = 301 }", "to"},
             Case{"redirect = { to = \"\" }", "empty"},
             Case{"redirect = { to = 5 }", "to"},
             Case{"redirect = { to = \"https://$hostname/\" }", "unknown variable \"$hostname\""},
             Case{"redirect = { to = \"/a b\" }", "percent-encode"},
             Case{"redirect = { to = \"/x\", status = 200 }", "status"},
             Case{"redirect = { to = \"/x\", status = 300 }", "300"},
             Case{"redirect = { to = \"/x\", status = 304 }", "304"},
             Case{"redirect = { to = \"/x\", status = \"301\" }", "status"},
             Case{"redirect = { to = \"/x\", code = 301 }", "code"},
         }) {
        Diagnostics diag;
        auto h = build_from(c.toml, diag);
        std::string errors = all_errors(diag);
        INFO(c.toml << "\n" << errors);
        CHECK_FALSE(diag.ok());
        CHECK(errors.find(c.expect) != std::string::npos);
        CHECK(errors.find("test.toml:1:") != std::string::npos);
    }
    // The unknown variable is reported at the value of `to`.
    Diagnostics diag;
    build_from("\n[redirect]\nstatus = 302\nto   = \"/$nope\"\n", diag);
    REQUIRE(diag.list().size() == 1);
    CHECK(diag.list()[0].pos.line == 4);
    CHECK(diag.list()[0].pos.column == 8);
}
