// URLs, name resolution and socket addresses for the HTTP/3 client tools.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace h3 {

// An https URL split into the parts a request needs.
struct Url {
    std::string text;      // `text` is the URL as given on the command line.
    std::string host;      // `host` is the host name, without brackets for an IPv6 literal.
    uint16_t port = 443;   // `port` is the UDP port, 443 unless the URL names one.
    std::string path;      // `path` is path and query ("/" when the URL has none).
    std::string authority; // `authority` is host[:port] for :authority (port omitted if 443).
};

// Parses an https URL; anything else (http, missing host, bad port) is an error.
bool parse_url(std::string_view text, Url& url, std::string& error);

// One --resolve HOST:PORT:ADDR override (curl syntax; ADDR may be a bare or bracketed IPv6).
struct ResolveOverride {
    std::string host;    // `host` is the name being overridden.
    uint16_t port = 0;   // `port` is the port the override applies to.
    std::string address; // `address` is the numeric address to use instead of DNS.
};

bool parse_resolve(std::string_view text, ResolveOverride& out, std::string& error);

// An IPv4 or IPv6 socket address.
struct SocketAddress {
    sockaddr_storage storage{}; // `storage` holds a sockaddr_in or sockaddr_in6.
    socklen_t len = 0;          // `len` is the length of the address in `storage`.

    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
    int family() const { return storage.ss_family; }
};

// A numeric IPv4 or IPv6 address (brackets allowed) with `port`; false if `text` is none.
bool parse_numeric_address(std::string_view text, uint16_t port, SocketAddress& out);

// Resolves host:port, overrides first, then getaddrinfo (blocking: only used before the
// event loop runs). Takes the first address returned.
bool resolve(const std::string& host, uint16_t port, const std::vector<ResolveOverride>& overrides,
             SocketAddress& out, std::string& error);

// "1.2.3.4:443" or "[::1]:443".
std::string format_address(const sockaddr* addr);
uint16_t address_port(const sockaddr* addr);
bool is_ip_literal(const std::string& host);

// Parses a -H argument "Name: value": the name is lower-cased (HTTP/3 requires it, RFC 9114
// §4.2) and the value trimmed.
bool parse_header_line(std::string_view line, std::string& name, std::string& value,
                       std::string& error);

// Parses a non-negative decimal number (with an optional K/M/G binary suffix when
// `allow_unit`); false on anything else.
bool parse_size(std::string_view text, uint64_t& out, bool allow_unit);
// Parses seconds as a decimal ("1.5"); false on anything else.
bool parse_seconds(std::string_view text, double& out);

} // namespace h3
