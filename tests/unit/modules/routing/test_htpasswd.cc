// htpasswd files as Apache's htpasswd writes them (the hashes below were made by htpasswd
// -m, -B, -s and -5): each kind verifies its password and refuses others; apr1 is computed
// over OpenSSL's MD5 and must agree with Apache's; malformed lines are reported by number.
#include <catch2/catch.hpp>

#include "modules/routing/htpasswd.h"

using namespace wraith::routing;

TEST_CASE("htpasswd: every hash kind htpasswd writes verifies its password only") {
    CHECK(verify_password("pässword", "$apr1$0tcBM9iy$HwkdxOSS6dg9q1UEFWBOJ0"));
    CHECK_FALSE(verify_password("password", "$apr1$0tcBM9iy$HwkdxOSS6dg9q1UEFWBOJ0"));
    CHECK(
        verify_password("s3cret", "$2y$05$itF4G/qSYot9W3T73zObMONwgXdFDJ1Z7OAzRqwL8kSCEQH19rc7."));
    CHECK_FALSE(
        verify_password("s3cret ", "$2y$05$itF4G/qSYot9W3T73zObMONwgXdFDJ1Z7OAzRqwL8kSCEQH19rc7."));
    CHECK(verify_password("pw", "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM="));
    CHECK_FALSE(verify_password("pW", "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM="));
    CHECK(verify_password("pw", "$6$JEpl7uLcQjUtHAMe$zDy9Cl3RCqmFp7VIyf13Ib2X4Vj7v0CbPWLbUYmAsMG."
                                "B9bsaZULzRUggIMTjdruh1pLQLWzzKxtM/Unlp/nv1"));
    CHECK_FALSE(
        verify_password("", "$6$JEpl7uLcQjUtHAMe$zDy9Cl3RCqmFp7VIyf13Ib2X4Vj7v0CbPWLbUYmAsMG."
                            "B9bsaZULzRUggIMTjdruh1pLQLWzzKxtM/Unlp/nv1"));
    CHECK_FALSE(verify_password(std::string("pw\0x", 4),
                                "$6$JEpl7uLcQjUtHAMe$zDy9Cl3RCqmFp7VIyf13Ib2X4Vj7v0CbPWLbUYmAsMG."
                                "B9bsaZULzRUggIMTjdruh1pLQLWzzKxtM/Unlp/nv1"));
    CHECK_FALSE(verify_password("pw", "$2y$05$short"));
    CHECK_FALSE(verify_password("pw", "$apr1$"));
}

TEST_CASE("htpasswd: apr1 agrees with Apache's") {
    std::string h = "$apr1$0tcBM9iy$HwkdxOSS6dg9q1UEFWBOJ0";
    std::string salt = h.substr(6, h.find('$', 6) - 6);
    CHECK(apr1_crypt("pässword", salt) == h);
}

TEST_CASE("htpasswd: files parse line by line; the first of a name wins") {
    Htpasswd f;
    std::string error;
    REQUIRE(parse_htpasswd("# "
                           "comment\n\nalice:$2y$05$itF4G/"
                           "qSYot9W3T73zObMONwgXdFDJ1Z7OAzRqwL8kSCEQH19rc7.\r\nbob:$apr1$0tcBM9iy$"
                           "HwkdxOSS6dg9q1UEFWBOJ0\nalice:{SHA}x\n",
                           f, &error));
    REQUIRE(f.entries.size() == 2);
    CHECK(f.find("alice")->hash == "$2y$05$itF4G/qSYot9W3T73zObMONwgXdFDJ1Z7OAzRqwL8kSCEQH19rc7.");
    CHECK(f.find("carol") == nullptr);
    CHECK_FALSE(parse_htpasswd(
        "alice:$2y$05$itF4G/qSYot9W3T73zObMONwgXdFDJ1Z7OAzRqwL8kSCEQH19rc7.\nnocolon\n", f,
        &error));
    CHECK(error == "line 2: expected \"user:hash\"");
    CHECK_FALSE(parse_htpasswd("u:realm:abcdef\n", f, &error));
    CHECK(error.find("line 1: expected \"user:hash\" (a digest file") == 0);
    CHECK_FALSE(parse_htpasswd("u:plaintext\n", f, &error));
    CHECK(error.find("line 1: user \"u\": unsupported hash") == 0);
}
