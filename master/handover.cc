#include "master/handover.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>

namespace wraith {

namespace {

// Keys hold spaces, dots and colons; '|', '=', '@' and ',' separate.
std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t at = s.find(sep, start);
        out.push_back(s.substr(start, at - start));
        if (at == std::string::npos)
            return out;
        start = at + 1;
    }
}

bool parse_int(const std::string& s, long min, long max, long* out) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end || errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

// An inherited descriptor must be an open socket.
bool is_socket(int fd) {
    struct stat st;
    return fcntl(fd, F_GETFD) >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

} // namespace

std::string Handover::encode() const {
    std::string out =
        "v1|parent=" + std::to_string(parent) + "|marker=" + std::to_string(marker) + "|secret=";
    char hex[3];
    for (uint8_t b : secret) {
        std::snprintf(hex, sizeof(hex), "%02x", b);
        out += hex;
    }
    out += "|used=";
    for (size_t i = 0; i < used_indices.size(); ++i)
        out += (i ? "," : "") + std::to_string(used_indices[i]);
    out += "|ready=" + std::to_string(ready_fd);
    for (const auto& [key, fd] : tcp)
        out += "|tcp=" + key + "@" + std::to_string(fd);
    for (const auto& [key, fds] : udp) {
        out += "|udp=" + key + "@";
        for (size_t i = 0; i < fds.size(); ++i)
            out += (i ? "," : "") + std::to_string(fds[i]);
    }
    for (const auto& [name, z] : zones)
        out += "|zone=" + name + "@" + std::to_string(z.fd) + "," + std::to_string(z.size) + "," +
               std::to_string(z.version);
    return out;
}

std::optional<Handover> Handover::from_env(std::string* error) {
    const char* env = std::getenv(kEnv);
    if (!env)
        return std::nullopt;
    std::string text = env;
    unsetenv(kEnv); // not for workers, nor for a later upgrade
    Handover h;
    std::vector<std::string> parts = split(text, '|');
    auto bad = [&](const std::string& what) {
        *error = std::string(kEnv) + ": " + what;
        return std::nullopt;
    };
    if (parts.empty() || parts[0] != "v1")
        return bad("unknown format (from another version of wraith?)");
    for (size_t i = 1; i < parts.size(); ++i) {
        const std::string& p = parts[i];
        size_t eq = p.find('=');
        if (eq == std::string::npos)
            return bad("malformed entry " + p);
        std::string name = p.substr(0, eq), value = p.substr(eq + 1);
        long v = 0;
        if (name == "parent") {
            if (!parse_int(value, 1, 1 << 30, &v))
                return bad("bad parent " + value);
            h.parent = static_cast<pid_t>(v);
        } else if (name == "marker") {
            if (!parse_int(value, 1, 255, &v))
                return bad("bad marker " + value);
            h.marker = static_cast<uint8_t>(v);
        } else if (name == "secret") {
            if (value.size() != 64)
                return bad("bad secret");
            for (size_t k = 0; k < 32; ++k)
                h.secret[k] =
                    static_cast<uint8_t>(std::strtoul(value.substr(2 * k, 2).c_str(), nullptr, 16));
        } else if (name == "ready") {
            if (!parse_int(value, -1, 1 << 20, &v))
                return bad("bad ready descriptor " + value);
            h.ready_fd = static_cast<int>(v);
        } else if (name == "used") {
            if (!value.empty())
                for (const std::string& n : split(value, ',')) {
                    if (!parse_int(n, 0, 254, &v))
                        return bad("bad index " + n);
                    h.used_indices.push_back(static_cast<uint8_t>(v));
                }
        } else if (name == "zone") {
            size_t at = value.rfind('@');
            std::vector<std::string> f = at == std::string::npos ? std::vector<std::string>{}
                                                                 : split(value.substr(at + 1), ',');
            long fd = 0, size = 0, version = 0;
            if (f.size() != 3 || !parse_int(f[0], 3, 1 << 20, &fd) ||
                !parse_int(f[1], 1, 1L << 40, &size) || !parse_int(f[2], 0, 1L << 31, &version))
                return bad("malformed zone entry " + value);
            h.zones[value.substr(0, at)] = ZoneManager::Inherited{
                static_cast<int>(fd), static_cast<size_t>(size), static_cast<uint32_t>(version)};
        } else if (name == "tcp" || name == "udp") {
            size_t at = value.rfind('@');
            if (at == std::string::npos)
                return bad("malformed socket entry " + value);
            std::string key = value.substr(0, at);
            std::vector<int> fds;
            for (const std::string& n : split(value.substr(at + 1), ',')) {
                if (!parse_int(n, 3, 1 << 20, &v) || !is_socket(static_cast<int>(v)))
                    return bad("descriptor " + n + " for " + key + " is not an open socket");
                fds.push_back(static_cast<int>(v));
            }
            if (name == "tcp") {
                if (fds.size() != 1)
                    return bad("one descriptor per TCP listener expected for " + key);
                h.tcp[key] = fds[0];
            } else {
                h.udp[key] = fds;
            }
        }
    }
    if (!h.parent || !h.marker)
        return bad("parent or marker missing");
    return h;
}

std::vector<int> Handover::all_fds() const {
    std::vector<int> out;
    for (const auto& [k, fd] : tcp)
        out.push_back(fd);
    for (const auto& [k, fds] : udp)
        out.insert(out.end(), fds.begin(), fds.end());
    for (const auto& [k, z] : zones)
        out.push_back(z.fd);
    return out;
}

} // namespace wraith
