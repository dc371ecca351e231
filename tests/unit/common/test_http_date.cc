#include <catch2/catch.hpp>

#include <string>

#include "common/http_date.h"

using wraith::format_http_date;
using wraith::http_date_size;
using wraith::parse_http_date;

namespace {

constexpr time_t kExample = 784111777; // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7)

std::string fmt(time_t t) {
    char buf[http_date_size];
    size_t n = format_http_date(t, buf);
    return std::string(buf, n);
}

} // namespace

TEST_CASE("format_http_date writes IMF-fixdate", "[http_date]") {
    CHECK(fmt(kExample) == "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(fmt(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK(fmt(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
    CHECK(fmt(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
    char buf[http_date_size];
    CHECK(format_http_date(kExample, buf) == 29);
    CHECK(buf[29] == '\0');
}

TEST_CASE("format_http_date refuses years past 9999", "[http_date]") {
    char buf[http_date_size];
    CHECK(format_http_date(253402300800, buf) == 0);
}

TEST_CASE("parse_http_date accepts the three RFC 9110 forms", "[http_date]") {
    CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == kExample);
    CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == kExample);
    CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == kExample);
    CHECK(parse_http_date("Sun Nov 16 08:49:37 1994") == kExample + 10 * 86400);
}

TEST_CASE("parse_http_date ignores surrounding whitespace", "[http_date]") {
    CHECK(parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\t") == kExample);
}

TEST_CASE("parse_http_date round-trips format_http_date", "[http_date]") {
    for (time_t t :
         {time_t(0), kExample, time_t(951782400), time_t(1700000000), time_t(4102444799)})
        CHECK(parse_http_date(fmt(t)) == t);
}

TEST_CASE("parse_http_date maps two-digit RFC 850 years within 50 years", "[http_date]") {
    // 1994 is far more than 50 years before any plausible "now"+50, and "00" is 2000.
    CHECK(parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT") == time_t(946684800));
}

TEST_CASE("parse_http_date rejects malformed dates", "[http_date]") {
    CHECK_FALSE(parse_http_date(""));
    CHECK_FALSE(parse_http_date("yesterday"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"));
    CHECK_FALSE(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 nov 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 94 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT extra"));
    CHECK_FALSE(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 31 Feb 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 29 Feb 1900 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:60:00 GMT"));
    CHECK_FALSE(parse_http_date("Sun, 00 Nov 1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sunday, 06-Nov-1994 08:49:37 GMT"));
    CHECK_FALSE(parse_http_date("Sun Nov 6 08:49:37 1994"));
    CHECK_FALSE(parse_http_date("Sun Nov  6 08:49:37 94"));
}

TEST_CASE("parse_http_date accepts a leap second", "[http_date]") {
    CHECK(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT") == time_t(1483228800));
}
