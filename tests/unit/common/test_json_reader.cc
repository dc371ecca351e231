#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "common/json_reader.h"

using wraith::json::Error;
using wraith::json::Limits;
using wraith::json::parse;
using wraith::json::Type;
using wraith::json::Value;

namespace {

Value ok(std::string_view text, const Limits& limits = {}) {
    Value v;
    Error e;
    INFO("input: " << text);
    bool parsed = parse(text, &v, &e, limits);
    INFO("error: " << e.describe());
    REQUIRE(parsed);
    return v;
}

// The error of `text`, which must not parse.
Error bad(std::string_view text, const Limits& limits = {}) {
    Value v;
    Error e;
    INFO("input: " << text);
    REQUIRE_FALSE(parse(text, &v, &e, limits));
    REQUIRE_FALSE(e.message.empty());
    return e;
}

std::string string_of(std::string_view json) {
    Value v = ok(json);
    REQUIRE(v.type == Type::string);
    return v.text;
}

} // namespace

TEST_CASE("json: a stats answer reads as a tree with members in order") {
    Value v = ok(R"({"server":{"version":"0.1.0","generation":2,"now":1796667987.091},
                    "requests":{"h1":10,"h2":0},"latency":{"counts":[0,0,1]},
                    "routes":[{"site":"*","route":"/","requests":4}],"flag":true,"off":false,
                    "nothing":null})");
    REQUIRE(v.is_object());
    CHECK(v.members.size() == 7);
    CHECK(v.members[0].key == "server");
    CHECK(v["server"]["version"].as_string() == "0.1.0");
    CHECK(v["server"]["generation"].as_uint() == 2);
    CHECK(v["server"]["now"].as_double() == Approx(1796667987.091));
    CHECK_FALSE(v["server"]["now"].is_uint);
    CHECK(v["requests"]["h1"].as_uint() == 10);
    REQUIRE(v["latency"]["counts"].is_array());
    CHECK(v["latency"]["counts"].items.size() == 3);
    CHECK(v["latency"]["counts"].items[2].as_uint() == 1);
    CHECK(v["routes"].items[0]["route"].as_string() == "/");
    CHECK(v["flag"].type == Type::boolean);
    CHECK(v["flag"].boolean);
    CHECK_FALSE(v["off"].boolean);
    CHECK(v["nothing"].type == Type::null);
}

TEST_CASE("json: missing members and other types read as null, the fallback or empty") {
    Value v = ok(R"({"a":"text","n":-3,"arr":[1]})");
    CHECK(v.find("missing") == nullptr);
    CHECK(v["missing"].type == Type::null);
    CHECK(v["missing"]["deeper"]["still"].as_uint(7) == 7);
    CHECK(v["a"].as_uint(5) == 5);
    CHECK(v["n"].as_uint(9) == 9); // negative: no exact unsigned value
    CHECK(v["n"].as_double() == -3);
    CHECK(v["n"].as_string().empty());
    CHECK(v["arr"]["x"].type == Type::null); // not an object
    CHECK(v["arr"].find("x") == nullptr);
}

TEST_CASE("json: duplicate member names are kept; find takes the first") {
    Value v = ok(R"({"k":1,"k":2})");
    CHECK(v.members.size() == 2);
    CHECK(v["k"].as_uint() == 1);
}

TEST_CASE("json: scalars and empty containers at the top level, whitespace around") {
    CHECK(ok("0").as_uint(9) == 0);
    CHECK(ok(" \t\r\n true \n").boolean);
    CHECK(ok("null").type == Type::null);
    CHECK(ok("[]").items.empty());
    CHECK(ok("{ }").members.empty());
    CHECK(ok("[ [ ] , { } ]").items.size() == 2);
    CHECK(string_of(R"("")").empty());
}

