#include "common/variables.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>

#include "common/config.h"
#include "common/http.h"
#include "common/regex.h"

namespace wraith {

namespace {

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string_view port_of(const SocketAddress& a, Arena& arena) {
    uint16_t port = 0;
    if (a.family() == AF_INET)
        port = ntohs(a.v4.sin_port);
    else if (a.family() == AF_INET6)
        port = ntohs(a.v6.sin6_port);
    else
        return {};
    char* out = static_cast<char*>(arena.alloc(6, 1));
    int n = std::snprintf(out, 6, "%u", port);
    return {out, static_cast<size_t>(n)};
}

// $arg_NAME: the first NAME=value of the query string, as sent (not decoded), as NGINX does.
std::string_view query_arg(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        size_t eq = pair.find('=');
        std::string_view key = pair.substr(0, eq);
        if (key == name)
            return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        if (amp == std::string_view::npos)
            break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

// $http_NAME: NAME with '_' for '-', matched against the lower-case field names.
std::string_view http_field(const Request& req, std::string_view suffix, Arena& arena) {
    char name[128];
    if (suffix.size() > sizeof name)
        return {};
    for (size_t i = 0; i < suffix.size(); ++i) {
        char c = suffix[i];
        name[i] = c == '_' ? '-' : (c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    }
    return req.headers.get({name, suffix.size()});
}

const char* protocol_text(int version) {
    switch (version) {
    case 10:
        return "HTTP/1.0";
    case 20:
        return "HTTP/2.0";
    case 30:
        return "HTTP/3.0";
    default:
        return "HTTP/1.1";
    }
}

template <int N> std::string_view capture(const Request& r, std::string_view, Arena&) {
    return r.captures && N < r.captures->count ? r.captures->group[N] : std::string_view{};
}

} // namespace

void add_log_variables(Variables& v); // common/log_variables.cc

Variables::Variables() {
    add("host", [](const Request& r, std::string_view, Arena&) { return r.host; });
    add("uri", [](const Request& r, std::string_view, Arena&) {
        return r.decoded_path.empty() ? r.path : r.decoded_path;
    });
    add("args", [](const Request& r, std::string_view, Arena&) { return r.query; });
    add("request_uri", [](const Request& r, std::string_view, Arena&) { return r.target; });
    add("scheme", [](const Request& r, std::string_view, Arena&) { return r.scheme; });
    add("method", [](const Request& r, std::string_view, Arena&) { return r.method; });
    add("client_ip", [](const Request& r, std::string_view, Arena&) { return client_ip_of(r); });
    add("remote_port", [](const Request& r, std::string_view, Arena& a) {
        return r.conn ? port_of(r.conn->peer, a) : std::string_view{};
    });
    add("server_port", [](const Request& r, std::string_view, Arena& a) {
        return r.conn ? port_of(r.conn->local, a) : std::string_view{};
    });
    add("protocol", [](const Request& r, std::string_view, Arena&) {
        return std::string_view(protocol_text(r.version));
    });
    add("request_id", [](const Request& r, std::string_view, Arena&) { return request_id_of(r); });
    add("route", [](const Request& r, std::string_view, Arena&) {
        return r.route ? std::string_view(r.route->match.text) : std::string_view{};
    });
    add(
        "arg_",
        [](const Request& r, std::string_view suffix, Arena&) {
            return query_arg(r.query, suffix);
        },
        true);
    add("http_", http_field, true);
    // $1..$9: groups of the route's path regex or of the last rewrite's pattern.
    add("1", capture<1>);
    add("2", capture<2>);
    add("3", capture<3>);
    add("4", capture<4>);
    add("5", capture<5>);
    add("6", capture<6>);
    add("7", capture<7>);
    add("8", capture<8>);
    add("9", capture<9>);
    add_log_variables(*this);
    add(
        "cookie_",
        [](const Request& r, std::string_view suffix, Arena&) {
            return find_cookie(r.headers.get("cookie"), suffix).value_or(std::string_view());
        },
        true);
}

Variables& Variables::instance() {
    static Variables vars;
    return vars;
}

void Variables::add(std::string_view name, VariableGetter getter, bool prefix) {
    for (const Entry& e : entries_)
        if (e.name == name) {
            std::fprintf(stderr, "wraith: variable $%.*s registered twice\n",
                         static_cast<int>(name.size()), name.data());
            std::abort();
        }
    entries_.push_back({std::string(name), getter, prefix});
}

VariableGetter Variables::find(std::string_view name, std::string_view* suffix) const {
    // A whole name first ($host), then the longest prefix ($http_host).
    for (const Entry& e : entries_)
        if (!e.prefix && e.name == name) {
            *suffix = {};
            return e.getter;
        }
    const Entry* best = nullptr;
    for (const Entry& e : entries_)
        if (e.prefix && name.size() > e.name.size() && name.starts_with(e.name) &&
            (!best || e.name.size() > best->name.size()))
            best = &e;
    if (!best)
        return nullptr;
    *suffix = name.substr(best->name.size());
    return best->getter;
}

bool VarString::compile(std::string_view text, std::string* error, size_t* at) {
    text_ = std::string(text);
    pool_.clear();
    pieces_.clear();
    vars_ = 0;
    highest_capture_ = 0;
    auto literal = [&](std::string_view s) {
        if (s.empty())
            return;
        if (!pieces_.empty() && !pieces_.back().getter &&
            pieces_.back().from + pieces_.back().len == pool_.size())
            pieces_.back().len += static_cast<uint32_t>(s.size());
        else
            pieces_.push_back(
                {nullptr, static_cast<uint32_t>(pool_.size()), static_cast<uint32_t>(s.size())});
        pool_ += s;
    };
    size_t i = 0;
    while (i < text.size()) {
        size_t dollar = text.find('$', i);
        if (dollar == std::string_view::npos) {
            literal(text.substr(i));
            break;
        }
        literal(text.substr(i, dollar - i));
        if (dollar + 1 < text.size() && text[dollar + 1] == '$') {
            literal("$");
            i = dollar + 2;
            continue;
        }
        std::string_view name;
        size_t end;
        if (dollar + 1 < text.size() && text[dollar + 1] == '{') {
            size_t close = text.find('}', dollar + 2);
            if (close == std::string_view::npos) {
                *error = "unclosed ${ in \"" + std::string(text) + "\"";
                if (at)
                    *at = dollar;
                return false;
            }
            name = text.substr(dollar + 2, close - dollar - 2);
            end = close + 1;
        } else if (dollar + 1 < text.size() && text[dollar + 1] >= '0' && text[dollar + 1] <= '9') {
            end = dollar + 2; // "$1x" is $1 then "x", as in NGINX
            name = text.substr(dollar + 1, 1);
        } else {
            end = dollar + 1;
            while (end < text.size() && name_char(text[end]))
                ++end;
            name = text.substr(dollar + 1, end - dollar - 1);
        }
        if (name.empty()) {
            *error = "a '$' without a variable name (write $$ for a literal '$')";
            if (at)
                *at = dollar;
            return false;
        }
        if (name.size() == 1 && name[0] >= '1' && name[0] <= '9')
            highest_capture_ = std::max(highest_capture_, name[0] - '0');
        std::string_view suffix;
        VariableGetter getter = Variables::instance().find(name, &suffix);
        if (!getter) {
            *error = "unknown variable $" + std::string(name);
            if (at)
                *at = dollar;
            return false;
        }
        pieces_.push_back(
            {getter, static_cast<uint32_t>(pool_.size()), static_cast<uint32_t>(suffix.size())});
        pool_ += suffix;
        ++vars_;
        i = end;
    }
    return true;
}

std::string_view VarString::expand(const Request& req, Arena& arena) const {
    if (vars_ == 0)
        return pool_;
    // Values are views; only the joined result is copied, once.
    std::string_view values[32];
    std::string_view* parts =
        pieces_.size() <= 32
            ? values
            : static_cast<std::string_view*>(arena.alloc(pieces_.size() * sizeof(std::string_view),
                                                         alignof(std::string_view)));
    size_t total = 0;
    for (size_t i = 0; i < pieces_.size(); ++i) {
        const Piece& p = pieces_[i];
        std::string_view piece{pool_.data() + p.from, p.len};
        parts[i] = p.getter ? p.getter(req, piece, arena) : piece;
        total += parts[i].size();
    }
    if (pieces_.size() == 1)
        return parts[0];
    char* out = static_cast<char*>(arena.alloc(total ? total : 1, 1));
    size_t at = 0;
    for (size_t i = 0; i < pieces_.size(); ++i) {
        if (!parts[i].empty())
            std::memcpy(out + at, parts[i].data(), parts[i].size());
        at += parts[i].size();
    }
    return {out, total};
}

} // namespace wraith
