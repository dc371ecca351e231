// Parsers for the values inside a config that have their own small grammar: listen
// addresses, site host names and route paths. Used by the loader (config.cc); each returns
// an empty string on success or the message for the user.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <netinet/in.h>

#include "common/config.h"

namespace wraith::config_values {

bool all_digits(std::string_view s);
// "" if `port` is 1..65535, else the message.
std::string check_port(int64_t port);
void set_ipv6(ListenConfig& l, const in6_addr& addr, uint16_t port);
// "[::]:80", "127.0.0.1:8080", "*:80", "8080" -> l.addr / l.addr_len.
std::string parse_listen_address(std::string_view text, ListenConfig& l);
uint16_t port_of(const ListenConfig& l);
bool same_endpoint(const ListenConfig& a, const ListenConfig& b);
// [::]:P without ipv6_only also takes IPv4 port P.
bool is_dual_stack(const ListenConfig& l);
// "example.com", "*.example.com", "*", "~regex".
std::string parse_host(const std::string& text, HostMatch& m);
// "/prefix", "=/exact", "~regex".
std::string parse_route_path(const std::string& text, PathMatch& m);

} // namespace wraith::config_values
