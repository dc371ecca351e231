#include "master/control_client.h"

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
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

namespace {

// True while /proc/PID names a process that has not exited (not a zombie).
bool process_running(long pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line))
        return false;
    // "PID (comm) S ...": the state follows the last ')', as comm may hold any byte.
    size_t close_paren = line.rfind(')');
    if (close_paren == std::string::npos || close_paren + 2 >= line.size())
        return false;
    char state = line[close_paren + 2];
    return state != 'Z' && state != 'X' && state != 'x';
}

} // namespace

void wait_stopped(const ControlAnswer& answer, int timeout_ms) {
    static constexpr char kPrefix[] = "stopping: pid ";
    size_t at = answer.text.find(kPrefix);
    if (at == std::string::npos)
        return;
    long pid = std::strtol(answer.text.c_str() + at + sizeof(kPrefix) - 1, nullptr, 10);
    if (pid <= 0)
        return;
    const timespec step{0, 5 * 1000 * 1000};
    for (int waited = 0; waited < timeout_ms && process_running(pid); waited += 5)
        nanosleep(&step, nullptr);
}

void print_unreachable(const ControlAnswer& answer, const std::string& config_path) {
    if (answer.socket.empty())
        fprintf(stderr, "wraith: %s\n", answer.error.c_str());
    else
        fprintf(stderr,
                "wraith: cannot reach the master at %s: %s (is wraith running with -c %s?)\n",
                answer.socket.c_str(), answer.error.c_str(), config_path.c_str());
}

std::string format_uptime(double secs) {
    const long s = secs > 0 ? static_cast<long>(secs) : 0;
    char buf[64];
    if (s >= 86400)
        snprintf(buf, sizeof(buf), "%ldd%ldh", s / 86400, (s % 86400) / 3600);
    else if (s >= 3600)
        snprintf(buf, sizeof(buf), "%ldh%ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60)
        snprintf(buf, sizeof(buf), "%ldm%lds", s / 60, s % 60);
    else
        snprintf(buf, sizeof(buf), "%lds", s);
    return buf;
}

} // namespace wraith
