#include "master/control_path.h"

#include <toml++/toml.h>
#include <unistd.h>

#include "common/config.h"

namespace wraith {

bool control_socket_path(const std::string& config_path, std::string* path, std::string* error) {
    std::string dir = config_path.substr(0, config_path.rfind('/'));
    std::string configured;
    try {
        toml::table t = toml::parse_file(config_path);
        if (auto v = t["server"]["control_socket"].value<std::string>())
            configured = *v;
    } catch (const toml::parse_error& e) {
        // Fall back to the default; the master will report the syntax error on reload.
    } catch (const std::exception& e) {
        *error = "cannot read " + config_path + ": " + e.what();
        return false;
    }
    if (configured.empty()) {
        if (geteuid() == 0) {
            configured = "/run/wraith.sock";
        } else {
            configured = home_dir() + "/.wraith/wraith.sock";
        }
    }
    *path = resolve_path(dir, configured);
    return true;
}

} // namespace wraith
