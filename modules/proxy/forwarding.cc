#include "modules/proxy/forwarding.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <unistd.h>

namespace wraith::proxy {

std::string parse_cidr(std::string_view text, Cidr& out) {
    std::string_view addr = text, len;
    size_t slash = text.find('/');
    if (slash != std::string_view::npos) {
        addr = text.substr(0, slash);
        len = text.substr(slash + 1);
    }
    std::string a(addr);
    if (a.size() >= 2 && a.front() == '[' && a.back() == ']')
        a = a.substr(1, a.size() - 2);
    out = Cidr{};
    int max = 0;
    if (inet_pton(AF_INET, a.c_str(), out.addr) == 1) {
        out.family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, a.c_str(), out.addr) == 1) {
        out.family = AF_INET6;
        max = 128;
    } else {
        return "expected an IP address or CIDR block like \"10.0.0.0/8\" or \"::1/128\", got \"" +
               std::string(text) + "\"";
    }
    out.prefix = max;
    if (slash != std::string_view::npos) {
        int n = -1;
        auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
        if (len.empty() || ec != std::errc{} || p != len.data() + len.size() || n < 0 || n > max)
            return "bad prefix length in \"" + std::string(text) + "\" (expected 0.." +
                   std::to_string(max) + ")";
        out.prefix = n;
    }
    // Host bits set ("10.1.2.3/8") are accepted and ignored: zero them.
    for (int bit = out.prefix; bit < max; ++bit)
        out.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    return {};
}

bool cidr_match(const std::vector<Cidr>& list, const sockaddr_storage& ss) {
    if (list.empty())
        return false;
    int family = 0;
    const uint8_t* bytes = nullptr;
    if (ss.ss_family == AF_INET) {
        family = AF_INET;
        bytes = reinterpret_cast<const uint8_t*>(
            &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr);
    } else if (ss.ss_family == AF_INET6) {
        const auto* a6 = &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            bytes = a6->s6_addr + 12;
        } else {
            family = AF_INET6;
            bytes = a6->s6_addr;
        }
    } else {
        return false;
    }
    for (const Cidr& c : list) {
        if (c.family != family)
            continue;
        int full = c.prefix / 8, rest = c.prefix % 8;
        if (std::memcmp(c.addr, bytes, static_cast<size_t>(full)) != 0)
            continue;
        if (rest) {
            uint8_t mask = static_cast<uint8_t>(0xffu << (8 - rest));
            if ((bytes[full] & mask) != c.addr[full])
                continue;
        }
        return true;
    }
    return false;
}

namespace {

// xoshiro256** per thread of each process, seeded lazily from getrandom on first use, which
// happens in a worker after fork (the master never proxies). No syscall per request.
struct Prng {
    uint64_t s[4]{};
    pid_t pid = 0;

    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    void seed() {
        pid = getpid();
        size_t got = 0;
        auto* p = reinterpret_cast<unsigned char*>(s);
        while (got < sizeof s) {
            ssize_t n = getrandom(p + got, sizeof s - got, 0);
            if (n <= 0)
                break;
            got += static_cast<size_t>(n);
        }
        if (got < sizeof s) { // should not happen; mix time and pid rather than fail
            uint64_t t =
                static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
            s[0] ^= t;
            s[1] ^= static_cast<uint64_t>(pid) * 0x9e3779b97f4a7c15ull;
            s[2] ^= ~t;
            s[3] ^= 0x2545f4914f6cdd1dull;
        }
        if (!(s[0] | s[1] | s[2] | s[3]))
            s[0] = 1;
    }
    uint64_t next() {
        const uint64_t result = rotl(s[1] * 5, 7) * 9;
        const uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
};

thread_local Prng prng;

} // namespace

bool valid_request_id(std::string_view id) {
    if (id.empty() || id.size() > 200)
        return false;
    for (char c : id)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    return true;
}

void generate_request_id(char out[32]) {
    if (prng.pid == 0)
        prng.seed();
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; ++half) {
        uint64_t v = prng.next();
        for (int i = 0; i < 16; ++i) {
            out[half * 16 + i] = hex[v & 15];
            v >>= 4;
        }
    }
}

std::string forwarded_node(std::string_view ip) {
    if (ip.find(':') != std::string_view::npos)
        return "\"[" + std::string(ip) + "]\"";
    if (is_token(ip))
        return std::string(ip);
    return forwarded_value(ip);
}

std::string forwarded_value(std::string_view v) {
    if (is_token(v))
        return std::string(v);
    std::string q = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\')
            q.push_back('\\');
        q.push_back(c);
    }
    q.push_back('"');
    return q;
}

} // namespace wraith::proxy
