// [dns] (dns_config.h).
#include "modules/dns/dns_config.h"

#include <algorithm>
#include <arpa/inet.h>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/module.h"
#include "modules/dns/cache.h"
#include "modules/dns/message.h"

namespace wraith::dns {

const DnsConfig* dns_config(const Config& config) {
    return config.module_config<DnsConfig>("dns");
}

bool DnsConfig::blocks(const uint8_t* qname, size_t len) const {
    if (blocked.empty())
        return false;
    // The name and every parent domain: a listed domain blocks its subdomains too.
    size_t pos = 0;
    while (pos < len && qname[pos] != 0) {
        if (blocked.count(std::string(reinterpret_cast<const char*>(qname + pos), len - pos)))
            return true;
        pos += qname[pos] + 1;
    }
    return false;
}

std::string parse_upstream(std::string_view text, Upstream& out) {
    if (text.starts_with("tls://") || text.starts_with("https://") || text.starts_with("quic://"))
        return "encrypted upstreams (tls://, https://, quic://) are not supported yet; use a "
               "plain DNS server's address, e.g. \"127.0.0.1:53\"";
    std::string host;
    uint16_t port = 53;
    std::string_view port_text;
    if (text.starts_with("[")) {
        const size_t close = text.find(']');
        if (close == std::string_view::npos)
            return "expected an address like \"[::1]:53\"";
        host = std::string(text.substr(1, close - 1));
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':')
                return "expected an address like \"[::1]:53\"";
            port_text = rest.substr(1);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        const size_t colon = text.find(':');
        host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    } else {
        host = std::string(text);
    }
    if (!port_text.empty() || text.ends_with(":")) {
        if (port_text.empty() || port_text.size() > 5 ||
            port_text.find_first_not_of("0123456789") != std::string_view::npos ||
            std::stoul(std::string(port_text)) == 0 || std::stoul(std::string(port_text)) > 65535)
            return "expected a port 1..65535 after the address";
        port = static_cast<uint16_t>(std::stoul(std::string(port_text)));
    }
    out.address = SocketAddress();
    if (inet_pton(AF_INET, host.c_str(), &out.address.v4.sin_addr) == 1) {
        out.address.v4.sin_family = AF_INET;
        out.address.v4.sin_port = htons(port);
        out.text = host + ":" + std::to_string(port);
        return {};
    }
    if (inet_pton(AF_INET6, host.c_str(), &out.address.v6.sin6_addr) == 1) {
        out.address.v6.sin6_family = AF_INET6;
        out.address.v6.sin6_port = htons(port);
        out.text = "[" + host + "]:" + std::to_string(port);
        return {};
    }
    return "expected an IP address and port, like \"127.0.0.1:53\" or \"[::1]:53\" (upstreams "
           "are not resolved by name)";
}

std::string parse_block_list(std::string_view text, std::unordered_set<std::string>& out) {
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (size_t hash = line.find('#'); hash != std::string_view::npos)
            line = line.substr(0, hash);
        std::vector<std::string_view> words;
        while (!line.empty()) {
            const size_t start = line.find_first_not_of(" \t\r");
            if (start == std::string_view::npos)
                break;
            line = line.substr(start);
            const size_t end = line.find_first_of(" \t\r");
            words.push_back(line.substr(0, end));
            line = end == std::string_view::npos ? std::string_view{} : line.substr(end);
        }
        if (words.empty())
            continue;
        // Hosts format: an address, then names. A plain list: one name.
        in6_addr scratch;
        size_t first = 0;
        if (words.size() > 1 || inet_pton(AF_INET, std::string(words[0]).c_str(), &scratch) == 1 ||
            inet_pton(AF_INET6, std::string(words[0]).c_str(), &scratch) == 1) {
            if (inet_pton(AF_INET, std::string(words[0]).c_str(), &scratch) != 1 &&
                inet_pton(AF_INET6, std::string(words[0]).c_str(), &scratch) != 1)
                return "line " + std::to_string(line_no) +
                       ": expected \"ADDRESS NAME...\" (hosts format) or one name";
            first = 1;
        }
        for (size_t i = first; i < words.size(); ++i) {
            if (words[i] == "localhost" || words[i] == "localhost.localdomain" ||
                words[i] == "broadcasthost" || words[i] == "ip6-localhost" ||
                words[i] == "ip6-loopback" || words[i] == "local")
                continue; // the usual header of a hosts file, not something to block
            uint8_t wire[kMaxName];
            const size_t n = name_to_wire(words[i], wire);
            if (n == 0)
                return "line " + std::to_string(line_no) + ": \"" + std::string(words[i]) +
                       "\" is not a domain name";
            out.emplace(reinterpret_cast<const char*>(wire), n);
        }
    }
    return {};
}

