// Respond handler (modules/respond): fixed responses and their config validation.
#include <catch2/catch.hpp>

#include <string>

#include <toml++/toml.h>

#include "common/config.h"
#include "modules/respond/respond.h"
#include "support/recording_writer.h"

using namespace wraith;
using namespace wraith::modtest;

namespace {

std::unique_ptr<Handler> build_from(const std::string& toml_text, Diagnostics& diag) {
    diag.set_file("test.toml");
    toml::table doc = toml::parse(std::string_view(toml_text), std::string_view("test.toml"));
    const toml::table* t = doc["respond"].as_table();
    REQUIRE(t != nullptr);
    Config cfg;
    Site site;
    BuildContext ctx{cfg, &site, diag};
    TableReader reader(*t, diag, "respond");
    auto h = build_respond(reader, ctx);
    reader.finish();
    return h;
}

std::string all_errors(const Diagnostics& diag) {
    std::string s;
    for (const auto& d : diag.list())
        s += d.text() + "\n";
    return s;
}

struct Answer {
    RecordingWriter out;
    NoBody body;
};

void run(const Handler& h, TestExchange& ex, Answer& a) {
    h.handle(ex.req, a.body, a.out);
}

} // namespace

TEST_CASE("respond sends its status, body and content type", "[respond]") {
    RespondHandler h(200, "ok\n", "text/plain; charset=utf-8");
    TestExchange ex;
    Answer a;
    run(h, ex, a);
    CHECK(a.out.status == 200);
    CHECK(a.out.body == "ok\n");
    CHECK(a.out.content_length == 3);
    CHECK(a.out.header("content-type") == "text/plain; charset=utf-8");
    CHECK(a.out.ended);
    CHECK_FALSE(a.out.headers_end);
}

TEST_CASE("respond with an empty body ends at the headers", "[respond]") {
    RespondHandler h(404, "", "");
    TestExchange ex;
    Answer a;
    run(h, ex, a);
    CHECK(a.out.status == 404);
    CHECK(a.out.headers_end);
    CHECK(a.out.content_length == 0);
    CHECK_FALSE(a.out.has_header("content-type"));
}

TEST_CASE("respond to HEAD sends the length but no body", "[respond]") {
    RespondHandler h(200, "hello", "text/plain");
    TestExchange ex("HEAD");
    Answer a;
    run(h, ex, a);
    CHECK(a.out.headers_end);
    CHECK(a.out.body.empty());
    CHECK(a.out.content_length == 5);
}

TEST_CASE("respond 204 and 304 carry no length and no body", "[respond]") {
    for (int status : {204, 304}) {
        RespondHandler h(status, "", "");
        TestExchange ex;
        Answer a;
        run(h, ex, a);
        CHECK(a.out.status == status);
        CHECK(a.out.headers_end);
        CHECK(a.out.content_length == -1);
    }
}

TEST_CASE("respond serving an error page answers with the error status", "[respond]") {
    RespondHandler h(200, "not here\n", "text/plain");
    TestExchange ex;
    ex.req.override_status = 404;
    Answer a;
    run(h, ex, a);
    CHECK(a.out.status == 404);
    CHECK(a.out.body == "not here\n");
}

TEST_CASE("respond drains a request body", "[respond]") {
    RespondHandler h(200, "ok", "text/plain");
    TestExchange ex("POST");
    ex.req.has_body = true;
    Answer a;
    run(h, ex, a);
    CHECK(a.body.discarded);
    CHECK(a.out.body == "ok");
}

TEST_CASE("respond config: defaults", "[respond][config]") {
    Diagnostics diag;
    auto h = build_from("respond = {}", diag);
    REQUIRE(h);
    auto& r = dynamic_cast<RespondHandler&>(*h);
    CHECK(r.status() == 200);
    CHECK(r.body().empty());
    CHECK(r.content_type().empty());

    auto b = build_from(R"(respond = { body = "ok\n" })", diag);
    REQUIRE(b);
    auto& rb = dynamic_cast<RespondHandler&>(*b);
    CHECK(rb.body() == "ok\n");
    CHECK(rb.content_type() == "text/plain; charset=utf-8");
    CHECK(diag.ok());
}

TEST_CASE("respond config: every key", "[respond][config]") {
    Diagnostics diag;
    auto h = build_from(
        R"(respond = { status = 503, body = "<h1>down</h1>", content_type = "text/html" })", diag);
    INFO(all_errors(diag));
    REQUIRE(h);
    auto& r = dynamic_cast<RespondHandler&>(*h);
    CHECK(r.status() == 503);
    CHECK(r.body() == "<h1>down</h1>");
    CHECK(r.content_type() == "text/html");

    for (int status : {200, 204, 304, 418, 599}) {
        Diagnostics d;
        CHECK(build_from("respond = { status = " + std::to_string(status) + " }", d));
        CHECK(d.ok());
    }
    // A content type may be given without a body (e.g. for a 204 of an API).
    Diagnostics d;
    auto n = build_from(R"(respond = { status = 204, content_type = "application/json" })", d);
    REQUIRE(n);
    CHECK(dynamic_cast<RespondHandler&>(*n).content_type() == "application/json");
}

TEST_CASE("respond config: errors carry positions", "[respond][config]") {
    struct Case {
        const char* toml;
        const char* expect;
    };
    for (const Case& c : {
             Case{"respond = { status = 100 }", "informational"},
             Case{"respond = { status = 199 }", "informational"},
             Case{"respond = { status = 99 }", "status"},
             Case{"respond = { status = 600 }", "status"},
             Case{"respond = { status = \"200\" }", "status"},
             Case{"respond = { status = 204, body = \"x\" }", "no body"},
             Case{"respond = { status = 304, body = \"x\" }", "no body"},
             Case{"respond = { status = 205, body = \"x\" }", "no body"},
             Case{"respond = { body = 5 }", "body"},
             Case{"respond = { body = \"x\", content_type = \"\" }", "content_type"},
             Case{"respond = { body = \"x\", content_type = \"a\\r\\nb: c\" }", "content_type"},
             Case{"respond = { body = \"x\", type = \"text/html\" }", "type"},
             Case{"respond = { body = \"x\", trailers = { \"bad name\" = \"v\" } }", "trailers"},
             Case{"respond = { body = \"x\", trailers = { \"x-a\" = 5 } }", "trailers"},
             Case{"respond = { status = 204, trailers = { \"x-a\" = \"v\" } }", "no body"},
         }) {
        Diagnostics diag;
        auto h = build_from(c.toml, diag);
        std::string errors = all_errors(diag);
        INFO(c.toml << "\n" << errors);
        CHECK_FALSE(diag.ok());
        CHECK(errors.find(c.expect) != std::string::npos);
        CHECK(errors.find("test.toml:1:") != std::string::npos);
    }
}
