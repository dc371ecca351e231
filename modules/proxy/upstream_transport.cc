#include "modules/proxy/upstream_transport.h"

#include <ev.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace wraith::proxy {

UpstreamTransport::~UpstreamTransport() {
    if (fd_ >= 0)
        ::close(fd_);
}

ssize_t UpstreamTransport::read(char* buf, size_t len) {
    ssize_t n;
    do {
        n = ::recv(fd_, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t UpstreamTransport::write(const char* data, size_t len) {
    ssize_t n;
    do {
        n = ::send(fd_, data, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

int UpstreamTransport::wait_events(bool reading) const {
    return reading ? EV_READ : EV_WRITE;
}

void UpstreamTransport::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

} // namespace wraith::proxy
