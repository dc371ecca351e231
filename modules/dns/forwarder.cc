// Forwarding to plain DNS upstreams (forwarder.h).
#include "modules/dns/forwarder.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

namespace wraith::dns {

namespace {

bool same_address(const SocketAddress& a, const sockaddr_storage& b) {
    if (a.family() != b.ss_family)
        return false;
    if (a.family() == AF_INET) {
        const auto& v = reinterpret_cast<const sockaddr_in&>(b);
        return a.v4.sin_port == v.sin_port && a.v4.sin_addr.s_addr == v.sin_addr.s_addr;
    }
    const auto& v = reinterpret_cast<const sockaddr_in6&>(b);
    return a.v6.sin6_port == v.sin6_port &&
           std::memcmp(&a.v6.sin6_addr, &v.sin6_addr, sizeof v.sin6_addr) == 0;
}

} // namespace

Forward::Forward(DnsWorker& worker, std::string_view query, const Message& question,
                 std::function<void()> done)
    : worker_(worker), query_(query), question_(question), done_(std::move(done)) {
    ev_init(&io_, on_io);
    io_.data = this;
    ev_init(&timer_, on_timer);
    timer_.data = this;
    // Healthy upstreams in their configured order, then those skipped for now (a last resort
    // is better than no answer).
    const int64_t now = monotonic_ms();
    const size_t n = std::min(worker.dns.upstreams.size(), kMaxUpstreams);
    for (int pass = 0; pass < 2; ++pass)
        for (size_t i = 0; i < n; ++i)
            if ((worker.down_until_ms[i] <= now) == (pass == 0))
                order_[count_++] = static_cast<uint8_t>(i);
}

Forward::~Forward() {
    close_socket();
}

std::string_view Forward::upstream() const {
    if (tries_ == 0)
        return {};
    return worker_.dns.upstreams[order_[tries_ - 1]].text;
}

void Forward::start() {
    next_upstream();
}

void Forward::cancel() {
    finished_ = true;
    close_socket();
}

void Forward::close_socket() {
    ev_io_stop(worker_.loop, &io_);
    ev_timer_stop(worker_.loop, &timer_);
    if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
}

void Forward::finish(bool ok) {
    close_socket();
    if (finished_)
        return;
    finished_ = true;
    ok_ = ok;
    if (done_)
        done_();
}

void Forward::next_upstream() {
    while (!finished_ && tries_ < count_) {
        ++tries_;
        tcp_ = false;
        if (try_udp())
            return;
    }
    if (!finished_)
        finish(false);
}

void Forward::fail_current(bool timed_out) {
    close_socket();
    const size_t index = order_[tries_ - 1];
    worker_.down_until_ms[index] = monotonic_ms() + worker_.dns.fail_timeout.count();
    worker_.cache.counters().upstream_failures.fetch_add(1, std::memory_order_relaxed);
    ErrorLog::limited(LogLevel::warn, "dns: upstream %s %s; trying the next one",
                      std::string(upstream()).c_str(),
                      timed_out ? "did not answer in time" : "refused the query");
    next_upstream();
}

bool Forward::try_udp() {
    const Upstream& up = worker_.dns.upstreams[order_[tries_ - 1]];
    fd_ = socket(up.address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    // A connected socket: the kernel delivers only the upstream's datagrams, and an ICMP
    // "port unreachable" comes back as ECONNREFUSED at once instead of a timeout.
    if (fd_ < 0 || connect(fd_, &up.address.sa, up.address.length()) != 0) {
        close_socket();
        worker_.down_until_ms[order_[tries_ - 1]] =
            monotonic_ms() + worker_.dns.fail_timeout.count();
        worker_.cache.counters().upstream_failures.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    sent_id_ = static_cast<uint16_t>(arc4random());
    // The query with our ID, from the receive buffer (free until an answer comes).
    char* buf = worker_.receive_buffer.data();
    std::memcpy(buf, query_.data(), query_.size());
    set_id(buf, sent_id_);
    if (send(fd_, buf, query_.size(), 0) != static_cast<ssize_t>(query_.size())) {
        close_socket();
        worker_.down_until_ms[order_[tries_ - 1]] =
            monotonic_ms() + worker_.dns.fail_timeout.count();
        worker_.cache.counters().upstream_failures.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    ev_io_set(&io_, fd_, EV_READ);
    ev_io_start(worker_.loop, &io_);
    ev_timer_set(&timer_, double(worker_.dns.timeout.count()) / 1000.0, 0.);
    ev_timer_start(worker_.loop, &timer_);
    return true;
}

bool Forward::try_tcp() {
    close_socket();
    tcp_ = true;
    const Upstream& up = worker_.dns.upstreams[order_[tries_ - 1]];
    fd_ = socket(up.address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        return false;
    if (connect(fd_, &up.address.sa, up.address.length()) != 0 && errno != EINPROGRESS)
        return false;
    sent_id_ = static_cast<uint16_t>(arc4random());
    out_.clear();
    out_ += static_cast<char>(query_.size() >> 8);
    out_ += static_cast<char>(query_.size() & 0xff);
    out_.append(query_);
    set_id(out_.data() + 2, sent_id_);
    written_ = 0;
    in_.clear();
    ev_io_set(&io_, fd_, EV_WRITE);
    ev_io_start(worker_.loop, &io_);
    ev_timer_set(&timer_, double(worker_.dns.timeout.count()) / 1000.0, 0.);
    ev_timer_start(worker_.loop, &timer_);
    return true;
}

void Forward::on_io(struct ev_loop*, ev_io* w, int events) {
    auto* f = static_cast<Forward*>(w->data);
    if (!f->tcp_)
        f->read_udp();
    else if (events & EV_WRITE)
        f->tcp_writable();
    else
        f->tcp_readable();
}

void Forward::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<Forward*>(w->data)->fail_current(true);
}

void Forward::read_udp() {
    char* buf = worker_.receive_buffer.data();
    while (fd_ >= 0 && !tcp_) {
        sockaddr_storage from{};
        socklen_t from_len = sizeof from;
        const ssize_t n = recvfrom(fd_, buf, worker_.receive_buffer.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            return fail_current(false); // ECONNREFUSED: nobody listens there
        }
        if (!same_address(worker_.dns.upstreams[order_[tries_ - 1]].address, from)) {
            worker_.cache.counters().dropped.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        if (consider(std::string_view(buf, static_cast<size_t>(n))))
            return;
    }
}

bool Forward::consider(std::string_view reply) {
    Message m;
    if (reply.size() < kHeaderSize || read_u16(reply.data()) != sent_id_ ||
        parse(reply, m) != ParseError::none || !same_question(question_, m)) {
        worker_.cache.counters().dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    if (m.truncated() && !tcp_) {
        // RFC 7766 §5: the full answer over TCP, from the same upstream.
        if (!try_tcp())
            fail_current(false);
        return true;
    }
    answer_.assign(reply);
    set_id(answer_.data(), question_.id);
    parsed_ = m;
    parsed_.id = question_.id;
    finish(true);
    return true;
}

void Forward::tcp_writable() {
    if (written_ == 0) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            return fail_current(false);
    }
    while (written_ < out_.size()) {
        const ssize_t n = send(fd_, out_.data() + written_, out_.size() - written_, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            return fail_current(false);
        }
        written_ += static_cast<size_t>(n);
    }
    ev_io_stop(worker_.loop, &io_);
    ev_io_set(&io_, fd_, EV_READ);
    ev_io_start(worker_.loop, &io_);
}

void Forward::tcp_readable() {
    char buf[16384];
    while (true) {
        const ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            return fail_current(false);
        }
        if (n == 0)
            return fail_current(false); // closed before a whole answer
        in_.append(buf, static_cast<size_t>(n));
        if (in_.size() >= 2) {
            const size_t want = 2 + read_u16(in_.data());
            if (in_.size() >= want) {
                // One answer per connection: anything else is a wrong answer, and the
                // connection is not reused.
                if (!consider(std::string_view(in_).substr(2, want - 2)))
                    fail_current(false);
                return;
            }
        }
    }
}

} // namespace wraith::dns
