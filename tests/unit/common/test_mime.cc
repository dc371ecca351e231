// MimeTypes: nginx-format parsing, lookups, the built-in table and conf/mime.types.
#include <catch2/catch.hpp>

#include "common/mime.h"

using namespace wraith;

namespace {

struct Parsed {
    std::shared_ptr<const MimeTypes> types;
    std::vector<std::string> errors;
};

Parsed parse(std::string_view text) {
    Diagnostics diag;
    Parsed out;
    out.types = MimeTypes::parse(text, "mime.types", diag);
    for (const Diagnostic& d : diag.list())
        out.errors.push_back(d.text());
    return out;
}

std::vector<std::string> errors(std::string_view text) {
    Parsed p = parse(text);
    CHECK_FALSE(p.types);
    return p.errors;
}

} // namespace

TEST_CASE("nginx mime.types syntax with comments and several extensions", "[mime]") {
    Parsed p = parse(R"(# a comment line
types {
    text/html                html htm shtml;   # trailing comment
    image/svg+xml            svg svgz;
    "application/wasm"       wasm;
    application/octet-stream bin exe;
}
)");
    REQUIRE(p.errors.empty());
    REQUIRE(p.types);
    CHECK(p.types->size() == 8);
    CHECK(p.types->lookup("html") == "text/html");
    CHECK(p.types->lookup("shtml") == "text/html");
    CHECK(p.types->lookup("svgz") == "image/svg+xml");
    CHECK(p.types->lookup("wasm") == "application/wasm");
}

TEST_CASE("lookup is case-insensitive and falls back to octet-stream", "[mime]") {
    Parsed p = parse("types { text/css CSS; }");
    REQUIRE(p.types);
    CHECK(p.types->lookup("css") == "text/css");
    CHECK(p.types->lookup("Css") == "text/css");
    CHECK(p.types->lookup("js") == "application/octet-stream");
    CHECK(p.types->lookup("") == "application/octet-stream");
    CHECK(p.types->lookup(std::string(100, 'c')) == "application/octet-stream");
}

TEST_CASE("for_path uses the extension of the last path segment", "[mime]") {
    auto t = MimeTypes::builtin();
    CHECK(t->for_path("/a/b/index.HTML") == "text/html");
    CHECK(t->for_path("/dist/app.min.js") == "text/javascript");
    CHECK(t->for_path("/archive.tar.gz") == "application/gzip");
    CHECK(t->for_path("/v1.2/README") == MimeTypes::default_type);
    CHECK(t->for_path("/.env") == MimeTypes::default_type);
    CHECK(t->for_path("/file.") == MimeTypes::default_type);
}

TEST_CASE("a later mapping of an extension replaces an earlier one", "[mime]") {
    Parsed p = parse("types { text/plain js; text/javascript js mjs; }");
    REQUIRE(p.types);
    CHECK(p.types->lookup("js") == "text/javascript");
    CHECK(p.types->size() == 2);
}

TEST_CASE("the built-in table covers the common web types", "[mime]") {
    auto t = MimeTypes::builtin();
    CHECK(t->size() >= 30);
    CHECK(t->lookup("html") == "text/html");
    CHECK(t->lookup("mjs") == "text/javascript");
    CHECK(t->lookup("json") == "application/json");
    CHECK(t->lookup("svg") == "image/svg+xml");
    CHECK(t->lookup("webp") == "image/webp");
    CHECK(t->lookup("avif") == "image/avif");
    CHECK(t->lookup("woff2") == "font/woff2");
    CHECK(t->lookup("wasm") == "application/wasm");
    CHECK(t->lookup("webmanifest") == "application/manifest+json");
    CHECK(MimeTypes::builtin() == t); // one shared table
}

TEST_CASE("mime.types: missing types block", "[mime]") {
    CHECK(errors("text/html html;\n") ==
          std::vector<std::string>{"mime.types:1:1: expected \"types {\", got \"text/html\""});
}

