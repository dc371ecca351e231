// htpasswd files as Apache's `htpasswd` writes them: "user:hash" lines with bcrypt ($2y$,
// $2a$, $2b$), SHA-crypt ($5$, $6$), MD5-crypt ($1$), Apache's MD5 ($apr1$) or {SHA} hashes.
// The hashes are computed by libcrypt (crypt_r) and OpenSSL (MD5 for apr1, SHA-1); nothing is
// implemented here but apr1's rounds over OpenSSL's MD5. Parsing is for untrusted files too
// (tests/fuzz/fuzz_htpasswd.cc): it never throws and bounds what it keeps.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wraith::routing {

struct HtpasswdEntry {
    std::string user;
    std::string hash;
};

struct Htpasswd {
    std::vector<HtpasswdEntry> entries; // file order; the first of a name wins
    const HtpasswdEntry* find(std::string_view user) const;
};

// Parses `text`; false with "line N: why" in *error for the first bad line (an unsupported
// hash, a line without ':'). Blank lines and '#' comments are skipped.
bool parse_htpasswd(std::string_view text, Htpasswd& out, std::string* error);

// Whether `hash` is of a kind verify_password() computes.
bool supported_hash(std::string_view hash);

// Computes `password`'s hash with `hash`'s algorithm and salt and compares the two in constant
// time. False for a wrong password or a malformed hash.
bool verify_password(std::string_view password, std::string_view hash);

// Apache's $apr1$ (MD5-crypt with its own magic), for verify_password and the tests.
std::string apr1_crypt(std::string_view password, std::string_view salt);

} // namespace wraith::routing
