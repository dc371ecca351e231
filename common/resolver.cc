#include "common/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <climits>
#include <cstring>

namespace wraith {

struct Resolver::Query {
    Resolver* self;
    uint16_t port;
    Done done;
};

namespace {

struct AresLibrary {
    AresLibrary() { ares_library_init(ARES_LIB_INIT_ALL); }
    ~AresLibrary() { ares_library_cleanup(); }
};

bool literal(const std::string& host, uint16_t port, sockaddr_storage& out) {
    std::memset(&out, 0, sizeof(out));
    auto* a4 = reinterpret_cast<sockaddr_in*>(&out);
    if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        return true;
    }
    std::string h = host;
    if (h.size() > 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&out);
    if (inet_pton(AF_INET6, h.c_str(), &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        return true;
    }
    return false;
}

} // namespace

Resolver::Resolver(struct ev_loop* loop, const std::string& servers, int timeout_ms) : loop_(loop) {
    static AresLibrary library;
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_idle_init(&deliver_, on_deliver);
    deliver_.data = this;
    ares_options opts{};
    // Upstream names are taken as written: no resolv.conf search list (as NGINX's resolver).
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
    opts.flags = ARES_FLAG_NOSEARCH;
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = this;
    opts.timeout = timeout_ms;
    opts.tries = 2;
    if (int rc = ares_init_options(&channel_, &opts, mask); rc != ARES_SUCCESS) {
        init_error_ = std::string("c-ares: ") + ares_strerror(rc);
        channel_ = nullptr;
        return;
    }
    if (!servers.empty()) {
        if (int rc = ares_set_servers_ports_csv(channel_, servers.c_str()); rc != ARES_SUCCESS) {
            init_error_ = "c-ares: bad resolver list \"" + servers + "\": " + ares_strerror(rc);
            ares_destroy(channel_);
            channel_ = nullptr;
        }
    }
}

Resolver::~Resolver() {
    destroying_ = true;
    if (channel_)
        ares_destroy(channel_); // answers ARES_EDESTRUCTION to every query; we drop them
    for (auto& [fd, w] : watches_)
        ev_io_stop(loop_, &w->io);
    ev_timer_stop(loop_, &timer_);
    ev_idle_stop(loop_, &deliver_);
}

void Resolver::resolve(const std::string& host, uint16_t port, Done done) {
    Result r;
    sockaddr_storage addr;
    if (literal(host, port, addr)) {
        r.ok = true;
        r.addrs.push_back(addr);
        r.ttl = UINT32_MAX;
        ready_.emplace_back(std::move(done), std::move(r));
        ev_idle_start(loop_, &deliver_);
        return;
    }
    if (!channel_) {
        r.error = init_error_;
        r.failure = Failure::other;
        ready_.emplace_back(std::move(done), std::move(r));
        ev_idle_start(loop_, &deliver_);
        return;
    }
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = ARES_AI_NOSORT;
    auto* q = new Query{this, port, std::move(done)};
    ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, on_answer, q);
    rearm_timer();
}

std::vector<sockaddr_storage> Resolver::interleave(const std::vector<sockaddr_storage>& in) {
    std::vector<sockaddr_storage> v6, v4, out;
    for (const auto& a : in)
        (a.ss_family == AF_INET6 ? v6 : v4).push_back(a);
    for (size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
        if (i < v6.size())
            out.push_back(v6[i]);
        if (i < v4.size())
            out.push_back(v4[i]);
    }
    return out;
}

void Resolver::on_answer(void* arg, int status, int, struct ares_addrinfo* ai) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    Resolver* self = q->self;
    if (self->destroying_) {
        if (ai)
            ares_freeaddrinfo(ai);
        return;
    }
    Result r;
    if (status == ARES_SUCCESS && ai) {
        uint32_t ttl = UINT32_MAX;
        std::vector<sockaddr_storage> addrs;
        for (ares_addrinfo_node* n = ai->nodes; n; n = n->ai_next) {
            if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
                continue;
            sockaddr_storage a{};
            std::memcpy(&a, n->ai_addr, std::min<size_t>(n->ai_addrlen, sizeof(a)));
            if (a.ss_family == AF_INET)
                reinterpret_cast<sockaddr_in&>(a).sin_port = htons(q->port);
            else
                reinterpret_cast<sockaddr_in6&>(a).sin6_port = htons(q->port);
            addrs.push_back(a);
            ttl = std::min<uint32_t>(ttl, n->ai_ttl > 0 ? static_cast<uint32_t>(n->ai_ttl) : 0);
        }
        r.addrs = interleave(addrs);
        r.ok = !r.addrs.empty();
        r.ttl = ttl == UINT32_MAX ? 0 : ttl;
        if (!r.ok) {
            r.error = "no IPv4 or IPv6 address";
            r.failure = Failure::not_found;
        }
    } else {
        r.failure = status == ARES_ENOTFOUND || status == ARES_ENODATA ? Failure::not_found
                    : status == ARES_ETIMEOUT                          ? Failure::timeout
                                                                       : Failure::other;
        r.error = status == ARES_ENOTFOUND ? "not found (NXDOMAIN or no such record)"
                                           : ares_strerror(status);
    }
    if (ai)
        ares_freeaddrinfo(ai);
    self->deliver(std::move(q), std::move(r));
}

void Resolver::deliver(std::unique_ptr<Query> q, Result r) {
    ready_.emplace_back(std::move(q->done), std::move(r));
    ev_idle_start(loop_, &deliver_);
}

void Resolver::on_deliver(struct ev_loop* loop, ev_idle* w, int) {
    auto* self = static_cast<Resolver*>(w->data);
    ev_idle_stop(loop, w);
    std::vector<std::pair<Done, Result>> batch;
    batch.swap(self->ready_);
    for (auto& [done, result] : batch)
        done(result); // may destroy self: touch nothing after
}

void Resolver::on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Resolver*>(data);
    auto it = self->watches_.find(fd);
    if (!readable && !writable) {
        if (it != self->watches_.end()) {
            ev_io_stop(self->loop_, &it->second->io);
            self->watches_.erase(it);
        }
        return;
    }
    if (it == self->watches_.end()) {
        auto w = std::make_unique<Watch>();
        w->self = self;
        ev_init(&w->io, on_io);
        w->io.data = w.get();
        it = self->watches_.emplace(fd, std::move(w)).first;
    }
    ev_io& io = it->second->io;
    ev_io_stop(self->loop_, &io);
    ev_io_set(&io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(self->loop_, &io);
}

void Resolver::on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* watch = static_cast<Watch*>(w->data);
    Resolver* self = watch->self;
    ares_socket_t fd = w->fd;
    ares_process_fd(self->channel_, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    self->rearm_timer();
}

void Resolver::on_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Resolver*>(w->data);
    ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD); // timeouts
    self->rearm_timer();
}

void Resolver::rearm_timer() {
    ev_timer_stop(loop_, &timer_);
    if (!channel_)
        return;
    timeval tv;
    timeval* next = ares_timeout(channel_, nullptr, &tv);
    if (!next)
        return;
    ev_timer_set(&timer_, next->tv_sec + next->tv_usec / 1e6, 0.);
    ev_timer_start(loop_, &timer_);
}

} // namespace wraith
