#include "master/control_client.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "master/control_path.h"

namespace wraith {

bool ControlAnswer::failed() const {
    return text.rfind("error", 0) == 0 || text.find("\nerror") != std::string::npos;
}

ControlAnswer control_request(const std::string& config_path, const std::string& command,
                              bool first_line) {
    ControlAnswer out;
    if (!control_socket_path(config_path, &out.socket, &out.error))
        return out;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (out.socket.size() >= sizeof(addr.sun_path)) {
        out.error = "control socket path too long: " + out.socket;
        return out;
    }
    std::memcpy(addr.sun_path, out.socket.c_str(), out.socket.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        out.error = std::strerror(errno);
        if (fd >= 0)
            close(fd);
        return out;
    }
    std::string line = command + "\n";
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        out.error = std::string("cannot send: ") + std::strerror(errno);
        close(fd);
        return out;
    }
    out.reached = true;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        out.text.append(buf, static_cast<size_t>(n));
        if (first_line && out.text.find('\n') != std::string::npos)
            break;
    }
    close(fd);
    return out;
}

} // namespace wraith
