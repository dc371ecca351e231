// common/regex.h and common/cidr.h: PCRE2 searches with captures and the literal-prefix
// shortcut (which must never reject a subject the engine would match), and CIDR parsing with
// its host-bits warning and IPv4-mapped matching.
#include <catch2/catch.hpp>

#include "common/cidr.h"
#include "common/regex.h"

using namespace wraith;

TEST_CASE("regex: search, captures and the anchored prefix") {
    std::string why;
    auto re = Regex::compile("^/api/v(\\d+)/(\\w+)", Regex::none, &why);
    REQUIRE(re);
    CHECK(re->groups() == 2);
    CHECK(re->literal_prefix() == "/api/v");
    Captures c;
    REQUIRE(re->search("/api/v12/items?x", &c));
    CHECK(c.count == 3);
    CHECK(c.group[1] == "12");
    CHECK(c.group[2] == "items");
    CHECK_FALSE(re->search("/apx/v1/a"));
    // Quantifiers and alternatives shorten or drop the prefix.
    CHECK(Regex::compile("^/ab?c", Regex::none, &why)->literal_prefix() == "/a");
    CHECK(Regex::compile("^/a|/b", Regex::none, &why)->literal_prefix().empty());
    CHECK(Regex::compile("^/a|/b", Regex::none, &why)->search("/x/b"));
    CHECK(Regex::compile("^/a\\.b", Regex::none, &why)->literal_prefix() == "/a.b");
    CHECK(Regex::compile("(?i)^/ABC", Regex::none, &why)->search("/abc"));
    CHECK(Regex::compile("^/ABC", Regex::caseless, &why)->search("/abc"));
    CHECK_FALSE(Regex::compile("(", Regex::none, &why));
    CHECK(why == "missing closing parenthesis at offset 1");
    // Invalid UTF-8 in a subject is not an error, just no match of the odd bytes.
    CHECK(Regex::compile("b$", Regex::none, &why)
              ->search("a\xff"
                       "b"));
}

TEST_CASE("cidr: networks, host bits and addresses") {
    Cidr c;
    std::string warning;
    CHECK(parse_cidr("10.1.2.3/8", c, &warning).empty());
    CHECK(cidr_text(c) == "10.0.0.0/8");
    CHECK(warning.find("it means the network 10.0.0.0/8") != std::string::npos);
    warning.clear();
    CHECK(parse_cidr("2001:db8::/32", c, &warning).empty());
    CHECK(warning.empty());
    CHECK_FALSE(parse_cidr("10.0.0.0/33", c).empty());
    CHECK_FALSE(parse_cidr("example.com", c).empty());
    std::vector<Cidr> list(2);
    parse_cidr("10.0.0.0/8", list[0]);
    parse_cidr("2001:db8::/32", list[1]);
    CHECK(cidr_match(list, ip_of("10.200.1.1")));
    CHECK(cidr_match(list, ip_of("::ffff:10.1.1.1")));
    CHECK(cidr_match(list, ip_of("[2001:db8::5]")));
    CHECK_FALSE(cidr_match(list, ip_of("11.0.0.1")));
    CHECK_FALSE(cidr_match(list, ip_of("not an ip")));
}
