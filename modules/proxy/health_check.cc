#include "modules/proxy/health_check.h"

#include <ev.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/connector.h"
#include "common/log.h"
#include "modules/proxy/balancer.h"
#include "modules/proxy/health.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/response_parser.h"
#include "modules/proxy/upstream_tls.h"
#include "modules/proxy/upstream_transport.h"

namespace wraith::proxy {

namespace {
constexpr size_t kMaxAnswer = 64 * 1024; // of an HTTP check's body searched for `body`
} // namespace

bool checks_upstream(std::string_view name, int slot, int workers) {
    if (workers <= 1)
        return true;
    return hash_key(name) % static_cast<uint64_t>(workers) == static_cast<uint64_t>(slot);
}

bool status_accepted(const HealthCheckConfig& hc, int status) {
    for (auto [lo, hi] : hc.statuses)
        if (status >= lo && status <= hi)
            return true;
    return false;
}

// One server of one upstream: a check every `interval`, each bounded by `timeout`.
struct HealthChecker::Probe {
    struct ev_loop* loop;
    UpstreamPool& pool;
    Health& health;
    const UpstreamConfig& up;
    size_t server;
    const HealthCheckConfig& hc;
    uint64_t key;
    bool up_now = true;  // the verdict the workers see
    uint32_t streak = 0; // results in a row that disagree with it
    Connector connector;
    uint64_t dns_wait = 0;
    std::unique_ptr<UpstreamTransport> conn; // TLS for a TLS upstream: checks speak its language
    bool handshaking = false;
    ev_io io{};
    ev_timer interval_timer{};
    ev_timer deadline{};
    std::string request; // HTTP: what is left to send
    size_t sent = 0;
    std::string answer; // HTTP: what arrived
    bool head_done = false;
    ParsedResponse response;
    BodyDecoder decoder;
    std::string body;     // decoded, at most kMaxAnswer
    size_t body_from = 0; // where the body starts in `answer`

    Probe(struct ev_loop* l, UpstreamPool& p, Health& h, const UpstreamConfig& u, size_t s,
          double first_delay)
        : loop(l), pool(p), health(h), up(u), server(s), hc(u.health_check),
          key(Health::key(u.name, u.servers[s].address)), connector(l) {
        // Continue from the verdict an earlier generation left (a reload must not flap).
        up_now = health.active_up(key, monotonic_ms(), stale_ms());
        ev_init(&io, on_io);
        io.data = this;
        ev_init(&interval_timer, on_interval);
        interval_timer.data = this;
        ev_init(&deadline, on_deadline);
        deadline.data = this;
        ev_timer_set(&interval_timer, first_delay, 0.);
        ev_timer_start(loop, &interval_timer);
    }

    ~Probe() {
        reset();
        ev_timer_stop(loop, &interval_timer);
    }

    uint64_t stale_ms() const { return active_stale_ms(hc); }
    const std::string& address() const { return up.servers[server].address; }

    void reset() {
        connector.cancel();
        if (dns_wait) {
            pool.cancel_wait(up, server, dns_wait);
            dns_wait = 0;
        }
        if (conn) {
            ev_io_stop(loop, &io);
            conn.reset();
        }
        handshaking = false;
        ev_timer_stop(loop, &deadline);
        request.clear();
        sent = 0;
        answer.clear();
        body.clear();
        head_done = false;
    }

    static void on_interval(struct ev_loop*, ev_timer* w, int) {
        static_cast<Probe*>(w->data)->begin();
    }
    static void on_deadline(struct ev_loop*, ev_timer* w, int) {
        auto* p = static_cast<Probe*>(w->data);
        p->verdict(false, "timed out after " + std::to_string(p->hc.timeout.count()) + " ms");
    }
    static void on_io(struct ev_loop*, ev_io* w, int) {
        auto* p = static_cast<Probe*>(w->data);
        if (p->handshaking)
            p->handshake();
        else if (p->sent < p->request.size())
            p->send_more();
        else
            p->receive();
    }

    // Waits for what the transport asked for (TLS may read while writing, and the reverse).
    void wait(int events) {
        ev_io_stop(loop, &io);
        ev_io_set(&io, conn->fd(), events);
        ev_io_start(loop, &io);
    }

    void begin() {
        reset();
        const double timeout = static_cast<double>(hc.timeout.count()) / 1000.0;
        ev_timer_set(&deadline, timeout, 0.);
        ev_timer_start(loop, &deadline);
        const UpstreamServer& s = up.servers[server];
        if (s.host.empty())
            return connect({s.addr});
        auto* addrs = pool.addresses(
            loop, up, server,
            [this](const std::string& error) {
                dns_wait = 0;
                if (!error.empty())
                    return verdict(false, "cannot resolve: " + error);
                uint64_t unused = 0;
                auto* list = pool.addresses(loop, up, server, nullptr, &unused);
                connect(list ? *list : std::vector<sockaddr_storage>{});
            },
            &dns_wait);
        if (addrs)
            connect(*addrs);
    }

    void connect(const std::vector<sockaddr_storage>& addrs) {
        const double timeout = static_cast<double>(hc.timeout.count()) / 1000.0;
        connector.start(addrs, timeout, [this](int f, const std::string& error) {
            if (f < 0)
                return verdict(false, error);
            if (!hc.http)
                return ::close(f), verdict(true, {});
            const UpstreamServer& s = up.servers[server];
            if (up.tls && up.tls->context)
                conn = up.tls->context->connect(f, s, nullptr);
            else
                conn = std::make_unique<UpstreamTransport>(f);
            if (!conn)
                return verdict(false, "out of memory");
            build_request();
            handshaking = true;
            handshake();
        });
    }

