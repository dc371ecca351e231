// Where the control socket of the master running with a given config lives. Reads only
// server.control_socket, so `wraith reload` still reaches a master whose config file now has
// errors (the master reports them).
#pragma once

#include <string>

namespace wraith {

bool control_socket_path(const std::string& config_path, std::string* path, std::string* error);

// The same for server.pid_file (NGINX's `-s SIGNAL` falls back to signalling that pid).
// `configured` non-empty (a -g pid override) wins over the file.
bool pid_file_path(const std::string& config_path, const std::string& configured,
                   std::string* path, std::string* error);

} // namespace wraith
