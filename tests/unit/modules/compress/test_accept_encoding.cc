// Accept-Encoding negotiation (modules/compress/accept_encoding.h): q-value grammar, ranking,
// exclusion, the "*" wildcard, identity, and malformed input.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "modules/compress/accept_encoding.h"

using namespace wraith;

namespace {

const std::vector<std::string> default_order{"zstd", "br", "gzip"};

std::string choose(std::string_view header, const std::vector<std::string>& order = default_order) {
    return std::string(choose_encoding(header, order));
}

} // namespace

TEST_CASE("qvalues parse per RFC 9110 grammar", "[compress][accept-encoding]") {
    CHECK(parse_qvalue("0") == 0);
    CHECK(parse_qvalue("1") == 1000);
    CHECK(parse_qvalue("0.") == 0);
    CHECK(parse_qvalue("1.") == 1000);
    CHECK(parse_qvalue("0.5") == 500);
    CHECK(parse_qvalue("0.05") == 50);
    CHECK(parse_qvalue("0.005") == 5);
    CHECK(parse_qvalue("0.123") == 123);
    CHECK(parse_qvalue("1.0") == 1000);
    CHECK(parse_qvalue("1.000") == 1000);
    CHECK(parse_qvalue("0.000") == 0);
    CHECK(parse_qvalue("") == -1);
    CHECK(parse_qvalue("1.001") == -1);
    CHECK(parse_qvalue("1.5") == -1);
    CHECK(parse_qvalue("2") == -1);
    CHECK(parse_qvalue("0.1234") == -1);
    CHECK(parse_qvalue(".5") == -1);
    CHECK(parse_qvalue("-0") == -1);
    CHECK(parse_qvalue("0,5") == -1);
    CHECK(parse_qvalue("0.5x") == -1);
    CHECK(parse_qvalue("00.5") == -1);
    CHECK(parse_qvalue("1e0") == -1);
    CHECK(parse_qvalue(" 0.5") == -1);
}

TEST_CASE("choose_encoding: plain lists follow server order", "[compress][accept-encoding]") {
    CHECK(choose("gzip") == "gzip");
    CHECK(choose("br") == "br");
    CHECK(choose("zstd") == "zstd");
    CHECK(choose("gzip, br") == "br");
    CHECK(choose("gzip, deflate, br, zstd") == "zstd");
    CHECK(choose("br, gzip") == "br");
    CHECK(choose("deflate") == "");
    CHECK(choose("identity") == "");
    CHECK(choose("compress, deflate") == "");
    CHECK(choose("") == "");
    CHECK(choose(" ") == "");
    CHECK(choose(",,, ,") == "");
    CHECK(choose("gzip", {"gzip", "br"}) == "gzip");
    CHECK(choose("gzip, br", {"gzip", "br"}) == "gzip"); // server order decides ties
    CHECK(choose("zstd", {"gzip", "br"}) == "");         // not offered by this server
    CHECK(choose("gzip", {}) == "");
}

TEST_CASE("choose_encoding: q-values rank codings", "[compress][accept-encoding]") {
    CHECK(choose("gzip;q=1, br;q=0.5") == "gzip");
    CHECK(choose("gzip;q=0.5, br;q=0.6") == "br");
    CHECK(choose("gzip;q=0.9, br;q=0.9, zstd;q=0.8") == "br");
    CHECK(choose("gzip, br;q=0.999") == "gzip");
    CHECK(choose("gzip;q=0.001") == "gzip");
    CHECK(choose("zstd;q=0.1, gzip;q=0.2, br;q=0.3") == "br");
    CHECK(choose("gzip;q=1.0, br;q=1.000") == "br");
}

TEST_CASE("choose_encoding: q=0 excludes", "[compress][accept-encoding]") {
    CHECK(choose("gzip;q=0") == "");
    CHECK(choose("gzip;q=0.0") == "");
    CHECK(choose("gzip;q=0.000") == "");
    CHECK(choose("br;q=0, gzip") == "gzip");
    CHECK(choose("zstd;q=0, br;q=0, gzip;q=0") == "");
    CHECK(choose("*, zstd;q=0") == "br");
    CHECK(choose("zstd;q=0, *") == "br");
    // Listed twice: the lower weight wins, so a stray exclusion is honoured.
    CHECK(choose("zstd, zstd;q=0") == "");
    CHECK(choose("zstd, gzip, zstd;q=0") == "gzip");
    CHECK(choose("zstd;q=0, zstd, br;q=0.1") == "br");
    CHECK(choose("gzip;q=0.2, gzip;q=0.8", {"gzip", "br"}) == "gzip");
}