    void handshake() {
        int r = conn->handshake();
        if (r < 0)
            return verdict(false, "TLS handshake failed: " + conn->error());
        if (r == 0)
            return wait(conn->wait_events(true) | conn->wait_events(false));
        handshaking = false;
        send_more();
    }

    void build_request() {
        const UpstreamServer& s = up.servers[server];
        std::string host = !hc.host.empty()              ? hc.host
                           : s.addr.ss_family == AF_UNIX ? std::string("localhost")
                                                         : s.address;
        request = "GET " + hc.path + " HTTP/1.1\r\nHost: " + host +
                  "\r\nUser-Agent: wraith-health-check\r\nAccept: */*\r\n"
                  "Connection: close\r\n\r\n";
    }

    void send_more() {
        while (sent < request.size()) {
            ssize_t n = conn->write(request.data() + sent, request.size() - sent);
            if (n < 0 && errno == EAGAIN)
                return wait(conn->wait_events(false));
            if (n < 0)
                return verdict(false,
                               "send: " + (conn->error().empty() ? std::string(std::strerror(errno))
                                                                 : conn->error()));
            sent += static_cast<size_t>(n);
        }
        receive();
    }

    void receive() {
        char buf[16384];
        for (;;) {
            ssize_t n = conn->read(buf, sizeof buf);
            if (n < 0 && errno == EAGAIN)
                return wait(conn->wait_events(true));
            if (n < 0)
                return verdict(false,
                               "read: " + (conn->error().empty() ? std::string(std::strerror(errno))
                                                                 : conn->error()));
            if (n == 0)
                return end_of_answer();
            answer.append(buf, static_cast<size_t>(n));
            if (!judge_so_far())
                return; // a verdict was given
        }
    }

    // Looks at what arrived; false once a verdict was given.
    bool judge_so_far() {
        if (!head_done) {
            size_t len = response_head_length(answer);
            if (len == 0) {
                if (answer.size() > kMaxResponseHead)
                    return verdict(false, "response head too long"), false;
                return true;
            }
            const char* error = "";
            if (parse_response_head(answer.data(), len, false, response, error) != HeadStatus::done)
                return verdict(false, std::string("malformed response: ") + error), false;
            head_done = true;
            if (!status_accepted(hc, response.status))
                return verdict(false, "status " + std::to_string(response.status)), false;
            if (hc.body.empty())
                return verdict(true, {}), false;
            decoder.start(response.framing, response.content_length);
            body_from = len;
        }
        while (body_from < answer.size() && !decoder.done()) {
            size_t used = 0;
            std::string_view payload;
            auto r = decoder.next(std::string_view(answer).substr(body_from), used, payload);
            body_from += used;
            if (r == BodyDecoder::Result::error)
                return verdict(false, std::string("malformed body: ") + decoder.error()), false;
            body.append(payload.substr(0, kMaxAnswer - std::min(kMaxAnswer, body.size())));
            if (body.find(hc.body) != std::string::npos)
                return verdict(true, {}), false;
            if (r == BodyDecoder::Result::need_more)
                break;
        }
        // Only the undecoded tail is kept.
        answer.erase(0, body_from);
        body_from = 0;
        if (decoder.done() || body.size() >= kMaxAnswer)
            return verdict(false, "body does not contain \"" + hc.body + "\""), false;
        return true;
    }

    void end_of_answer() {
        if (!head_done)
            return verdict(false, answer.empty() ? "closed without an answer"
                                                 : "closed in the middle of the response head");
        verdict(false, "body does not contain \"" + hc.body + "\"");
    }

    void verdict(bool ok, const std::string& why) {
        reset();
        const uint64_t now = monotonic_ms();
        if (ok == up_now) {
            streak = 0;
        } else if (++streak >= (ok ? hc.rise : hc.fall)) {
            up_now = ok;
            streak = 0;
            if (ok)
                WLOG_INFO("proxy: upstream \"%s\" server %s passed its health check %u time(s) "
                          "in a row: back in service",
                          up.name.c_str(), address().c_str(), hc.rise);
            else
                WLOG_WARN("proxy: upstream \"%s\" server %s failed its health check %u time(s) "
                          "in a row (%s): out of service",
                          up.name.c_str(), address().c_str(), hc.fall, why.c_str());
        } else if (!ok) {
            WLOG_DEBUG("proxy: upstream \"%s\" server %s health check failed: %s", up.name.c_str(),
                       address().c_str(), why.c_str());
        }
        health.set_active(key, up_now, now);
        ev_timer_set(&interval_timer, static_cast<double>(hc.interval.count()) / 1000.0, 0.);
        ev_timer_start(loop, &interval_timer);
    }
};

HealthChecker::HealthChecker(struct ev_loop* loop, std::shared_ptr<const Config> config,
                             UpstreamPool& pool, Health& health, int slot, int workers)
    : loop_(loop), config_(std::move(config)) {
    const ProxyConfig* pc = proxy_config(*config_);
    if (!pc)
        return;
    for (const auto& [name, up] : pc->upstreams) {
        if (!up->health_check.enabled || !checks_upstream(name, slot, workers))
            continue;
        for (size_t i = 0; i < up->servers.size(); ++i) {
            if (up->servers[i].down)
                continue;
            // The first round soon, spread a little so a big pool does not connect at once.
            double first = 0.05 + 0.01 * static_cast<double>(probes_.size() % 100);
            probes_.push_back(std::make_unique<Probe>(loop_, pool, health, *up, i, first));
        }
    }
}

HealthChecker::~HealthChecker() = default;

} // namespace wraith::proxy
