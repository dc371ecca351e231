// Helpers for the proxy's forwarded-header handling (issue 5, "Headers"): trusted proxy CIDR
// lists, RFC 7239 Forwarded values, X-Request-ID validation and generation, and configurable
// set/add/remove header rules.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http.h"

namespace wraith::proxy {

// One CIDR block: "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128).
struct Cidr {
    int family = 0;     // AF_INET or AF_INET6
    uint8_t addr[16]{}; // network order; 4 bytes used for AF_INET
    int prefix = 0;     // 0..32 or 0..128
};

// "" on success, else a message naming the problem.
std::string parse_cidr(std::string_view text, Cidr& out);
// True when `addr` (IPv4, IPv6, or an IPv4-mapped IPv6 address) lies in any block of `list`.
bool cidr_match(const std::vector<Cidr>& list, const SocketAddress& addr);

// 1..200 chars of [A-Za-z0-9._-].
bool valid_request_id(std::string_view id);

// RFC 7239 §4 node / value: IPv6 addresses as "[v6]" (quoted), tokens as is, else quoted.
std::string forwarded_node(std::string_view ip);
std::string forwarded_value(std::string_view v);

struct HeaderRules {
    std::vector<std::pair<std::string, std::string>> set; // names lower-case
    std::vector<std::pair<std::string, std::string>> add;
    std::vector<std::string> remove;
    bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

} // namespace wraith::proxy
