#include "common/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

namespace wraith {

std::string parse_cidr(std::string_view text, Cidr& out, std::string* warning) {
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
    bool host_bits = false;
    for (int bit = out.prefix; bit < max; ++bit) {
        uint8_t mask = static_cast<uint8_t>(0x80u >> (bit % 8));
        host_bits = host_bits || (out.addr[bit / 8] & mask);
        out.addr[bit / 8] &= static_cast<uint8_t>(~mask);
    }
    if (host_bits && warning)
        *warning = "\"" + std::string(text) + "\" has host bits set; it means the network " +
                   cidr_text(out) + " (write that, or a /" + std::to_string(max) +
                   " for the one address)";
    return {};
}

std::string cidr_text(const Cidr& c) {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(c.family, c.addr, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(c.prefix);
}

IpAddress ip_of(const SocketAddress& ss) {
    IpAddress ip;
    if (ss.family() == AF_INET) {
        ip.family = AF_INET;
        std::memcpy(ip.bytes, &ss.v4.sin_addr.s_addr, 4);
    } else if (ss.family() == AF_INET6) {
        const auto* a6 = &ss.v6.sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            ip.family = AF_INET;
            std::memcpy(ip.bytes, a6->s6_addr + 12, 4);
        } else {
            ip.family = AF_INET6;
            std::memcpy(ip.bytes, a6->s6_addr, 16);
        }
    }
    return ip;
}

IpAddress ip_of(std::string_view text) {
    IpAddress ip;
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof buf)
        return ip;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = 0;
    if (inet_pton(AF_INET, buf, ip.bytes) == 1) {
        ip.family = AF_INET;
    } else if (inet_pton(AF_INET6, buf, ip.bytes) == 1) {
        ip.family = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(reinterpret_cast<const in6_addr*>(ip.bytes))) {
            std::memmove(ip.bytes, ip.bytes + 12, 4);
            std::memset(ip.bytes + 4, 0, 12);
            ip.family = AF_INET;
        }
    }
    return ip;
}

bool cidr_contains(const Cidr& c, const IpAddress& ip) {
    if (c.family != ip.family)
        return false;
    int full = c.prefix / 8, rest = c.prefix % 8;
    if (std::memcmp(c.addr, ip.bytes, static_cast<size_t>(full)) != 0)
        return false;
    if (rest) {
        uint8_t mask = static_cast<uint8_t>(0xffu << (8 - rest));
        if ((ip.bytes[full] & mask) != c.addr[full])
            return false;
    }
    return true;
}

bool cidr_match(const std::vector<Cidr>& list, const IpAddress& ip) {
    if (ip.family == 0)
        return false;
    for (const Cidr& c : list)
        if (cidr_contains(c, ip))
            return true;
    return false;
}

bool cidr_match(const std::vector<Cidr>& list, const SocketAddress& addr) {
    return !list.empty() && cidr_match(list, ip_of(addr));
}

} // namespace wraith
