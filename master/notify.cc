#include "master/notify.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace wraith::notify {

namespace {

// sd_notify(3)'s protocol, written out so the binary does not need libsystemd and the five
// libraries it brings (2.6 MB of the OCI image): one datagram of "KEY=VALUE" lines to the
// Unix socket named by $NOTIFY_SOCKET, a path or "@abstract". NOTIFY_SOCKET stays in the
// environment: workers never call this, and a binary upgrade's new master must find it too.
void send(const std::string& text) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@'))
        return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    size_t len = std::strlen(path);
    if (len < 2 || len >= sizeof(addr.sun_path))
        return;
    std::memcpy(addr.sun_path, path, len);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t addr_len =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
    ::sendto(fd, text.data(), text.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
             addr_len);
    ::close(fd);
}

} // namespace

void ready(const std::string& status) {
    send("READY=1\nSTATUS=" + status);
}

void reloading() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ull +
                              static_cast<unsigned long long>(ts.tv_nsec) / 1000;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading");
}

void stopping() {
    send("STOPPING=1\nSTATUS=stopping");
}

void status(const std::string& text) {
    send("STATUS=" + text);
}

void main_pid(int pid, const std::string& text) {
    // Sent by the old main process, which systemd still listens to (NotifyAccess=main); after
    // it, the new master's own notifications count and its exit would end the service.
    send("MAINPID=" + std::to_string(pid) + "\nSTATUS=" + text);
}

} // namespace wraith::notify
