#include "worker/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace wraith::proxy_protocol {

namespace {

constexpr char kV2Signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                   '\n', 'Q',  'U',  'I',  'T',  '\n'};
constexpr size_t kV1Max = 107; // "PROXY TCP6 " + two full IPv6 addresses + ports + CRLF

Result bad(const char** why, const char* text) {
    *why = text;
    return Result::invalid;
}

// A decimal port without sign or leading zeros, 0..65535.
bool parse_port(std::string_view s, uint16_t& out) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0'))
        return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535)
        return false;
    out = static_cast<uint16_t>(v);
    return true;
}

bool parse_address(std::string_view s, int family, uint16_t port, sockaddr_storage& out) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (s.empty() || s.size() >= sizeof buf)
        return false;
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = 0;
    out = {};
    if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&out);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        return inet_pton(AF_INET, buf, &a->sin_addr) == 1;
    }
    auto* a = reinterpret_cast<sockaddr_in6*>(&out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    return inet_pton(AF_INET6, buf, &a->sin6_addr) == 1;
}

// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n" or "PROXY UNKNOWN ...\r\n".
Result parse_v1(std::string_view data, Header& out, const char** why) {
    size_t end = data.find("\r\n");
    if (end == std::string_view::npos) {
        if (data.size() >= kV1Max)
            return bad(why, "v1 line longer than 107 bytes");
        for (size_t i = 0; i < data.size(); ++i) {
            auto c = static_cast<unsigned char>(data[i]);
            // A CR may be the first half of the CRLF still to come.
            if ((c < 0x20 && !(c == '\r' && i + 1 == data.size())) || c > 0x7e)
                return bad(why, "v1 line with a control or non-ASCII byte");
        }
        return Result::need_more;
    }
    if (end + 2 > kV1Max)
        return bad(why, "v1 line longer than 107 bytes");
    // Printable ASCII only: inet_pton would stop at a NUL and accept what came before it.
    for (size_t i = 0; i < end; ++i)
        if (static_cast<unsigned char>(data[i]) < 0x20 ||
            static_cast<unsigned char>(data[i]) > 0x7e)
            return bad(why, "v1 line with a control or non-ASCII byte");
    std::string_view line = data.substr(6, end - 6); // after "PROXY "
    out.length = end + 2;
    std::string_view fields[5];
    size_t n = 0;
    while (!line.empty() && n < 5) {
        size_t sp = line.find(' ');
        fields[n++] = line.substr(0, sp);
        if (sp == std::string_view::npos) {
            line = {};
            break;
        }
        line.remove_prefix(sp + 1);
    }
    if (n >= 1 && fields[0] == "UNKNOWN") {
        out.has_addresses = false; // the rest of the line is to be ignored (spec §2.1)
        return Result::done;
    }
    if (n != 5 || !line.empty())
        return bad(why, "v1 line does not have five fields");
    int family = fields[0] == "TCP4" ? AF_INET : fields[0] == "TCP6" ? AF_INET6 : 0;
    if (!family)
        return bad(why, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
    uint16_t sport, dport;
    if (!parse_port(fields[3], sport) || !parse_port(fields[4], dport))
        return bad(why, "v1 port is not a number 0..65535");
    if (!parse_address(fields[1], family, sport, out.source) ||
        !parse_address(fields[2], family, dport, out.destination))
        return bad(why, "v1 address does not match its protocol");
    out.has_addresses = true;
    return Result::done;
}

Result parse_v2(std::string_view data, Header& out, const char** why) {
    if (data.size() < 16)
        return Result::need_more;
    auto byte = [&](size_t i) { return static_cast<unsigned char>(data[i]); };
    if ((byte(12) & 0xf0) != 0x20)
        return bad(why, "v2 version is not 2");
    unsigned command = byte(12) & 0x0f;
    if (command > 1)
        return bad(why, "v2 command is neither LOCAL nor PROXY");
    unsigned family = byte(13) >> 4, transport = byte(13) & 0x0f;
    size_t len = (static_cast<size_t>(byte(14)) << 8) | byte(15);
    if (16 + len > kMaxHeader)
        return bad(why, "v2 header longer than 4096 bytes");
    if (data.size() < 16 + len)
        return Result::need_more;
    out.length = 16 + len;
    out.has_addresses = false;
    // LOCAL: the balancer's own connection (health checks): the real peer stays.
    // UNSPEC, UDP and UNIX sources say nothing about a TCP client's address either.
    if (command == 0 || transport != 1 || (family != 1 && family != 2))
        return Result::done;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data()) + 16;
    if (family == 1) {
        if (len < 12)
            return bad(why, "v2 IPv4 address block shorter than 12 bytes");
        auto* s = reinterpret_cast<sockaddr_in*>(&out.source);
        auto* d = reinterpret_cast<sockaddr_in*>(&out.destination);
        *s = {};
        *d = {};
        s->sin_family = d->sin_family = AF_INET;
        std::memcpy(&s->sin_addr, p, 4);
        std::memcpy(&d->sin_addr, p + 4, 4);
        std::memcpy(&s->sin_port, p + 8, 2);
        std::memcpy(&d->sin_port, p + 10, 2);
    } else {
        if (len < 36)
            return bad(why, "v2 IPv6 address block shorter than 36 bytes");
        auto* s = reinterpret_cast<sockaddr_in6*>(&out.source);
        auto* d = reinterpret_cast<sockaddr_in6*>(&out.destination);
        *s = {};
        *d = {};
        s->sin6_family = d->sin6_family = AF_INET6;
        std::memcpy(&s->sin6_addr, p, 16);
        std::memcpy(&d->sin6_addr, p + 16, 16);
        std::memcpy(&s->sin6_port, p + 32, 2);
        std::memcpy(&d->sin6_port, p + 34, 2);
    }
    out.has_addresses = true;
    return Result::done;
}

} // namespace

Result parse(std::string_view data, Header& out, const char** why) {
    out = Header{};
    *why = "";
    // Decide the version from as many bytes as there are: a prefix of either signature
    // waits for more.
    static constexpr std::string_view v1 = "PROXY ";
    std::string_view v2(kV2Signature, sizeof kV2Signature);
    size_t n1 = std::min(data.size(), v1.size());
    size_t n2 = std::min(data.size(), v2.size());
    if (data.substr(0, n1) == v1.substr(0, n1)) {
        if (data.size() < v1.size())
            return Result::need_more;
        return parse_v1(data, out, why);
    }
    if (data.substr(0, n2) == v2.substr(0, n2)) {
        if (data.size() < v2.size())
            return Result::need_more;
        return parse_v2(data, out, why);
    }
    return bad(why, "the connection does not start with a PROXY protocol header");
}

} // namespace wraith::proxy_protocol
