#include <catch2/catch.hpp>

#include <string>

#include "common/path.h"

using wraith::Arena;
using wraith::normalize_path;

namespace {

// The normalised path, or "<bad>" when normalize_path refuses the input.
std::string norm(std::string_view raw) {
    Arena arena;
    std::string_view out;
    if (!normalize_path(raw, arena, out))
        return "<bad>";
    return std::string(out);
}

} // namespace

TEST_CASE("normalize_path leaves canonical paths alone", "[path]") {
    CHECK(norm("/") == "/");
    CHECK(norm("/index.html") == "/index.html");
    CHECK(norm("/a/b/c") == "/a/b/c");
    CHECK(norm("/a/b/") == "/a/b/");
}

TEST_CASE("normalize_path percent-decodes exactly once", "[path]") {
    CHECK(norm("/a%20b") == "/a b");
    CHECK(norm("/%41%62") == "/Ab");
    CHECK(norm("/%e2%82%ac") == "/\xe2\x82\xac");
    CHECK(norm("/%2541") == "/%41"); // not decoded twice
    CHECK(norm("/a+b") == "/a+b");   // '+' is not a space in a path
}

TEST_CASE("normalize_path rejects malformed escapes", "[path]") {
    CHECK(norm("/%") == "<bad>");
    CHECK(norm("/%4") == "<bad>");
    CHECK(norm("/a%zz") == "<bad>");
    CHECK(norm("/a%g1") == "<bad>");
    CHECK(norm("/a%4") == "<bad>");
}

TEST_CASE("normalize_path rejects NUL, encoded slashes and backslashes", "[path]") {
    CHECK(norm("/a%00b") == "<bad>");
    CHECK(norm("/a%2Fb") == "<bad>");
    CHECK(norm("/a%2fb") == "<bad>");
    CHECK(norm("/a\\b") == "<bad>");
    CHECK(norm("/a%5Cb") == "<bad>");
    CHECK(norm("/a%5c..%5c..%5cetc") == "<bad>");
    CHECK(norm(std::string_view("/a\0b", 4)) == "<bad>");
}

TEST_CASE("normalize_path collapses repeated slashes", "[path]") {
    CHECK(norm("//") == "/");
    CHECK(norm("//a///b") == "/a/b");
    CHECK(norm("/a//") == "/a/");
}

TEST_CASE("normalize_path resolves dot segments", "[path]") {
    CHECK(norm("/./a") == "/a");
    CHECK(norm("/a/./b") == "/a/b");
    CHECK(norm("/a/b/../c") == "/a/c");
    CHECK(norm("/a/b/..") == "/a/");
    CHECK(norm("/a/.") == "/a/");
    CHECK(norm("/a/..") == "/");
    CHECK(norm("/a/b/../../c/") == "/c/");
    CHECK(norm("/..a/b..") == "/..a/b.."); // not dot segments
    CHECK(norm("/.hidden") == "/.hidden");
}

TEST_CASE("normalize_path refuses to climb above the root", "[path]") {
    CHECK(norm("/..") == "<bad>");
    CHECK(norm("/../etc/passwd") == "<bad>");
    CHECK(norm("/a/../../b") == "<bad>");
    CHECK(norm("/%2e%2e/etc/passwd") == "<bad>");
    CHECK(norm("/a/%2E%2E/%2e%2e/x") == "<bad>");
    CHECK(norm("/.%2e/x") == "<bad>");
}

TEST_CASE("normalize_path treats decoded dots as dot segments", "[path]") {
    CHECK(norm("/a/%2e%2e/b") == "/b");
    CHECK(norm("/a/%2e/b") == "/a/b");
}

TEST_CASE("normalize_path always answers an absolute path", "[path]") {
    CHECK(norm("") == "/");
    CHECK(norm("a/b") == "/a/b");
    CHECK(norm(".") == "/");
}
