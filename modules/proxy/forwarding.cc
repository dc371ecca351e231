#include "modules/proxy/forwarding.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <unistd.h>

#include "common/log.h"

namespace wraith::proxy {

std::optional<std::string_view> rule_value(const VarString& value, const Request& req) {
    if (value.constant())
        return std::string_view(value.constant_value());
    std::string_view v = value.expand(req, *req.arena);
    if (!is_field_value(v)) {
        ErrorLog::limited(LogLevel::warn,
                          "proxy: a header rule's value would hold CR, LF or NUL; "
                          "left out, client: %.*s",
                          static_cast<int>(client_ip_of(req).size()), client_ip_of(req).data());
        return std::nullopt;
    }
    return v;
}

bool valid_request_id(std::string_view id) {
    if (id.empty() || id.size() > 200)
        return false;
    for (char c : id)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    return true;
}

std::string forwarded_node(std::string_view ip) {
    if (ip.find(':') != std::string_view::npos)
        return "\"[" + std::string(ip) + "]\"";
    if (is_token(ip))
        return std::string(ip);
    return forwarded_value(ip);
}

std::string forwarded_value(std::string_view v) {
    if (is_token(v))
        return std::string(v);
    std::string q = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\')
            q.push_back('\\');
        q.push_back(c);
    }
    q.push_back('"');
    return q;
}

} // namespace wraith::proxy
