// `[server] real_ip = { header = "X-Forwarded-For", trusted = ["10.0.0.0/8"] }`: the client's
// address behind trusted proxies, found before routing (the request-head phase), so routing
// conditions, allow/deny, geo, logs and the proxy's X-Forwarded-For all see the same address.
//
// Only a connection from a trusted address is believed. X-Forwarded-For (every field, in
// order) and Forwarded (RFC 7239 for=) are read right to left, skipping trusted addresses:
// the first untrusted one is the client (all trusted: the leftmost). Any other header
// (X-Real-IP, CF-Connecting-IP ...) holds one address.
#include <arpa/inet.h>

#include "common/cidr.h"
#include "common/config_reader.h"
#include "common/strings.h"
#include "modules/routing/routing.h"

namespace wraith::routing {

namespace {

enum class Format : uint8_t { xff, forwarded, single };

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// An X-Forwarded-For entry: "203.0.113.9", "2001:db8::1", "[2001:db8::1]:443", "1.2.3.4:80".
IpAddress parse_node(std::string_view s) {
    s = trim(s);
    if (!s.empty() && s.front() == '"' && s.size() >= 2 && s.back() == '"')
        s = s.substr(1, s.size() - 2);
    if (!s.empty() && s.front() == '[') {
        size_t close = s.find(']');
        return close == std::string_view::npos ? IpAddress{} : ip_of(s.substr(1, close - 1));
    }
    IpAddress ip = ip_of(s);
    if (ip.family)
        return ip;
    // "1.2.3.4:80": an IPv4 address with a port (one colon only).
    size_t colon = s.find(':');
    if (colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos)
        return ip_of(s.substr(0, colon));
    return {};
}

// The for= value of one Forwarded element ("for=192.0.2.43;proto=https").
std::string_view forwarded_for(std::string_view element) {
    while (!element.empty()) {
        size_t semi = element.find(';');
        std::string_view pair = trim(element.substr(0, semi));
        if (pair.size() > 4 && iequals(pair.substr(0, 4), "for="))
            return pair.substr(4);
        if (semi == std::string_view::npos)
            break;
        element.remove_prefix(semi + 1);
    }
    return {};
}

class RealIp final : public Filter {
public:
    RealIp(std::string header, Format format, std::vector<Cidr> trusted)
        : header_(std::move(header)), format_(format), trusted_(std::move(trusted)) {}

    unsigned phases() const override { return phase_bit(Phase::request_head); }

    AccessVerdict request_head(Request& req, ResponseWriter&) const override {
        if (!req.conn || !cidr_match(trusted_, req.conn->peer))
            return AccessVerdict::next; // only a trusted proxy's word counts
        IpAddress client{};
        if (format_ == Format::single) {
            if (const Header* h = req.headers.find(header_))
                client = parse_node(h->value);
        } else {
            client = walk(req);
        }
        if (client.family == 0)
            return AccessVerdict::next;
        char text[INET6_ADDRSTRLEN];
        inet_ntop(client.family, client.bytes, text, sizeof text);
        req.client_ip = req.arena->copy(text);
        return AccessVerdict::next;
    }

private:
    // Right to left over every entry of every field of the header, last field first.
    IpAddress walk(const Request& req) const {
        IpAddress last_trusted{};
        const Header* fields = req.headers.begin();
        for (size_t i = req.headers.size(); i-- > 0;) {
            if (fields[i].name != header_)
                continue;
            std::string_view v = fields[i].value;
            while (true) {
                size_t comma = v.rfind(',');
                std::string_view entry = comma == std::string_view::npos ? v : v.substr(comma + 1);
                if (format_ == Format::forwarded)
                    entry = forwarded_for(entry);
                IpAddress ip = parse_node(entry);
                if (ip.family == 0)
                    return last_trusted; // garbage or "unknown": nothing left of it counts
                if (!cidr_match(trusted_, ip))
                    return ip;
                last_trusted = ip;
                if (comma == std::string_view::npos)
                    break;
                v = v.substr(0, comma);
            }
        }
        return last_trusted;
    }

    std::string header_; // lower-case
    Format format_;
    std::vector<Cidr> trusted_;
};

} // namespace

std::unique_ptr<Filter> build_real_ip(TableReader& r, BuildContext& ctx) {
    const size_t errors = r.diag().count();
    if (ctx.scope != Scope::server) {
        r.node("header"); // one message for the misplaced table, not one per key
        r.node("trusted");
        r.diag().error(r.table_pos(), "real_ip: belongs in [server]: the client address is "
                                      "settled before a site or route is chosen");
        return nullptr;
    }
    std::string header = r.string("header", "X-Forwarded-For");
    if (!is_token(header))
        r.error("header", "\"" + header + "\" is not a header name");
    for (char& c : header)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    Format format = header == "x-forwarded-for" ? Format::xff
                    : header == "forwarded"     ? Format::forwarded
                                                : Format::single;
    std::vector<Cidr> trusted;
    if (auto list = r.strings("trusted")) {
        for (const std::string& text : *list) {
            Cidr c;
            std::string warning;
            if (std::string err = parse_cidr(text, c, &warning); !err.empty())
                r.error("trusted", err);
            else
                trusted.push_back(c);
            if (!warning.empty())
                r.diag().warn(r.pos("trusted"), "real_ip.trusted: " + warning);
        }
        if (list->empty())
            r.error("trusted", "needs at least one network: the proxies whose header is believed");
    } else if (!r.has("trusted")) {
        r.error("trusted", "required: the proxies whose header is believed, e.g. "
                           "[\"10.0.0.0/8\", \"::1/128\"]");
    }
    if (r.diag().count() != errors)
        return nullptr;
    return std::make_unique<RealIp>(std::move(header), format, std::move(trusted));
}

} // namespace wraith::routing
