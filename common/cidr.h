// IP networks in config values ("10.0.0.0/8", "::1/128", a bare address) and the test of an
// address against a list of them: trusted proxies, allow/deny, match.client_ip.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace wraith {

// One CIDR block: "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128).
struct Cidr {
    int family = 0;     // AF_INET or AF_INET6
    uint8_t addr[16]{}; // network order; 4 bytes used for AF_INET
    int prefix = 0;     // 0..32 or 0..128
};

// "" on success, else a message naming the problem. Host bits set ("10.1.2.3/8") are cleared;
// with `warning`, it receives the message naming the network that was meant ("10.0.0.0/8").
std::string parse_cidr(std::string_view text, Cidr& out, std::string* warning = nullptr);
// "10.0.0.0/8" (the network, as parse_cidr left it).
std::string cidr_text(const Cidr& c);

// An address in a fixed-size form that is cheap to test against a list: IPv4-mapped IPv6
// addresses read as IPv4, as a dual-stack socket's IPv4 clients do.
struct IpAddress {
    int family = 0; // 0: none (a Unix socket, an unparsable text)
    uint8_t bytes[16]{};
};
IpAddress ip_of(const SocketAddress& addr);
// "203.0.113.9", "2001:db8::1", "[2001:db8::1]"; family 0 when it is none of them.
IpAddress ip_of(std::string_view text);

bool cidr_contains(const Cidr& c, const IpAddress& ip);
// True when `addr` lies in any block of `list`.
bool cidr_match(const std::vector<Cidr>& list, const SocketAddress& addr);
bool cidr_match(const std::vector<Cidr>& list, const IpAddress& ip);

} // namespace wraith
