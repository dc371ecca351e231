#include "worker/transport.h"

#include <cerrno>
#include <ev.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wraith {

Transport::~Transport() {
    close_hook_.reset(); // the connection stops counting before the peer can see it close
    if (fd_ >= 0)
        ::close(fd_);
}

int Transport::wait_events(bool reading) const {
    return reading ? EV_READ : EV_WRITE;
}

ssize_t TcpTransport::read(char* buf, size_t len) {
    ssize_t n;
    do {
        n = ::recv(fd_, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t TcpTransport::write(const iovec* iov, int count, bool more) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = count;
    ssize_t n;
    do {
        n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t TcpTransport::send_file(int file_fd, off_t* offset, size_t len) {
    ssize_t n;
    do {
        n = ::sendfile(fd_, file_fd, offset, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

void TcpTransport::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

} // namespace wraith
