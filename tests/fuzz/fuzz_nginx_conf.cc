// libFuzzer target for `wraith convert`'s NGINX configuration reader and the converter behind
// it: hostile input must give an error with FILE:LINE or a wraith.toml that is valid TOML,
// never a crash, a hang or unbounded memory. Includes are not followed (no file access).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "convert/convert.h"
#include "convert/nginx_conf.h"

using namespace wraith::convert;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    NginxLimits limits;
    limits.max_token = 4096;
    limits.max_depth = 32;
    limits.max_directives = 5000;
    NginxConf conf = parse_nginx_conf(text, "/fuzz/nginx.conf", "/fuzz", limits, false);
    if (!conf.ok()) {
        for (const auto& e : conf.errors)
            CHECK(e.rfind("/fuzz/nginx.conf:", 0) == 0);
        return 0;
    }
    ConvertResult r = convert_nginx(conf, "/fuzz/nginx.conf");
    CHECK(r.ok);
    try {
        toml::table t = toml::parse(r.toml);
        (void)t;
    } catch (const toml::parse_error&) {
        abort(); // the converter wrote invalid TOML
    }
    return 0;
}
