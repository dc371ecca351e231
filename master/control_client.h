// The client side of the control socket: what `wraith reload|status|stop|upgrade` and NGINX's
// `-s SIGNAL` send to a running master (docs/decisions.md, "Control socket").
#pragma once

#include <string>

namespace wraith {

struct ControlAnswer {
    bool reached = false; // connected and sent the command
    std::string socket;   // the socket path tried
    std::string error;    // why not reached (or the config could not be read)
    std::string text;     // the master's answer
    // An answer whose first or any later line starts with "error" is a failure.
    bool failed() const;
};

// Sends `command` to the master of `config_path` (its server.control_socket) and reads the
// answer until the master closes, or only its first line when `first_line` (for a stop,
// which the master answers at once and closes when it has exited).
ControlAnswer control_request(const std::string& config_path, const std::string& command,
                              bool first_line = false);

// After a stop's answer ("stopping: pid N") and the socket's close, waits until that process
// is gone or a zombie: the kernel closes a dying process's sockets before it becomes a zombie,
// so the close alone does not yet mean "exited". Gives up after `timeout_ms`.
void wait_stopped(const ControlAnswer& answer, int timeout_ms = 5000);

// What a command prints on stderr when the master could not be reached.
void print_unreachable(const ControlAnswer& answer, const std::string& config_path);

// An uptime as `wraith status` and `wraith top` write it: 42s, 5m3s, 2h7m, 3d4h.
std::string format_uptime(double secs);

} // namespace wraith
