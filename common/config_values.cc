// Small grammars inside config values: listen addresses, host names, route paths.
#include "common/config_values.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>

namespace wraith {

std::string in_quotes(std::string_view s); // config.cc

namespace config_values {

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool has_letter(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; });
}

std::string lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c + 32);
    return s;
}

// ---- [[listen]] addresses ------------------------------------------------------------------

std::string cannot_parse_address(std::string_view text) {
    return "cannot parse " + in_quotes(text) +
           " (expected \"[::]:80\", \"0.0.0.0:80\", \"127.0.0.1:8080\" or a port number)";
}

// Checks a port number; returns an error message or "".
std::string check_port(int64_t port) {
    if (port == 0)
        return "port 0 is not allowed (expected 1..65535)";
    if (port < 0 || port > 65535)
        return "port " + std::to_string(port) + " is out of range (expected 1..65535)";
    return {};
}

void set_ipv6(ListenConfig& l, const in6_addr& addr, uint16_t port) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = addr;
    sa.sin6_port = htons(port);
    std::memcpy(&l.addr, &sa, sizeof sa);
    l.addr_len = sizeof sa;
}

void set_ipv4(ListenConfig& l, const in_addr& addr, uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr = addr;
    sa.sin_port = htons(port);
    std::memcpy(&l.addr, &sa, sizeof sa);
    l.addr_len = sizeof sa;
}

// Fills l.addr from "[v6]:P", "v4:P", "*:P" or "P" (= "[::]:P"). Returns an error or "".
// Host names are refused: the master binds before any resolver could be trusted, and a name
// that resolves differently after a reload would silently move the listener.
std::string parse_listen_address(std::string_view text, ListenConfig& l) {
    std::string host;
    std::string_view port_text;
    bool ipv6 = false;
    if (all_digits(text)) {
        host = "::";
        port_text = text;
        ipv6 = true;
    } else if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return cannot_parse_address(text);
        host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
        ipv6 = true;
    } else {
        size_t colon = text.rfind(':');
        host = std::string(text.substr(0, colon == std::string_view::npos ? text.size() : colon));
        bool name_like =
            !host.empty() && has_letter(host) &&
            host.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == std::string::npos;
        if (name_like)
            return in_quotes(text) + " is a host name; listen on an IP address (\"127.0.0.1:80\", "
                                     "\"[::1]:80\") or a port number";
        if (colon == std::string_view::npos || host.find(':') != std::string::npos)
            return cannot_parse_address(text);
        port_text = text.substr(colon + 1);
    }
    if (!all_digits(port_text) || port_text.size() > 5)
        return cannot_parse_address(text);
    int64_t port = std::stoll(std::string(port_text));
    if (std::string err = check_port(port); !err.empty())
        return err;
    if (ipv6) {
        in6_addr a6{};
        if (inet_pton(AF_INET6, host.c_str(), &a6) != 1)
            return cannot_parse_address(text);
        set_ipv6(l, a6, static_cast<uint16_t>(port));
        return {};
    }
    in_addr a4{};
    if (host == "*")
        a4.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host.c_str(), &a4) != 1)
        return cannot_parse_address(text);
    set_ipv4(l, a4, static_cast<uint16_t>(port));
    return {};
}

uint16_t port_of(const ListenConfig& l) {
    if (l.addr.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&l.addr)->sin6_port);
    return ntohs(reinterpret_cast<const sockaddr_in*>(&l.addr)->sin_port);
}

bool same_endpoint(const ListenConfig& a, const ListenConfig& b) {
    if (a.addr.ss_family != b.addr.ss_family || port_of(a) != port_of(b))
        return false;
    if (a.addr.ss_family == AF_INET6)
        return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&a.addr)->sin6_addr,
                           &reinterpret_cast<const sockaddr_in6*>(&b.addr)->sin6_addr,
                           sizeof(in6_addr)) == 0;
    return reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b.addr)->sin_addr.s_addr;
}

// [::]:P without ipv6_only also accepts IPv4 on P (as ::ffff:a.b.c.d).
bool is_dual_stack(const ListenConfig& l) {
    return l.addr.ss_family == AF_INET6 && !l.ipv6_only &&
           IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&l.addr)->sin6_addr);
}

// ---- [[site]] hosts and [[site.route]] paths -----------------------------------------------

bool valid_host_name(std::string_view s) {
    if (s.size() > 2 && s.front() == '[' && s.back() == ']') {
        in6_addr a6{};
        return inet_pton(AF_INET6, std::string(s.substr(1, s.size() - 2)).c_str(), &a6) == 1;
    }
    if (s.empty() || s.size() > 253)
        return false;
    size_t label = 0;
    for (char c : s) {
        if (c == '.') {
            if (label == 0)
                return false; // empty label: "a..b" or ".a"
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return label > 0; // no trailing dot
}

std::string bad_regex(std::string_view source, const std::string& why) {
    return "bad regex " + in_quotes(source) + ": " + why;
}

// Parses one `hosts` entry; returns an error message or "".
std::string parse_host(const std::string& text, HostMatch& m) {
    if (!text.empty() && text.front() == '~') {
        m.kind = HostMatch::Kind::regex;
        m.text = text.substr(1);
        if (m.text.empty())
            return "empty regex in " + in_quotes(text);
        std::string why;
        m.regex = Regex::compile(m.text, Regex::caseless, &why);
        if (!m.regex)
            return bad_regex(m.text, why);
        return {};
    }
    std::string name = lower(text);
    const std::string expected = " is not a host name (expected \"example.com\", "
                                 "\"*.example.com\", \"~regex\" or \"*\")";
    if (name == "*") {
        // Any host: a wildcard whose suffix is empty, which every name ends with.
        m.kind = HostMatch::Kind::wildcard;
        m.text.clear();
        return {};
    }
    if (name.size() > 2 && name.compare(0, 2, "*.") == 0) {
        if (!valid_host_name(std::string_view(name).substr(2)))
            return in_quotes(text) + expected;
        m.kind = HostMatch::Kind::wildcard;
        m.text = name.substr(1); // ".example.com"
        return {};
    }
    if (!valid_host_name(name))
        return in_quotes(text) + expected;
    m.kind = HostMatch::Kind::exact;
    m.text = name;
    return {};
}

// Parses a route `path`; returns an error message or "".
std::string parse_route_path(const std::string& text, PathMatch& m) {
    if (!text.empty() && text.front() == '~') {
        m.kind = PathMatch::Kind::regex;
        m.text = text.substr(1);
        if (m.text.empty())
            return "empty regex in " + in_quotes(text);
        std::string why;
        m.regex = Regex::compile(m.text, Regex::none, &why);
        if (!m.regex)
            return bad_regex(m.text, why);
        return {};
    }
    bool exact = !text.empty() && text.front() == '=';
    std::string path = exact ? text.substr(1) : text;
    if (path.empty() || path.front() != '/')
        return "expected \"/prefix\", \"=/exact\" or \"~regex\", got " + in_quotes(text);
    m.kind = exact ? PathMatch::Kind::exact : PathMatch::Kind::prefix;
    m.text = path;
    return {};
}

} // namespace config_values
} // namespace wraith