namespace {

// A list of strings (or one string), each with its node for messages at the element.
std::vector<std::pair<std::string, const toml::node*>> string_items(TableReader& r,
                                                                    std::string_view key) {
    std::vector<std::pair<std::string, const toml::node*>> out;
    const toml::node* n = r.node(key);
    if (!n)
        return out;
    if (const auto* s = n->as_string()) {
        out.emplace_back(s->get(), n);
    } else if (const auto* a = n->as_array()) {
        for (const toml::node& e : *a) {
            if (const auto* s = e.as_string())
                out.emplace_back(s->get(), &e);
            else
                r.diag().error(&e, "dns." + std::string(key) + ": expected a string, got " +
                                       describe_value(e));
        }
    } else {
        r.error(key, "expected a list of strings, got " + describe_value(*n));
    }
    return out;
}

uint32_t seconds(TableReader& r, std::string_view key, uint32_t fallback) {
    const Duration d = r.duration(key, std::chrono::seconds(fallback));
    const int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    if (s < 0 || s > 7 * 86400) {
        r.error(key, "expected a duration from \"0s\" to \"7d\"");
        return fallback;
    }
    return static_cast<uint32_t>(s);
}

} // namespace

void load_dns_table(const toml::node& value, TableContext& ctx) {
    const toml::table* t = value.as_table();
    if (!t) {
        ctx.diag.error(&value, "dns: expected a table [dns], got " + describe_value(value));
        return;
    }
    const size_t errors = ctx.diag.count();
    TableReader r(*t, ctx.diag, "dns");
    auto dc = std::make_unique<DnsConfig>();
    if (r.has("upstreams")) {
        for (const auto& [text, node] : string_items(r, "upstreams")) {
            Upstream u;
            if (std::string err = parse_upstream(text, u); !err.empty())
                ctx.diag.error(node, "dns.upstreams: \"" + text + "\": " + err);
            else
                dc->upstreams.push_back(std::move(u));
        }
        if (dc->upstreams.empty() && ctx.diag.count() == errors)
            r.error("upstreams", "expected at least one DNS server, e.g. [\"127.0.0.1:53\"]");
        else if (dc->upstreams.size() > kMaxUpstreams)
            r.error("upstreams", "at most " + std::to_string(kMaxUpstreams) + " servers");
    } else {
        r.error("upstreams", "[dns] needs upstreams = [\"ADDRESS:PORT\", ...] (plain DNS servers)");
    }
    dc->cache_size = r.size("cache_size", dc->cache_size);
    if (dc->cache_size < Cache::kMinSize || dc->cache_size > (uint64_t(1) << 30))
        r.error("cache_size", "expected a size from \"64k\" to \"1g\"");
    dc->min_ttl = seconds(r, "min_ttl", dc->min_ttl);
    dc->max_ttl = seconds(r, "max_ttl", dc->max_ttl);
    dc->negative_ttl = seconds(r, "negative_ttl", dc->negative_ttl);
    dc->serve_stale = seconds(r, "serve_stale", dc->serve_stale);
    if (dc->min_ttl > dc->max_ttl)
        r.error("min_ttl", "is above max_ttl");
    read_positive(r, "timeout", dc->timeout);
    read_positive(r, "fail_timeout", dc->fail_timeout);
    for (const auto& [f, node] : string_items(r, "block_lists")) {
        const std::string path = resolve_path(ctx.config.dir, f);
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            ctx.diag.error(node, "dns.block_lists: cannot read \"" + path + "\"");
            continue;
        }
        std::stringstream ss;
        ss << in.rdbuf();
        if (std::string err = parse_block_list(ss.str(), dc->blocked); !err.empty())
            ctx.diag.error(node, "dns.block_lists: " + path + ": " + err);
    }
    {
        for (const auto& [a, node] : string_items(r, "block_address")) {
            char buf[16];
            if (inet_pton(AF_INET, a.c_str(), buf) == 1 && dc->block_v4.empty())
                dc->block_v4.assign(buf, 4);
            else if (inet_pton(AF_INET6, a.c_str(), buf) == 1 && dc->block_v6.empty())
                dc->block_v6.assign(buf, 16);
            else
                ctx.diag.error(node, "dns.block_address: \"" + a +
                                         "\": expected one IPv4 and/or one IPv6 address");
        }
    }
    r.finish();
    if (ctx.diag.count() == errors)
        ctx.config.modules["dns"] = std::move(dc);
}

} // namespace wraith::dns