TEST_CASE("mime.types: missing opening brace", "[mime]") {
    CHECK(errors("types\n  text/html html;\n") ==
          std::vector<std::string>{
              "mime.types:2:3: expected \"{\" after \"types\", got \"text/html\""});
}

TEST_CASE("mime.types: missing semicolon", "[mime]") {
    CHECK(errors("types {\n  text/html html\n  text/css css;\n}\n") ==
          std::vector<std::string>{"mime.types:3:3: \"text/css\" looks like a media type, not a "
                                   "file extension (missing \";\" before it?)"});
    CHECK(errors("types {\n  text/html html\n}\n") ==
          std::vector<std::string>{"mime.types:3:1: expected \";\" after the extensions of "
                                   "\"text/html\", got \"}\""});
}

TEST_CASE("mime.types: a type without a slash and a type without extensions", "[mime]") {
    CHECK(errors("types {\n  html text;\n  text/plain;\n}\n") ==
          std::vector<std::string>{
              "mime.types:2:3: \"html\" is not a media type (expected type/subtype)",
              "mime.types:3:3: media type \"text/plain\" needs at least one extension",
          });
}

TEST_CASE("mime.types: an extension written with a dot", "[mime]") {
    CHECK(errors("types {\n  text/html .html;\n}\n") ==
          std::vector<std::string>{"mime.types:2:13: \".html\" is not a file extension (write it "
                                   "without dots)"});
}

TEST_CASE("mime.types: unterminated block and trailing garbage", "[mime]") {
    CHECK(errors("types {\n  text/html html;\n") ==
          std::vector<std::string>{
              "mime.types:3:1: unexpected end of file: the types block is missing its \"}\""});
    CHECK(errors("types { text/html html; }\nmore\n") ==
          std::vector<std::string>{"mime.types:2:1: unexpected \"more\" after the types block"});
    CHECK(errors("types { \"text/html html; }\n") ==
          std::vector<std::string>{"mime.types:1:9: unterminated quoted string",
                                   "mime.types:1:9: unexpected end of file: the types block is "
                                   "missing its \"}\""});
}

TEST_CASE("mime.types: every bad line is reported in one pass", "[mime]") {
    CHECK(errors("types {\n  bad1 a;\n  text/css css;\n  bad2 b;\n}\n").size() == 2);
}

TEST_CASE("load reports a missing file", "[mime]") {
    Diagnostics diag;
    CHECK_FALSE(MimeTypes::load("/nonexistent/mime.types", diag));
    REQUIRE(diag.list().size() == 1);
    CHECK(diag.list()[0].text() ==
          "/nonexistent/mime.types: cannot read mime types: No such file or directory");
}

TEST_CASE("conf/mime.types parses and covers the common web types", "[mime]") {
#ifdef WRAITH_SOURCE_DIR
    Diagnostics diag;
    auto t = MimeTypes::load(std::string(WRAITH_SOURCE_DIR) + "/conf/mime.types", diag);
    for (const Diagnostic& d : diag.list())
        UNSCOPED_INFO(d.text());
    REQUIRE(t);
    CHECK(t->size() > 100);
    for (std::string_view ext : {"html", "css", "js", "mjs", "json", "svg", "png", "jpg", "webp",
                                 "avif", "woff2", "wasm", "webmanifest", "pdf", "mp4"})
        CHECK(t->lookup(ext) != MimeTypes::default_type);
    CHECK(t->lookup("wasm") == "application/wasm");
    CHECK(t->lookup("webmanifest") == "application/manifest+json");
    // Everything the built-in table knows, the shipped file knows the same way.
    auto builtin = MimeTypes::builtin();
    for (std::string_view ext : {"html", "css", "js", "json", "svg", "woff2", "avif", "ico"})
        CHECK(t->lookup(ext) == builtin->lookup(ext));
#endif
}
