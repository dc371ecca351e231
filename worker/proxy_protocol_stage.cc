#include "worker/proxy_protocol_stage.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"
#include "worker/proxy_protocol.h"
#include "worker/worker.h"

namespace wraith {

ProxyProtocolStage::ProxyProtocolStage(Worker& worker, int fd, const sockaddr_storage& peer,
                                       size_t listener)
    : worker_(worker), fd_(fd), peer_(peer), listener_(listener) {
    io_init(io_, on_io, this);
    ev_timer_init(&timer_, on_timeout, worker.config().http.header_timeout.count() / 1000.0, 0.);
    timer_.data = this;
}

ProxyProtocolStage::~ProxyProtocolStage() {
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
    if (fd_ >= 0)
        ::close(fd_);
}

void ProxyProtocolStage::start() {
    ev_timer_start(worker_.loop(), &timer_);
    step(); // TCP_DEFER_ACCEPT: the header has usually arrived with the accept
}

void ProxyProtocolStage::on_io(struct ev_loop*, ev_io* w, int) {
    static_cast<ProxyProtocolStage*>(w->data)->step();
}

void ProxyProtocolStage::on_timeout(struct ev_loop*, ev_timer* w, int) {
    static_cast<ProxyProtocolStage*>(w->data)->fail("no complete header in time");
}

void ProxyProtocolStage::step() {
    if (done_)
        return;
    // Peek, so that nothing after the header is taken from the socket: TLS and HTTP read it.
    char buf[proxy_protocol::kMaxHeader];
    ssize_t n;
    do {
        n = ::recv(fd_, buf, sizeof buf, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            io_set(worker_.loop(), io_, fd_, EV_READ);
            return;
        }
        return fail("read error");
    }
    if (n == 0)
        return fail("closed before the header");
    proxy_protocol::Header header;
    const char* why = "";
    switch (proxy_protocol::parse({buf, static_cast<size_t>(n)}, header, &why)) {
    case proxy_protocol::Result::need_more:
        if (static_cast<size_t>(n) == sizeof buf)
            return fail("header longer than 4096 bytes");
        io_set(worker_.loop(), io_, fd_, EV_READ);
        return;
    case proxy_protocol::Result::invalid:
        return fail(why);
    case proxy_protocol::Result::done:
        break;
    }
    // Take exactly the header (it is all in the socket buffer: we just peeked it).
    ssize_t got = ::recv(fd_, buf, header.length, 0);
    if (got != static_cast<ssize_t>(header.length))
        return fail("read error");
    if (header.has_addresses)
        peer_ = header.source;
    done_ = true;
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
    worker_.remove_connection(this);
    int fd = fd_;
    fd_ = -1;
    worker_.serve_accepted(fd, peer_, header.has_addresses ? &header.destination : nullptr,
                           listener_);
    worker_.defer(this);
}

void ProxyProtocolStage::fail(const char* why) {
    if (done_)
        return;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (peer_.ss_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer_)->sin_addr, ip, sizeof ip);
    else if (peer_.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer_)->sin6_addr, ip, sizeof ip);
    ErrorLog::limited(LogLevel::info, "PROXY protocol: %s, balancer: %s; closing", why, ip);
    finish();
}

void ProxyProtocolStage::finish() {
    done_ = true;
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    worker_.remove_connection(this);
    worker_.defer(this);
}

void ProxyProtocolStage::close_now() {
    if (!done_)
        finish();
}

void ProxyProtocolStage::run_deferred() {
    if (done_)
        delete this;
}

} // namespace wraith