TEST_CASE("json: every escape") {
    CHECK(string_of(R"("\"\\\/\b\f\n\r\t")") == "\"\\/\b\f\n\r\t");
    CHECK(string_of(R"("a\u0041b")") == "aAb");
    CHECK(string_of(R"("\u00e9\u00E9")") == "\xc3\xa9\xc3\xa9"); // two bytes
    CHECK(string_of(R"("\u20ac")") == "\xe2\x82\xac");           // three bytes
    CHECK(string_of(R"("\ud83d\ude00")") == "\xf0\x9f\x98\x80"); // a surrogate pair
    CHECK(string_of(R"("\uDBFF\uDFFF")") == "\xf4\x8f\xbf\xbf"); // U+10FFFF
    CHECK(string_of(R"("\u0000")") == std::string(1, '\0'));
    CHECK(string_of(R"("\u007f\u0080\u07ff\u0800\uffff")") ==
          "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
    CHECK(string_of("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"") ==
          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); // UTF-8 as is
}

TEST_CASE("json: bad escapes and bad strings, with the offset of the problem") {
    CHECK(bad(R"("\x")").offset == 1);
    CHECK(bad(R"("ab\)").offset == 3);
    CHECK(bad(R"("\u12")").offset == 1);
    CHECK(bad(R"("\u12g4")").offset == 1);
    CHECK(bad(R"("\ud83d")").message.find("surrogate") != std::string::npos);
    CHECK(bad(R"("\ud83dx")").offset == 1);
    CHECK(bad(R"("\ud83d\u0041")").offset == 1); // high then not a low one
    CHECK(bad(R"("\ude00")").message.find("surrogate") != std::string::npos);
    CHECK(bad(R"("x\ud83d\n")").offset == 2);
    CHECK(bad("\"a\nb\"").offset == 2); // a raw control character
    CHECK(bad("\"a\x01\"").offset == 2);
    CHECK(bad(R"("abc)").offset == 0); // unterminated: where it opened
    // Ill-formed UTF-8 (RFC 3629): a lone continuation, overlong forms, surrogates, > U+10FFFF.
    for (const char* s : {"\"\x80\"", "\"\xc0\xaf\"", "\"\xc1\xbf\"", "\"\xe0\x80\xaf\"",
                          "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",
                          "\"\xff\"", "\"\xc3\"", "\"\xe2\x82\"", "\"\xe2\x28\xa1\""})
        CHECK(bad(s).offset == 1);
}

TEST_CASE("json: numbers: doubles, exact unsigned integers, and the grammar's edges") {
    Value v = ok("18446744073709551615"); // 2^64 - 1
    CHECK(v.is_uint);
    CHECK(v.integer == UINT64_MAX);
    v = ok("18446744073709551616"); // 2^64: a double only
    CHECK_FALSE(v.is_uint);
    CHECK(v.number == Approx(1.8446744073709552e19));
    v = ok("9007199254740993"); // above 2^53: the double rounds, the integer does not
    CHECK(v.integer == 9007199254740993ull);
    CHECK(ok("-0").number == 0);
    CHECK_FALSE(ok("-0").is_uint);
    CHECK(ok("1.5").number == 1.5);
    CHECK_FALSE(ok("1.0").is_uint);
    CHECK_FALSE(ok("1e2").is_uint);
    CHECK(ok("1e2").number == 100);
    CHECK(ok("-2.5E-3").number == Approx(-0.0025));
    CHECK(ok("1E+2").number == 100);
    CHECK(ok("1e-400").number == 0); // too small rounds to zero
    CHECK(ok("0.0000000000000000001e-400").number == 0);
    CHECK(ok("-1e-400").number == 0);
    CHECK(std::signbit(ok("-1e-400").number));
    CHECK(ok("0e999999").number == 0);
    const std::string long_fraction = "0." + std::string(5000, '7'); // still one number
    CHECK(ok(long_fraction).number == Approx(0.7777777777));
}

TEST_CASE("json: huge numbers are an error, not infinity") {
    CHECK(bad("1e400").offset == 0);
    CHECK(bad("[0, -1e309]").offset == 4);
    CHECK(bad("1e99999999999999999999999").message.find("range") != std::string::npos);
    CHECK(bad(std::string(400, '9')).message.find("range") != std::string::npos);
    CHECK(ok(std::string(300, '9')).number > 1e299);
}

TEST_CASE("json: bad numbers") {
    CHECK(bad("01").offset == 0);
    CHECK(bad("-").offset == 1);
    CHECK(bad("-a").offset == 1);
    CHECK(bad("1.").offset == 2);
    CHECK(bad("1.e5").offset == 2);
    CHECK(bad(".5").offset == 0);
    CHECK(bad("+1").offset == 0);
    CHECK(bad("1e").offset == 2);
    CHECK(bad("1e+").offset == 3);
    CHECK(bad("0x10").offset == 1); // "0" then garbage
    CHECK(bad("NaN").offset == 0);
    CHECK(bad("-Infinity").offset == 1);
}

TEST_CASE("json: truncated documents fail at their end") {
    const std::string doc = R"({"a":[1,{"b":"c\u00e9"},true,null],"d":-1.5e3})";
    REQUIRE(ok(doc).members.size() == 2);
    for (size_t n = 0; n < doc.size(); ++n) {
        Value v;
        Error e;
        INFO("prefix: " << doc.substr(0, n));
        CHECK_FALSE(parse(std::string_view(doc).substr(0, n), &v, &e));
        CHECK(e.offset <= n);
    }
}

TEST_CASE("json: structural errors and trailing garbage") {
    CHECK(bad("").offset == 0);
    CHECK(bad("   ").offset == 3);
    CHECK(bad("{} {}").offset == 3);
    CHECK(bad("[1] x").offset == 4);
    CHECK(bad("1 2").offset == 2);
    CHECK(bad("[1,]").offset == 3);
    CHECK(bad("[,1]").offset == 1);
    CHECK(bad("[1 2]").offset == 3);
    CHECK(bad(R"({"a":1,})").offset == 7);
    CHECK(bad(R"({"a" 1})").offset == 5);
    CHECK(bad(R"({a:1})").offset == 1);
    CHECK(bad(R"({'a':1})").offset == 1);
    CHECK(bad(R"({"a":1])").offset == 6);
    CHECK(bad("[1}").offset == 2);
    CHECK(bad("tru").offset == 0);
    CHECK(bad("nul").offset == 0);
    CHECK(bad("True").offset == 0);
    CHECK(bad("[true false]").offset == 6);
    CHECK(bad("ï»¿{}").offset == 0); // no byte order mark (RFC 8259 §8.1)
    CHECK(bad(std::string_view("{}\0", 3)).offset == 2);
    CHECK(bad("[1]").offset == 3); // vertical tab is not JSON whitespace
}

TEST_CASE("json: nesting deeper than the limit is an error, not a deep recursion") {
    std::string deep = std::string(64, '[') + std::string(64, ']');
    CHECK(ok(deep).items.size() == 1);
    std::string deeper = std::string(65, '[') + std::string(65, ']');
    Error e = bad(deeper);
    CHECK(e.offset == 64);
    CHECK(e.message.find("64") != std::string::npos);
    std::string objects;
    for (int i = 0; i < 65; ++i)
        objects += "{\"a\":";
    objects += "1" + std::string(65, '}');
    CHECK(bad(objects).message.find("deeper") != std::string::npos);
    // A million open brackets: stops at the limit, never near the stack's end.
    CHECK(bad(std::string(1'000'000, '[')).offset == 64);
    // A limit asked for beyond the cap is capped.
    Limits huge;
    huge.max_depth = 1'000'000;
    huge.max_size = 4'000'000;
    CHECK(bad(std::string(1'000'000, '['), huge).offset == 1000);
    Limits two;
    two.max_depth = 2;
    CHECK(ok("[[1]]", two).items.size() == 1);
    CHECK(bad("[[[1]]]", two).offset == 2);
}

TEST_CASE("json: size and value-count limits") {
    Limits small;
    small.max_size = 10;
    CHECK(ok("[1,2,3,4]", small).items.size() == 4);  // 9 bytes
    CHECK(ok("[1,2,3,45]", small).items.size() == 4); // 10 bytes
    Error e = bad("[1,2,3,456]", small);
    CHECK(e.offset == 10);
    CHECK(e.message.find("larger") != std::string::npos);
    Limits few;
    few.max_values = 4;
    CHECK(ok("[1,2,3]", few).items.size() == 3); // the array and three numbers
    CHECK(bad("[1,2,3,4]", few).offset == 7);
    CHECK(bad(R"({"a":{"b":{"c":{"d":1}}}})", few).message.find("values") != std::string::npos);
}

TEST_CASE("json: Error::describe names the byte") {
    CHECK(bad("[1,]").describe() == "at byte 3: unexpected character");
}
