// libFuzzer target for the PROXY protocol header parser (worker/proxy_protocol.h): the bytes an
// L4 balancer (or anyone who reaches a proxy_protocol listener) sends first. Checks what the
// connection stage relies on: a complete header never claims more bytes than it was given or
// than kMaxHeader, addresses are IPv4 or IPv6 when present, and a prefix of a header that
// parses is never called invalid.
#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/proxy_protocol.h"

using namespace wraith;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    proxy_protocol::Header h;
    const char* why = nullptr;
    proxy_protocol::Result r = proxy_protocol::parse(in, h, &why);
    CHECK(why != nullptr);
    if (r == proxy_protocol::Result::done) {
        CHECK(h.length > 0 && h.length <= size && h.length <= proxy_protocol::kMaxHeader);
        if (h.has_addresses) {
            CHECK(h.source.ss_family == AF_INET || h.source.ss_family == AF_INET6);
            CHECK(h.destination.ss_family == h.source.ss_family);
        }
        // Every prefix of a complete header waits for more.
        for (size_t n = 0; n < h.length; n += 1 + n / 8) {
            proxy_protocol::Header p;
            CHECK(proxy_protocol::parse(in.substr(0, n), p, &why) ==
                  proxy_protocol::Result::need_more);
        }
    }
    return 0;
}
