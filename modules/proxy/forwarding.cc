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

bool cidr_match(const std::vector<Cidr>& list, const SocketAddress& ss) {
    if (list.empty())
        return false;
    int family = 0;
    const uint8_t* bytes = nullptr;
    if (ss.family() == AF_INET) {
        family = AF_INET;
        bytes = reinterpret_cast<const uint8_t*>(&ss.v4.sin_addr.s_addr);
    } else if (ss.family() == AF_INET6) {
        const auto* a6 = &ss.v6.sin6_addr;
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

bool valid_request_id(std::string_view id) {
    if (id.empty() || id.size() > 200)
        return false;
    for (char c : id)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    return true;
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
