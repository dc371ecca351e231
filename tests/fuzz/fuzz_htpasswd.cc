// libFuzzer target for the htpasswd parser (modules/routing/htpasswd.h) and the password check
// on malformed hashes: a file an operator points basic_auth at may be anything. Checks that
// every entry the parser keeps has a supported hash, no ':' in its hash and a non-empty user,
// and that verifying an arbitrary password against arbitrary "hashes" never crashes. Slow
// hashes (bcrypt, SHA-crypt) are left out of the verification to keep runs fast.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modules/routing/htpasswd.h"

using namespace wraith::routing;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    Htpasswd file;
    std::string error;
    bool ok = parse_htpasswd(in, file, &error);
    CHECK(ok || !error.empty());
    if (!ok)
        return 0;
    for (const HtpasswdEntry& e : file.entries) {
        CHECK(!e.user.empty() && e.user.find(':') == std::string::npos);
        CHECK(supported_hash(e.hash) && e.hash.find(':') == std::string::npos);
        CHECK(file.find(e.user) != nullptr);
        if (e.hash.rfind("$apr1$", 0) == 0 || e.hash.rfind("{SHA}", 0) == 0 ||
            e.hash.rfind("$1$", 0) == 0)
            (void)verify_password(e.user, e.hash);
    }
    return 0;
}
