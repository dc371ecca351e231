#include "common/connector.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wraith {

std::string address_text(const sockaddr_storage& a) {
    if (a.ss_family == AF_UNIX)
        return "unix:" + std::string(reinterpret_cast<const sockaddr_un&>(a).sun_path);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (a.ss_family == AF_INET6) {
        auto& s = reinterpret_cast<const sockaddr_in6&>(a);
        inet_ntop(AF_INET6, &s.sin6_addr, ip, sizeof(ip));
        return "[" + std::string(ip) + "]:" + std::to_string(ntohs(s.sin6_port));
    }
    auto& s = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &s.sin_addr, ip, sizeof(ip));
    return std::string(ip) + ":" + std::to_string(ntohs(s.sin_port));
}

Connector::Connector(struct ev_loop* loop) : loop_(loop) {
    for (Attempt& a : attempts_) {
        a.self = this;
        ev_init(&a.io, on_io);
        a.io.data = &a;
    }
    ev_init(&delay_, on_delay);
    delay_.data = this;
    ev_init(&timeout_, on_timeout);
    timeout_.data = this;
}

Connector::~Connector() {
    cancel();
}

void Connector::cancel() {
    for (Attempt& a : attempts_) {
        if (a.fd >= 0) {
            ev_io_stop(loop_, &a.io);
            ::close(a.fd);
            a.fd = -1;
        }
    }
    ev_timer_stop(loop_, &delay_);
    ev_timer_stop(loop_, &timeout_);
    running_ = false;
    done_ = nullptr;
}

void Connector::start(std::vector<sockaddr_storage> addrs, double timeout, Done done) {
    cancel();
    addrs_ = std::move(addrs);
    next_ = 0;
    done_ = std::move(done);
    last_error_.clear();
    running_ = true;
    ev_timer_set(&timeout_, timeout, 0.);
    ev_timer_start(loop_, &timeout_);
    next();
}

void Connector::next() {
    while (running_ && next_ < addrs_.size()) {
        Attempt* slot = attempts_[0].fd < 0   ? &attempts_[0]
                        : attempts_[1].fd < 0 ? &attempts_[1]
                                              : nullptr;
        if (!slot)
            return; // two in flight: wait for one of them (or the delay)
        const sockaddr_storage& addr = addrs_[next_++];
        slot->peer = address_text(addr);
        int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_error_ = "socket: " + std::string(std::strerror(errno));
            continue;
        }
        int one = 1;
        if (addr.ss_family != AF_UNIX)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        socklen_t len = addr.ss_family == AF_INET6  ? sizeof(sockaddr_in6)
                        : addr.ss_family == AF_UNIX ? sizeof(sockaddr_un)
                                                    : sizeof(sockaddr_in);
        if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0)
            return finish(fd, {});
        if (errno != EINPROGRESS) {
            last_error_ = "connect to " + slot->peer + ": " + std::strerror(errno);
            ::close(fd);
            continue; // failed at once: the next address now
        }
        slot->fd = fd;
        ev_io_set(&slot->io, fd, EV_WRITE);
        ev_io_start(loop_, &slot->io);
        if (next_ < addrs_.size()) {
            // The next address gets its turn if this one is slow (RFC 8305 §5).
            ev_timer_stop(loop_, &delay_);
            ev_timer_set(&delay_, kAttemptDelay, 0.);
            ev_timer_start(loop_, &delay_);
        }
        return;
    }
    if (running_ && attempts_[0].fd < 0 && attempts_[1].fd < 0)
        finish(-1, last_error_.empty() ? "no address to connect to" : last_error_);
}

void Connector::on_delay(struct ev_loop*, ev_timer* w, int) {
    static_cast<Connector*>(w->data)->next();
}

void Connector::on_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Connector*>(w->data);
    std::string why = "timed out";
    if (!self->last_error_.empty())
        why += " (" + self->last_error_ + ")";
    self->finish(-1, why);
}

void Connector::on_io(struct ev_loop*, ev_io* w, int) {
    auto* a = static_cast<Attempt*>(w->data);
    a->self->attempt_done(*a);
}

void Connector::attempt_done(Attempt& a) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    ev_io_stop(loop_, &a.io);
    int fd = a.fd;
    a.fd = -1;
    if (err == 0)
        return finish(fd, {});
    ::close(fd);
    last_error_ = "connect to " + a.peer + ": " + std::strerror(err);
    next(); // the next address at once (or finish when none is left and none in flight)
}

void Connector::finish(int fd, const std::string& error) {
    Done done = std::move(done_);
    cancel(); // closes the losers
    if (done)
        done(fd, error); // may destroy this connector's owner
}

} // namespace wraith
