#include "common/http_fetch.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "common/resolver.h"

namespace wraith {

bool HttpFetch::split_url(std::string_view url, std::string& host, uint16_t& port,
                          std::string& path, std::string& host_field) {
    constexpr std::string_view kScheme = "http://";
    if (url.substr(0, kScheme.size()) != kScheme)
        return false;
    std::string_view rest = url.substr(kScheme.size());
    size_t slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    std::string_view h = hostport, p;
    if (!hostport.empty() && hostport.front() == '[') {
        size_t close = hostport.find(']');
        if (close == std::string_view::npos)
            return false;
        h = hostport.substr(1, close - 1);
        std::string_view after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return false;
            p = after.substr(1);
        }
    } else if (size_t colon = hostport.rfind(':'); colon != std::string_view::npos) {
        h = hostport.substr(0, colon);
        p = hostport.substr(colon + 1);
    }
    if (h.empty())
        return false;
    port = 80;
    if (!p.empty()) {
        auto r = std::from_chars(p.data(), p.data() + p.size(), port);
        if (r.ec != std::errc{} || r.ptr != p.data() + p.size() || port == 0)
            return false;
    }
    host = std::string(h);
    host_field = std::string(hostport);
    return true;
}

HttpFetch::Result HttpFetch::parse_answer(std::string_view in, std::string_view from) {
    Result r;
    size_t end = in.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        r.problem = "no complete answer from " + std::string(from);
        return r;
    }
    if (in.size() < 12 || (in.substr(0, 9) != "HTTP/1.0 " && in.substr(0, 9) != "HTTP/1.1 ")) {
        r.problem = "not an HTTP answer from " + std::string(from);
        return r;
    }
    std::string_view code = in.substr(9, 3);
    auto c = std::from_chars(code.data(), code.data() + code.size(), r.status);
    if (c.ec != std::errc{} || c.ptr != code.data() + code.size()) {
        r.status = 0;
        r.problem = "not an HTTP answer from " + std::string(from);
        return r;
    }
    if (r.status != 200) {
        r.problem = std::string(from) + " answered " + std::string(code);
        return r;
    }
    r.body.assign(in.substr(end + 4));
    r.ok = true;
    return r;
}

HttpFetch::HttpFetch(struct ev_loop* loop, Resolver& resolver, const std::string& url,
                     Options options, Done done)
    : loop_(loop), options_(std::move(options)), done_(std::move(done)),
      self_(std::make_shared<HttpFetch*>(this)) {
    ev_init(&io_, on_io);
    io_.data = this;
    ev_timer_init(&timer_, on_timeout, options_.timeout.count() / 1000.0, 0.);
    timer_.data = this;
    ev_timer_start(loop_, &timer_);

    std::string host, path;
    uint16_t port = 0;
    if (!split_url(url, host, port, path, host_field_)) {
        // Reported from the loop, like every other outcome.
        host_field_ = url;
        state_ = State::done;
        ev_timer_stop(loop_, &timer_);
        ev_timer_set(&timer_, 0., 0.);
        ev_timer_start(loop_, &timer_);
        return;
    }
    request_ = (options_.body.empty() ? "GET " : "POST ") + path +
               " HTTP/1.0\r\nHost: " + host_field_ + "\r\nUser-Agent: wraith\r\n";
    for (const auto& [name, value] : options_.headers)
        request_ += name + ": " + value + "\r\n";
    if (!options_.body.empty())
        request_ += "Content-Type: " + options_.content_type +
                    "\r\nContent-Length: " + std::to_string(options_.body.size()) + "\r\n";
    request_ += "\r\n";
    request_ += options_.body;

    std::weak_ptr<HttpFetch*> weak = self_;
    resolver.resolve(host, port, [weak](const Resolver::Result& r) {
        if (auto alive = weak.lock())
            (*alive)->resolved(r.addrs, r.ok ? std::string() : r.error);
    });
}

HttpFetch::~HttpFetch() {
    ev_timer_stop(loop_, &timer_);
    close_socket();
}

void HttpFetch::close_socket() {
    ev_io_stop(loop_, &io_);
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = -1;
}

void HttpFetch::finish(Result r) {
    state_ = State::done;
    ev_timer_stop(loop_, &timer_);
    close_socket();
    self_.reset(); // a late resolver answer finds nobody
    Done done = std::move(done_);
    if (done)
        done(std::move(r)); // may destroy this: nothing after
}

void HttpFetch::fail(std::string problem) {
    Result r;
    r.problem = std::move(problem);
    finish(std::move(r));
}

void HttpFetch::on_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<HttpFetch*>(w->data);
    if (self->state_ == State::done) // the URL was not http://host/...
        return self->fail("not an http:// URL: " + self->host_field_);
    const char* stage = self->state_ == State::resolving    ? "resolving"
                        : self->state_ == State::connecting ? "connecting to"
                                                            : "waiting for";
    self->fail(std::string("timed out ") + stage + " " + self->host_field_);
}

void HttpFetch::resolved(std::vector<sockaddr_storage> addrs, const std::string& error) {
    if (state_ != State::resolving)
        return;
    if (!error.empty())
        return fail("cannot resolve " + host_field_ + ": " + error);
    addrs_ = std::move(addrs);
    state_ = State::connecting;
    connect_next();
}

void HttpFetch::connect_next() {
    close_socket();
    while (next_addr_ < addrs_.size()) {
        const sockaddr_storage& a = addrs_[next_addr_++];
        fd_ = ::socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd_ < 0)
            continue;
        socklen_t len = a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a), len) == 0 ||
            errno == EINPROGRESS) {
            ev_io_set(&io_, fd_, EV_WRITE);
            ev_io_start(loop_, &io_);
            return;
        }
        ::close(fd_);
        fd_ = -1;
    }
    fail("cannot connect to " + host_field_);
}

void HttpFetch::on_io(struct ev_loop*, ev_io* w, int) {
    auto* self = static_cast<HttpFetch*>(w->data);
    switch (self->state_) {
    case State::connecting:
        return self->connected();
    case State::sending:
        return self->send_some();
    case State::reading:
        return self->read_some();
    case State::resolving:
    case State::done:
        return;
    }
}

void HttpFetch::connected() {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        return connect_next(); // the next address, if any
    state_ = State::sending;
    send_some();
}

void HttpFetch::send_some() {
    while (sent_ < request_.size()) {
        ssize_t n = ::send(fd_, request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
        if (n > 0) {
            sent_ += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; // EV_WRITE is still armed
        return fail("cannot send the request to " + host_field_ + ": " + std::strerror(errno));
    }
    state_ = State::reading;
    ev_io_stop(loop_, &io_);
    ev_io_set(&io_, fd_, EV_READ);
    ev_io_start(loop_, &io_);
}

void HttpFetch::read_some() {
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n > 0) {
            if (answer_.size() + static_cast<size_t>(n) > options_.max_answer)
                return fail("the answer from " + host_field_ + " is larger than " +
                            std::to_string(options_.max_answer) + " bytes");
            answer_.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; // EOF (HTTP/1.0: the body ends with the connection) or an error
    }
    finish(parse_answer(answer_, host_field_));
}

} // namespace wraith
