// Helpers for the proxy's forwarded-header handling (issue 5, "Headers"): trusted proxy CIDR
// lists, RFC 7239 Forwarded values, X-Request-ID validation and generation, and configurable
// set/add/remove header rules.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cidr.h"
#include "common/http.h"
#include "common/variables.h"

namespace wraith::proxy {

// CIDR lists (Cidr, parse_cidr, cidr_match) live in common/cidr.h: routing and access rules
// use them too.
using wraith::Cidr;

// 1..200 chars of [A-Za-z0-9._-].
bool valid_request_id(std::string_view id);

// RFC 7239 §4 node / value: IPv6 addresses as "[v6]" (quoted), tokens as is, else quoted.
std::string forwarded_node(std::string_view ip);
std::string forwarded_value(std::string_view v);

// Values may hold variables ($client_ip, $http_NAME, $1 ...), expanded per request; an
// expansion that would carry CR, LF or NUL is left out (rule_value()).
struct HeaderRules {
    std::vector<std::pair<std::string, VarString>> set; // names lower-case
    std::vector<std::pair<std::string, VarString>> add;
    std::vector<std::string> remove;
    bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

// A rule's value for `req` (its arena), or nullopt when the expansion must not be sent.
std::optional<std::string_view> rule_value(const VarString& value, const Request& req);

} // namespace wraith::proxy