TEST_CASE("choose_encoding: the * wildcard", "[compress][accept-encoding]") {
    CHECK(choose("*") == "zstd");
    CHECK(choose("*;q=0.5") == "zstd");
    CHECK(choose("*;q=0") == "");
    CHECK(choose("*;q=0, gzip") == "gzip");
    CHECK(choose("gzip;q=0.5, *;q=0.1") == "gzip");
    CHECK(choose("gzip;q=0.5, *;q=0.6") == "zstd");
    CHECK(choose("br;q=0.2, *;q=0.1, zstd;q=0") == "br");
    CHECK(choose("*, *;q=0") == ""); // lowest weight of a repeated entry
}

TEST_CASE("choose_encoding: identity weighs in when named", "[compress][accept-encoding]") {
    CHECK(choose("identity, gzip;q=0.5") == "");
    CHECK(choose("identity;q=0.5, gzip;q=0.5") == "gzip"); // tie goes to the coding
    CHECK(choose("identity;q=0.4, gzip;q=0.5") == "gzip");
    CHECK(choose("identity;q=0, gzip;q=0.1") == "gzip");
    CHECK(choose("*;q=0.6, gzip;q=0.5") == "zstd"); // zstd gets 0.6 from *, identity too
    CHECK(choose("*;q=0.6, zstd;q=0, br;q=0, gzip;q=0.5") == "");
    // Unnamed identity does not compete: a lone weighted coding is still wanted.
    CHECK(choose("gzip;q=0.8") == "gzip");
}

TEST_CASE("choose_encoding: case, whitespace and aliases", "[compress][accept-encoding]") {
    CHECK(choose("GZIP") == "gzip");
    CHECK(choose("Br") == "br");
    CHECK(choose("ZsTd") == "zstd");
    CHECK(choose("x-gzip") == "gzip");
    CHECK(choose("X-GZIP;q=0.5, br;q=0.4") == "gzip");
    CHECK(choose("gzip;Q=0.5, br;q=0.4") == "gzip");
    CHECK(choose("  gzip  ;  q=0.5  ,\tbr ; q = 0.4 ") == "gzip");
    CHECK(choose("gzip;q=0.5,br;q=0.6,zstd;q=0.7") == "zstd");
    CHECK(choose("gzip,") == "gzip");
    CHECK(choose(",gzip") == "gzip");
    CHECK(choose("gzip;;q=0.5") == "gzip");
    CHECK(choose("gzip;q=0.5;", {"gzip"}) == "gzip");
    CHECK(choose("gzipx") == "");
    CHECK(choose("gz") == "");
    CHECK(choose("brotli") == "");
}

TEST_CASE("choose_encoding: malformed elements are ignored", "[compress][accept-encoding]") {
    CHECK(choose("gzip;q=2") == "");
    CHECK(choose("gzip;q=abc") == "");
    CHECK(choose("gzip;q=") == "");
    CHECK(choose("gzip;q") == "");
    CHECK(choose("gzip;q=-1") == "");
    CHECK(choose("gzip;q=1.5, br") == "br");
    CHECK(choose("br;q=0.1x, gzip") == "gzip");
    CHECK(choose("g zip") == "");
    CHECK(choose("gzip br") == "");
    CHECK(choose("\"gzip\"") == "");
    CHECK(choose("gzip;=0.5") == "");
    CHECK(choose("br;q=0, br;q=junk") == ""); // the junk element cannot undo the exclusion
}

TEST_CASE("choose_encoding: parameters other than q", "[compress][accept-encoding]") {
    CHECK(choose("gzip;level=9") == "gzip");
    CHECK(choose("gzip;level=9;q=0") == "");
    CHECK(choose("gzip;q=0.3;foo=bar, br;q=0.2") == "gzip");
    CHECK(choose("gzip;foo=\"a,br\";q=0.5") == "gzip"); // comma inside a quoted string
    CHECK(choose("gzip;foo=\"a;q=0\"") == "gzip");
    CHECK(choose("gzip;foo=\"a\\\",b\"") == "gzip"); // escaped quote inside
}
