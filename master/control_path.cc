#include "master/control_path.h"

#include <toml++/toml.h>
#include <unistd.h>

#include "common/config.h"

namespace wraith {

namespace {

// server.KEY of the file, else the default for root or for other users.
bool server_path(const std::string& config_path, const char* key, std::string configured,
                 const char* root_default, const char* user_default, std::string* path,
                 std::string* error) {
    std::string dir = config_path.substr(0, config_path.rfind('/'));
    try {
        toml::table t = toml::parse_file(config_path);
        if (auto v = t["server"][key].value<std::string>(); v && configured.empty())
            configured = *v;
    } catch (const toml::parse_error& e) {
        // Fall back to the default; the master will report the syntax error on reload.
    } catch (const std::exception& e) {
        *error = "cannot read " + config_path + ": " + e.what();
        return false;
    }
    if (configured.empty())
        configured = geteuid() == 0 ? std::string(root_default) : home_dir() + user_default;
    *path = resolve_path(dir, configured);
    return true;
}

} // namespace

bool control_socket_path(const std::string& config_path, std::string* path, std::string* error) {
    return server_path(config_path, "control_socket", "", "/run/wraith.sock",
                       "/.wraith/wraith.sock", path, error);
}

bool pid_file_path(const std::string& config_path, const std::string& configured,
                   std::string* path, std::string* error) {
    return server_path(config_path, "pid_file", configured, "/run/wraith.pid",
                       "/.wraith/wraith.pid", path, error);
}

} // namespace wraith
