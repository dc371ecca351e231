#include "modules/proxy/pool.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "modules/proxy/health.h"
#include "modules/proxy/health_check.h"

namespace wraith::proxy {

UpstreamPool::State& UpstreamPool::state(const UpstreamConfig& up) {
    State& s = states_[&up];
    if (!s.balancer) {
        size_t n = up.servers.size();
        s.active.assign(n, 0);
        s.views.resize(n);
        s.tls_sessions.resize(up.tls ? n : 0);
        for (size_t i = 0; i < n; ++i) {
            s.health_keys.push_back(Health::key(up.name, up.servers[i].address));
            s.views[i].identity = up.servers[i].address;
            s.views[i].weight = static_cast<uint32_t>(up.servers[i].weight);
            s.views[i].backup = up.servers[i].backup;
            // Sticky cookies name a server by a hash of its address, not the address itself.
            char id[17];
            snprintf(id, sizeof id, "%016llx",
                     (unsigned long long)hash_key("wraith-sticky\n" + up.servers[i].address));
            s.sticky_ids.emplace_back(id);
        }
        Balancer::Method m = up.balance == "least_conn"   ? Balancer::Method::least_conn
                             : up.balance == "random_two" ? Balancer::Method::random_two
                             : up.balance == "hash"
                                 ? (up.hash_method == "maglev" ? Balancer::Method::hash_maglev
                                                               : Balancer::Method::hash_ring)
                                 : Balancer::Method::round_robin;
        s.balancer = Balancer::make(m, s.views);
    }
    return s;
}

std::string_view cookie_value(const Request& req, std::string_view name) {
    // Every Cookie field (HTTP/2 and HTTP/3 clients may split them, RFC 9113 §8.2.3).
    for (const Header& h : req.headers) {
        if (h.name != "cookie")
            continue;
        std::string_view cookies = h.value;
        while (!cookies.empty()) {
            size_t semi = cookies.find(';');
            std::string_view item = cookies.substr(0, semi);
            while (!item.empty() && item.front() == ' ')
                item.remove_prefix(1);
            if (item.size() > name.size() && item.substr(0, name.size()) == name &&
                item[name.size()] == '=')
                return item.substr(name.size() + 1);
            if (semi == std::string_view::npos)
                break;
            cookies.remove_prefix(semi + 1);
        }
    }
    return {};
}

namespace {

// The request's hash key (balance = "hash"): client address, target, a header or a cookie.
uint64_t request_key(const UpstreamConfig& up, const Request& req) {
    std::string_view key;
    const std::string& k = up.hash_key;
    if (k == "client_ip") {
        key = client_ip_of(req);
    } else if (k == "uri") {
        key = req.target;
    } else if (k.rfind("header:", 0) == 0) {
        std::string name = k.substr(7);
        for (char& c : name)
            c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        key = req.headers.get(name);
    } else if (k.rfind("cookie:", 0) == 0) {
        key = cookie_value(req, std::string_view(k).substr(7));
    }
    return hash_key(key);
}

} // namespace

int UpstreamPool::pick(const UpstreamConfig& up, const Request& req,
                       const std::vector<bool>& tried) {
    State& s = state(up);
    const uint64_t now = monotonic_ms();
    Health& health = health_;
    const bool checked = up.health_check.enabled;
    const uint64_t stale = checked ? active_stale_ms(up.health_check) : 0;
    for (size_t i = 0; i < up.servers.size(); ++i) {
        const UpstreamServer& server = up.servers[i];
        ServerView& v = s.views[i];
        v.active = s.active[i];
        v.usable = !server.down && (server.max_conns == 0 || s.active[i] < server.max_conns) &&
                   health.available(s.health_keys[i], now) &&
                   (!checked || health.active_up(s.health_keys[i], now, stale));
    }
    if (!up.sticky.cookie.empty()) {
        // The server the client's cookie names, while it is usable and not tried already.
        std::string_view want = cookie_value(req, up.sticky.cookie);
        for (size_t i = 0; !want.empty() && i < s.sticky_ids.size(); ++i)
            if (s.sticky_ids[i] == want && s.views[i].usable && !(i < tried.size() && tried[i]))
                return static_cast<int>(i);
    }
    uint64_t key = up.balance == "hash" ? request_key(up, req) : 0;
    return s.balancer->pick(s.views, key, tried);
}

std::string_view UpstreamPool::sticky_id(const UpstreamConfig& up, size_t server) {
    return state(up).sticky_ids[server];
}

void UpstreamPool::acquire(const UpstreamConfig& up, size_t server) {
    ++state(up).active[server];
}

void UpstreamPool::release(const UpstreamConfig& up, size_t server) {
    State& s = state(up);
    if (s.active[server])
        --s.active[server];
}

void UpstreamPool::count_request(const UpstreamConfig& up) {
    State& s = state(up);
    uint64_t now = monotonic_ms();
    if (now - s.budget_window_ms > 10000) {
        s.budget_window_ms = now;
        s.budget_requests = 0;
        s.budget_retries = 0;
    }
    ++s.budget_requests;
}

bool UpstreamPool::take_retry(const UpstreamConfig& up) {
    State& s = state(up);
    uint64_t allowed = uint64_t(s.budget_requests) * up.retry_budget / 100 + 3;
    if (s.budget_retries >= allowed)
        return false;
    ++s.budget_retries;
    return true;
}

void UpstreamPool::note_failure(const UpstreamConfig& up, size_t server, const std::string& why) {
    if (up.servers.size() == 1)
        return; // nothing else to send requests to
    uint64_t key = Health::key(up.name, up.servers[server].address);
    Health& health = health_;
    if (health.failure(key, up.max_fails, static_cast<uint64_t>(up.fail_timeout.count()),
                       monotonic_ms()))
        ErrorLog::limited(LogLevel::warn,
                          "proxy: upstream \"%s\" server %s taken out of service for %llu ms "
                          "after %u failure(s): %s",
                          up.name.c_str(), up.servers[server].address.c_str(),
                          (unsigned long long)health.ejected_for(key, monotonic_ms()), up.max_fails,
                          why.c_str());
}

int UpstreamPool::retry_server(const UpstreamConfig& up, const Request& req, size_t server,
                               std::vector<bool>& tried, uint32_t* tries, const std::string& why) {
    Method m = req.method_id;
    bool idempotent = m == Method::get || m == Method::head || m == Method::options ||
                      m == Method::put || m == Method::del || m == Method::trace;
    if (*tries >= up.retries || (!idempotent && !up.retry_non_idempotent))
        return -1;
    tried[server] = true;
    int next = pick(up, req, tried);
    if (next < 0 || !take_retry(up))
        return -1;
    ErrorLog::limited(LogLevel::info, "proxy: %s; retrying on %s", why.c_str(),
                      up.servers[next].address.c_str());
    ++*tries;
    return next;
}

Resolver& UpstreamPool::resolver(struct ev_loop* loop, const std::string& servers) {
    auto& r = resolvers_[servers];
    if (!r)
        r = std::make_unique<Resolver>(loop, servers, 2000);
    return *r;
}

const std::vector<sockaddr_storage>* UpstreamPool::addresses(struct ev_loop* loop,
                                                             const UpstreamConfig& up,
                                                             size_t server, Ready ready,
                                                             uint64_t* wait_id) {
    State& s = state(up);
    if (s.dns.size() != up.servers.size())
        s.dns.resize(up.servers.size());
    Dns& d = s.dns[server];
    uint64_t now = monotonic_ms();
    const bool stale = now >= d.expires_ms;
    if (!d.addrs.empty()) {
        if (ready) // a caller about to connect, not a refresh check
            count_dns(up, stale ? upstream_metrics::DnsUse::stale : upstream_metrics::DnsUse::hit);
        if (stale && !d.resolving)
            resolve(loop, up, server); // stale: refresh in the background, use it meanwhile
        return &d.addrs;
    }
    if (ready)
        count_dns(up, upstream_metrics::DnsUse::miss);
    *wait_id = ++next_wait_id_;
    d.waiters.emplace(*wait_id, std::move(ready));
    if (!d.resolving)
        resolve(loop, up, server);
    return nullptr;
}

void UpstreamPool::count_dns(const UpstreamConfig& up, upstream_metrics::DnsUse use) {
    if (metrics_)
        metrics_->count_dns_use(metrics_->slots(up).upstream, use);
}

void UpstreamPool::cancel_wait(const UpstreamConfig& up, size_t server, uint64_t wait_id) {
    auto it = states_.find(&up);
    if (it != states_.end() && server < it->second.dns.size())
        it->second.dns[server].waiters.erase(wait_id);
}

void UpstreamPool::resolve(struct ev_loop* loop, const UpstreamConfig& up, size_t server) {
    Dns& d = state(up).dns[server];
    d.resolving = true;
    const UpstreamServer& srv = up.servers[server];
    const UpstreamConfig* key = &up;
    resolver(loop, up.resolver)
        .resolve(srv.host, srv.port, [this, key, server](const Resolver::Result& r) {
            auto it = states_.find(key);
            if (it == states_.end() || server >= it->second.dns.size())
                return;
            Dns& d = it->second.dns[server];
            d.resolving = false;
            if (metrics_) {
                using upstream_metrics::DnsResult;
                const DnsResult result =
                    r.ok                                        ? DnsResult::ok
                    : r.failure == Resolver::Failure::not_found ? DnsResult::not_found
                    : r.failure == Resolver::Failure::timeout   ? DnsResult::timeout
                                                                : DnsResult::error;
                metrics_->count_dns_lookup(metrics_->slots(*key).upstream, result);
            }
            uint64_t now = monotonic_ms();
            if (r.ok) {
                auto same = [](const std::vector<sockaddr_storage>& x,
                               const std::vector<sockaddr_storage>& y) {
                    return x.size() == y.size() &&
                           std::equal(x.begin(), x.end(), y.begin(),
                                      [](const auto& a, const auto& b) {
                                          return std::memcmp(&a, &b, sizeof(a)) == 0;
                                      });
                };
                if (!d.addrs.empty() && !same(d.addrs, r.addrs)) {
                    // The name moved: kept connections go to the old addresses; drop them.
                    State& st = it->second;
                    for (auto i = st.idle.begin(); i != st.idle.end();) {
                        Idle* idle = (i++)->get();
                        if (idle->server == server)
                            drop(idle);
                    }
                }
                d.addrs = r.addrs;
                // TTL bounds: at least 1 s (no query storm), at most 1 h.
                uint64_t ttl = std::clamp<uint64_t>(r.ttl, 1, 3600);
                d.expires_ms = now + ttl * 1000;
                d.error.clear();
            } else {
                d.error = r.error;
                d.expires_ms = now + 5000; // keep the last good answer; ask again in 5 s
                ErrorLog::limited(LogLevel::warn, "proxy: cannot resolve %s (upstream \"%s\"): %s",
                                  key->servers[server].host.c_str(), key->name.c_str(),
                                  r.error.c_str());
            }
            std::map<uint64_t, Ready> waiters;
            waiters.swap(d.waiters);
            std::string error = d.addrs.empty() ? (r.ok ? "no address" : r.error) : std::string();
            for (auto& [id, ready] : waiters)
                ready(error);
        });
}

std::unique_ptr<UpstreamTransport> UpstreamPool::take(const UpstreamConfig& up, size_t server) {
    State& s = state(up);
    // Newest first: the least likely to have been closed by the upstream's idle timer.
    for (auto it = s.idle.rbegin(); it != s.idle.rend(); ++it) {
        Idle* idle = it->get();
        if (idle->server != server)
            continue;
        std::unique_ptr<UpstreamTransport> conn = std::move(idle->conn);
        drop(idle);
        // A connection the upstream closed since the last loop iteration reads EOF here (a
        // TLS one its close_notify: any byte while idle makes it unusable).
        char byte;
        ssize_t n = recv(conn->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return conn;
        return take(up, server);
    }
    return nullptr;
}

TlsSessionSlot* UpstreamPool::tls_session(const UpstreamConfig& up, size_t server) {
    State& s = state(up);
    return server < s.tls_sessions.size() ? &s.tls_sessions[server] : nullptr;
}

namespace {

bool same_endpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
    if (a.ss_family != b.ss_family)
        return false;
    if (a.ss_family == AF_INET) {
        auto& x = reinterpret_cast<const sockaddr_in&>(a);
        auto& y = reinterpret_cast<const sockaddr_in&>(b);
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
}

} // namespace

void UpstreamPool::put(struct ev_loop* loop, const UpstreamConfig& up, size_t server,
                       std::unique_ptr<UpstreamTransport> conn) {
    if (up.keepalive == 0 || !loop)
        return; // closed by conn's destructor
    const int fd = conn->fd();
    State& s = state(up);
    if (!up.servers[server].host.empty() && server < s.dns.size() && !s.dns[server].addrs.empty()) {
        // A connection made before the name moved (it was busy when the answer changed)
        // is not kept: the next request goes to where the name points now.
        sockaddr_storage peer{};
        socklen_t len = sizeof(peer);
        const auto& addrs = s.dns[server].addrs;
        if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
            std::none_of(addrs.begin(), addrs.end(),
                         [&](const sockaddr_storage& a) { return same_endpoint(a, peer); }))
            return;
    }
    while (s.idle.size() >= up.keepalive)
        drop(s.idle.front().get());
    auto idle = std::make_unique<Idle>();
    Idle* p = idle.get();
    p->pool = this;
    p->up = &up;
    p->server = server;
    p->conn = std::move(conn);
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
