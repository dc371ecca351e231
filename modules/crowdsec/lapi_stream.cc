#include "modules/crowdsec/lapi_stream.h"

#include <sys/socket.h>

#include <cmath>
#include <limits>

#include "common/json_reader.h"
#include "common/strings.h"

namespace wraith::crowdsec {

std::optional<int64_t> parse_go_duration(std::string_view s) {
    if (s.empty())
        return std::nullopt;
    bool negative = false;
    if (s.front() == '-' || s.front() == '+') {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    if (s == "0")
        return 0;
    if (s.empty())
        return std::nullopt;
    long double total_ns = 0;
    while (!s.empty()) {
        // A number: digits, optionally a fraction ("1.5", ".5", "1.").
        long double value = 0;
        size_t i = 0, digits = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            value = value * 10 + (s[i] - '0');
            ++i, ++digits;
        }
        if (i < s.size() && s[i] == '.') {
            ++i;
            long double scale = 0.1L;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
                value += (s[i] - '0') * scale;
                scale /= 10;
                ++i, ++digits;
            }
        }
        if (digits == 0)
            return std::nullopt;
        s.remove_prefix(i);
        // A unit.
        long double unit = 0;
        size_t len = 0;
        auto is = [&](std::string_view u) { return s.substr(0, u.size()) == u; };
        if (is("ns"))
            unit = 1, len = 2;
        else if (is("us"))
            unit = 1e3L, len = 2;
        else if (is("\xC2\xB5s") || is("\xCE\xBCs")) // µs (micro sign), μs (Greek mu)
            unit = 1e3L, len = 3;
        else if (is("ms"))
            unit = 1e6L, len = 2;
        else if (is("s"))
            unit = 1e9L, len = 1;
        else if (is("m"))
            unit = 60e9L, len = 1;
        else if (is("h"))
            unit = 3600e9L, len = 1;
        else
            return std::nullopt; // a missing or unknown unit
        s.remove_prefix(len);
        total_ns += value * unit;
        if (total_ns > 9.3e18L) // past int64 nanoseconds, as Go refuses
            return std::nullopt;
    }
    const auto ms = static_cast<int64_t>(total_ns / 1e6L);
    return negative ? -ms : ms;
}

namespace {

// scope Ip: "1.2.3.4" or "2001:db8::1"; Range: "1.2.3.0/24".
bool read_net(std::string_view scope, std::string_view value, Cidr& out) {
    if (iequals(scope, "ip")) {
        IpAddress ip = ip_of(value);
        if (ip.family == 0)
            return false;
        out.family = ip.family;
        std::memcpy(out.addr, ip.bytes, sizeof(out.addr));
        out.prefix = ip.family == AF_INET ? 32 : 128;
        return true;
    }
    if (iequals(scope, "range"))
        return value.find('/') != std::string_view::npos && parse_cidr(value, out).empty();
    return false;
}

bool read_id(const json::Value& v, uint64_t& id) {
    if (v.type != json::Type::number || !v.is_uint)
        return false;
    id = v.integer;
    return true;
}

} // namespace

bool parse_stream(std::string_view body, StreamAnswer& out, std::string& error,
                  const StreamLimits& limits) {
    out = {};
    json::Value doc;
    json::Error e;
    json::Limits jl;
    jl.max_size = limits.max_bytes;
    jl.max_depth = 8;
    // A decision is about 20 values (its members and their names).
    jl.max_values = std::min<size_t>(limits.max_decisions * 24 + 16, size_t{1} << 25);
    if (!json::parse(body, &doc, &e, jl)) {
        error = "the stream answer is not JSON: " + e.describe();
        return false;
    }
    if (!doc.is_object()) {
        error = "the stream answer is not a JSON object";
        return false;
    }
    for (const char* list : {"new", "deleted"}) {
        const json::Value* arr = doc.find(list);
        if (!arr || arr->type == json::Type::null)
            continue;
        if (!arr->is_array()) {
            error = std::string("the stream answer's \"") + list + "\" is not a list";
            return false;
        }
        const bool added = list[0] == 'n';
        for (const json::Value& d : arr->items) {
            uint64_t id = 0;
            if (!d.is_object() || !read_id(d["id"], id)) {
                ++out.ignored;
                continue;
            }
            if (!added) {
                out.deleted.push_back(id);
                continue;
            }
            StreamDecision sd;
            sd.id = id;
            std::optional<int64_t> dur = parse_go_duration(d["duration"].as_string());
            if (!dur || !read_net(d["scope"].as_string(), d["value"].as_string(), sd.net)) {
                ++out.ignored;
                continue;
            }
            sd.duration_ms = *dur;
            sd.remedy = remedy_of(d["type"].as_string());
            sd.origin = origin_of(d["origin"].as_string());
            out.added.push_back(sd);
        }
        if (out.added.size() + out.deleted.size() > limits.max_decisions) {
            error = "the stream answer has more than " + std::to_string(limits.max_decisions) +
                    " decisions";
            return false;
        }
    }
    return true;
}

} // namespace wraith::crowdsec
