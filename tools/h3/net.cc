#include "tools/h3/net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace h3 {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

bool parse_port(std::string_view text, uint16_t& port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) {
        return false;
    }
    port = static_cast<uint16_t>(value);
    return true;
}

std::string strip_brackets(std::string_view host) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    return std::string(host);
}

bool numeric_address(const std::string& text, uint16_t port, SocketAddress& out) {
    out = SocketAddress{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        out.len = sizeof(sockaddr_in);
        return true;
    }
    out = SocketAddress{};
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        out.len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

} // namespace

bool parse_url(std::string_view text, Url& url, std::string& error) {
    url = Url{};
    url.text = std::string(text);
    auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos) {
        error = "not a URL (expected https://HOST[:PORT]/PATH): " + url.text;
        return false;
    }
    if (!iequals(text.substr(0, scheme_end), "https")) {
        error = "only https URLs are supported: " + url.text;
        return false;
    }
    auto rest = text.substr(scheme_end + 3);
    auto fragment = rest.find('#');
    if (fragment != std::string_view::npos) {
        rest = rest.substr(0, fragment);
    }
    auto path_start = rest.find_first_of("/?");
    auto authority = rest.substr(0, path_start);
    if (path_start == std::string_view::npos) {
        url.path.assign(1, '/');
    } else if (rest[path_start] == '?') {
        url.path.assign(1, '/');
        url.path.append(rest.substr(path_start));
    } else {
        url.path = std::string(rest.substr(path_start));
    }
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        authority = authority.substr(at + 1);
    }
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) {
            error = "bad IPv6 literal in URL: " + url.text;
            return false;
        }
        host = authority.substr(0, close + 1);
        auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                error = "bad authority in URL: " + url.text;
                return false;
            }
            port = after.substr(1);
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || host == "[]") {
        error = "URL has no host: " + url.text;
        return false;
    }
    if (!port.empty() && !parse_port(port, url.port)) {
        error = "bad port in URL: " + url.text;
        return false;
    }
    url.host = strip_brackets(host);
    for (auto& c : url.host) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    bool ipv6 = url.host.find(':') != std::string::npos;
    url.authority.clear();
    if (ipv6) {
        url.authority += '[';
    }
    url.authority += url.host;
    if (ipv6) {
        url.authority += ']';
    }
    if (url.port != 443) {
        url.authority += ':';
        url.authority += std::to_string(url.port);
    }
    return true;
}

bool parse_resolve(std::string_view text, ResolveOverride& out, std::string& error) {
    // HOST:PORT:ADDR; HOST has no colon unless bracketed, ADDR may (IPv6), with or without
    // brackets.
    size_t host_end = 0;
    if (!text.empty() && text.front() == '[') {
        host_end = text.find(']');
        if (host_end == std::string_view::npos) {
            error = "bad --resolve (expected HOST:PORT:ADDR): " + std::string(text);
            return false;
        }
    }
    auto first = text.find(':', host_end);
    auto second = first == std::string_view::npos ? first : text.find(':', first + 1);
    if (second == std::string_view::npos) {
        error = "bad --resolve (expected HOST:PORT:ADDR): " + std::string(text);
        return false;
    }
    out.host = strip_brackets(text.substr(0, first));
    for (auto& c : out.host) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (out.host.empty() || !parse_port(text.substr(first + 1, second - first - 1), out.port)) {
        error = "bad --resolve (expected HOST:PORT:ADDR): " + std::string(text);
        return false;
    }
    out.address = strip_brackets(text.substr(second + 1));
    SocketAddress probe;
    if (!numeric_address(out.address, out.port, probe)) {
        error = "bad --resolve address (must be numeric): " + out.address;
        return false;
    }
    return true;
}

bool parse_numeric_address(std::string_view text, uint16_t port, SocketAddress& out) {
    return numeric_address(strip_brackets(text), port, out);
}

bool resolve(const std::string& host, uint16_t port, const std::vector<ResolveOverride>& overrides,
             SocketAddress& out, std::string& error) {
    for (const auto& o : overrides) {
        if (o.host == host && o.port == port) {
            return numeric_address(o.address, port, out);
        }
    }
    if (numeric_address(host, port, out)) {
        return true;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* result = nullptr;
    auto service = std::to_string(port);
    if (int rv = getaddrinfo(host.c_str(), service.c_str(), &hints, &result); rv != 0) {
        error = "cannot resolve " + host + ": " + gai_strerror(rv);
        return false;
    }
    out = SocketAddress{};
    std::memcpy(&out.storage, result->ai_addr, result->ai_addrlen);
    out.len = result->ai_addrlen;
    freeaddrinfo(result);
    return true;
}

std::string format_address(const sockaddr* addr) {
    char text[INET6_ADDRSTRLEN] = "?";
    if (addr->sa_family == AF_INET) {
        auto* v4 = reinterpret_cast<const sockaddr_in*>(addr);
        inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
        return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
    }
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    std::string out(1, '[');
    out.append(text).append("]:").append(std::to_string(ntohs(v6->sin6_port)));
    return out;
}

uint16_t address_port(const sockaddr* addr) {
    if (addr->sa_family == AF_INET) {
        return ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    }
    return ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
}

bool is_ip_literal(const std::string& host) {
    SocketAddress probe;
    return numeric_address(host, 1, probe);
}

bool parse_header_line(std::string_view line, std::string& name, std::string& value,
                       std::string& error) {
    // A leading ':' belongs to the name (pseudo-header overrides such as ":method").
    auto colon = line.empty() ? std::string_view::npos : line.find(':', line.front() == ':');
    if (colon == std::string_view::npos || colon == 0) {
        error = "bad header (expected 'Name: value'): " + std::string(line);
        return false;
    }
    name.assign(line.substr(0, colon));
    for (auto& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (c == ' ' || c == '\t') {
            error = "bad header name: " + std::string(line);
            return false;
        }
    }
    auto v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
    }
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
    }
    value.assign(v);
    return true;
}

bool parse_size(std::string_view text, uint64_t& out, bool allow_unit) {
    uint64_t multiplier = 1;
    if (allow_unit && !text.empty()) {
        switch (text.back()) {
        case 'k':
        case 'K':
            multiplier = 1024;
            break;
        case 'm':
        case 'M':
            multiplier = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            multiplier = 1024 * 1024 * 1024;
            break;
        default:
            break;
        }
        if (multiplier != 1) {
            text.remove_suffix(1);
        }
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        return false;
    }
    out = value * multiplier;
    return true;
}

bool parse_seconds(std::string_view text, double& out) {
    std::string copy(text);
    char* end = nullptr;
    out = std::strtod(copy.c_str(), &end);
    return !copy.empty() && end == copy.c_str() + copy.size() && out >= 0;
}

} // namespace h3
