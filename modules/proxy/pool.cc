#include "modules/proxy/pool.h"

#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

namespace wraith::proxy {

UpstreamPool& UpstreamPool::instance() {
    static UpstreamPool pool;
    return pool;
}

UpstreamPool::State& UpstreamPool::state(const UpstreamConfig& up) {
    State& s = states_[&up];
    if (s.current.size() != up.servers.size())
        s.current.assign(up.servers.size(), 0);
    return s;
}

size_t UpstreamPool::pick(const UpstreamConfig& up) {
    State& s = state(up);
    int total = 0;
    size_t best = 0;
    for (size_t i = 0; i < up.servers.size(); ++i) {
        s.current[i] += up.servers[i].weight;
        total += up.servers[i].weight;
        if (s.current[i] > s.current[best])
            best = i;
    }
    s.current[best] -= total;
    return best;
}

int UpstreamPool::take(const UpstreamConfig& up, size_t server) {
    State& s = state(up);
    // Newest first: the least likely to have been closed by the upstream's idle timer.
    for (auto it = s.idle.rbegin(); it != s.idle.rend(); ++it) {
        Idle* idle = it->get();
        if (idle->server != server)
            continue;
        int fd = idle->fd;
        idle->fd = -1;
        drop(idle);
        // A connection the upstream closed since the last loop iteration reads EOF here.
        char byte;
        ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return fd;
        close(fd);
        return take(up, server);
    }
    return -1;
}

void UpstreamPool::put(struct ev_loop* loop, const UpstreamConfig& up, size_t server, int fd) {
    if (up.keepalive == 0 || !loop) {
        close(fd);
        return;
    }
    State& s = state(up);
    while (s.idle.size() >= up.keepalive)
        drop(s.idle.front().get());
    auto idle = std::make_unique<Idle>();
    Idle* p = idle.get();
    p->pool = this;
    p->up = &up;
    p->server = server;
    p->fd = fd;
    p->loop = loop;
    s.idle.push_back(std::move(idle));
    p->self = std::prev(s.idle.end());
    ev_io_init(&p->io, on_idle_event, fd, EV_READ);
    p->io.data = p;
    ev_io_start(loop, &p->io);
    ev_timer_init(&p->timer, on_idle_timeout,
                  static_cast<double>(up.keepalive_timeout.count()) / 1000.0, 0.0);
    p->timer.data = p;
    ev_timer_start(loop, &p->timer);
    // Idle upstream connections must not keep a draining worker's loop alive.
    ev_unref(loop);
    ev_unref(loop);
}

void UpstreamPool::drop(Idle* idle) {
    ev_ref(idle->loop);
    ev_ref(idle->loop);
    ev_io_stop(idle->loop, &idle->io);
    ev_timer_stop(idle->loop, &idle->timer);
    if (idle->fd >= 0)
        close(idle->fd);
    State& s = states_[idle->up];
    s.idle.erase(idle->self); // deletes idle
}

void UpstreamPool::on_idle_event(struct ev_loop*, ev_io* w, int) {
    auto* idle = static_cast<Idle*>(w->data);
    idle->pool->drop(idle); // EOF, reset or an unsolicited response: unusable either way
}

void UpstreamPool::on_idle_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* idle = static_cast<Idle*>(w->data);
    idle->pool->drop(idle);
}

} // namespace wraith::proxy
