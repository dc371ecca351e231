#include <catch2/catch.hpp>

#include <string>

#include "modules/static/validators.h"

using namespace wraith::static_files;
using wraith::Headers;

namespace {

constexpr time_t kModified = 784111777; // Sun, 06 Nov 1994 08:49:37 GMT
constexpr const char* kDate = "Sun, 06 Nov 1994 08:49:37 GMT";
constexpr const char* kEarlier = "Sun, 06 Nov 1994 08:49:36 GMT";
constexpr const char* kLater = "Sun, 06 Nov 1994 08:49:38 GMT";
constexpr std::string_view kTag = "\"abc-1\"";

Precondition eval(std::initializer_list<std::pair<const char*, const char*>> fields,
                  bool safe = true) {
    Headers h;
    for (auto& [n, v] : fields)
        h.add(n, v);
    return evaluate_preconditions(h, safe, kTag, kModified);
}

} // namespace

TEST_CASE("static etag: strong, distinct per suffix and per change", "[static][etag]") {
    struct stat st {};
    st.st_ino = 0x1234;
    st.st_size = 0x100;
    st.st_mtim.tv_sec = 1;
    st.st_mtim.tv_nsec = 5;
    char buf[etag_size];
    std::string plain(buf, make_etag(st, "", buf));
    REQUIRE(plain.size() == 15);
    CHECK(plain.front() == '"');
    CHECK(plain.back() == '"');
    CHECK(plain.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567", 1) == 14);
    CHECK(std::string(buf, make_etag(st, "", buf)) == plain); // the same file, the same tag
    std::string br(buf, make_etag(st, "-br", buf));
    CHECK(br == plain.substr(0, 14) + "-br\"");
    // Each input changes it: nanoseconds of mtime, size, inode.
    st.st_mtim.tv_nsec = 6;
    std::string later(buf, make_etag(st, "", buf));
    CHECK(later != plain);
    st.st_size = 0x101;
    std::string longer(buf, make_etag(st, "", buf));
    CHECK(longer != later);
    st.st_ino = 0x1235;
    CHECK(std::string(buf, make_etag(st, "", buf)) != longer);
    // Inputs that a plain XOR of the fields would confuse still differ.
    struct stat a {}, b {};
    a.st_ino = 1;
    a.st_size = 2;
    b.st_ino = 2;
    b.st_size = 1;
    char other[etag_size];
    CHECK(std::string(buf, make_etag(a, "", buf)) != std::string(other, make_etag(b, "", other)));
}

TEST_CASE("static etag: list matching, strong and weak", "[static][etag]") {
    CHECK(etag_list_matches("\"abc-1\"", kTag, true));
    CHECK(etag_list_matches("\"x\", \"abc-1\"", kTag, true));
    CHECK(etag_list_matches("\"x\",\"abc-1\"", kTag, true));
    CHECK_FALSE(etag_list_matches("W/\"abc-1\"", kTag, true));
    CHECK(etag_list_matches("W/\"abc-1\"", kTag, false));
    CHECK(etag_list_matches("*", kTag, true));
    CHECK_FALSE(etag_list_matches("\"abc-2\"", kTag, false));
    CHECK_FALSE(etag_list_matches("abc-1", kTag, false));
    CHECK_FALSE(etag_list_matches("\"abc-1", kTag, false));
    CHECK_FALSE(etag_list_matches("W/\"abc-1\"", "W/\"abc-1\"", true));
    CHECK(etag_list_matches("garbage, \"abc-1\"", kTag, true));
}

TEST_CASE("static conditionals: no fields pass", "[static][conditional]") {
    CHECK(eval({}) == Precondition::pass);
}

TEST_CASE("static conditionals: If-Match", "[static][conditional]") {
    CHECK(eval({{"if-match", "\"abc-1\""}}) == Precondition::pass);
    CHECK(eval({{"if-match", "*"}}) == Precondition::pass);
    CHECK(eval({{"if-match", "\"nope\""}}) == Precondition::failed);
    CHECK(eval({{"if-match", "W/\"abc-1\""}}) == Precondition::failed);
    CHECK(eval({{"if-match", "\"nope\""}, {"if-match", "\"abc-1\""}}) == Precondition::pass);
}

TEST_CASE("static conditionals: If-Unmodified-Since only without If-Match",
          "[static][conditional]") {
    CHECK(eval({{"if-unmodified-since", kDate}}) == Precondition::pass);
    CHECK(eval({{"if-unmodified-since", kEarlier}}) == Precondition::failed);
    CHECK(eval({{"if-unmodified-since", "not a date"}}) == Precondition::pass);
    CHECK(eval({{"if-match", "\"abc-1\""}, {"if-unmodified-since", kEarlier}}) ==
          Precondition::pass);
}

TEST_CASE("static conditionals: If-None-Match", "[static][conditional]") {
    CHECK(eval({{"if-none-match", "\"abc-1\""}}) == Precondition::not_modified);
    CHECK(eval({{"if-none-match", "W/\"abc-1\""}}) == Precondition::not_modified);
    CHECK(eval({{"if-none-match", "*"}}) == Precondition::not_modified);
    CHECK(eval({{"if-none-match", "\"other\""}}) == Precondition::pass);
    CHECK(eval({{"if-none-match", "\"abc-1\""}}, false) == Precondition::failed);
}

TEST_CASE("static conditionals: If-Modified-Since only without If-None-Match",
          "[static][conditional]") {
    CHECK(eval({{"if-modified-since", kDate}}) == Precondition::not_modified);
    CHECK(eval({{"if-modified-since", kLater}}) == Precondition::not_modified);
    CHECK(eval({{"if-modified-since", kEarlier}}) == Precondition::pass);
    CHECK(eval({{"if-modified-since", "garbage"}}) == Precondition::pass);
    CHECK(eval({{"if-modified-since", kDate}}, false) == Precondition::pass);
    CHECK(eval({{"if-none-match", "\"other\""}, {"if-modified-since", kDate}}) ==
          Precondition::pass);
}

TEST_CASE("static conditionals: If-Match failure wins over If-None-Match",
          "[static][conditional]") {
    CHECK(eval({{"if-match", "\"nope\""}, {"if-none-match", "\"abc-1\""}}) == Precondition::failed);
}

TEST_CASE("static conditionals: If-Range", "[static][conditional]") {
    Headers none;
    CHECK(if_range_allows(none, kTag, kModified));
    auto with = [](const char* v) {
        Headers h;
        h.add("if-range", v);
        return if_range_allows(h, kTag, kModified);
    };
    CHECK(with("\"abc-1\""));
    CHECK_FALSE(with("\"abc-2\""));
    CHECK_FALSE(with("W/\"abc-1\""));
    CHECK(with(kDate));
    CHECK_FALSE(with(kLater));
    CHECK_FALSE(with(kEarlier));
    CHECK_FALSE(with("garbage"));
}

TEST_CASE("validators: a compressed copy's tag revalidates weakly, never strongly",
          "[static][validators]") {
    using wraith::static_files::etag_list_matches;
    CHECK(etag_list_matches("\"abc-gzip\"", "\"abc\"", false));
    CHECK(etag_list_matches("W/\"x\", \"abc-zstd\"", "\"abc\"", false));
    CHECK(etag_list_matches("\"abc-br\"", "\"abc\"", false));
    CHECK_FALSE(etag_list_matches("\"abc-gzip\"", "\"abc\"", true));
    CHECK_FALSE(etag_list_matches("\"abd-gzip\"", "\"abc\"", false));
    CHECK_FALSE(etag_list_matches("\"abc-deflate\"", "\"abc\"", false));
}
