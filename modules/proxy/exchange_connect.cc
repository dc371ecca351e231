// Getting the exchange an upstream connection: a pooled one, or DNS, connect and the TLS
// handshake; and trying another server (or a fresh connection) when that, or the first bytes of
// the answer, fail in a way that can be replayed. The rest of the exchange is in exchange.cc.
#include <unistd.h>

#include "modules/proxy/exchange.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/proxy_worker.h"
#include "modules/proxy/upstream_tls.h"

namespace wraith::proxy {

bool ProxyExchange::retry_elsewhere(const std::string& why, Failure kind, bool answered) {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = worker_.pool();
    trace_.failed(kind);
    pool.note_failure(up, server_, why);
    if (finished() || out_.headers_sent() || head_done() || (got_bytes_ && !answered) ||
        (body_consumed_ > 0 && !spool_))
        return false; // something of this exchange cannot be replayed
    int next = pool.retry_server(up, req_, server_, tried_, &tries_, why);
    if (next < 0)
        return false;
    close_upstream();
    pool.release(up, server_);
    server_ = static_cast<size_t>(next);
    pool.acquire(up, server_);
    trace_.start_try(server_);
    restart_request();
    if (!connect_upstream(true))
        return true; // it failed (and answered, or retried) inside
    if (stage_ != Stage::connecting)
        write_ready();
    update_io();
    return true;
}

// The request goes out again from its first byte (another server, or a fresh connection):
// the head was dropped from send_buf_ once written, so it is made again (for the new server's
// Host), and a spooled body is sent again from its start.
void ProxyExchange::fail_upstream(Failure kind, int status, const std::string& reason) {
    trace_.failed(kind);
    fail(status, reason);
}

void ProxyExchange::restart_request() {
    send_buf_.clear();
    send_off_ = 0;
    recv_len_ = 0;
    recv_off_ = 0;
    if (spool_) {
        body_state_ = BodyState::spooled;
        spool_sent_ = 0;
    }
    build_request_head();
}

bool ProxyExchange::connect_upstream(bool allow_reuse) {
    const UpstreamConfig& up = handler_.upstream();
    const UpstreamServer& server = up.servers[server_];
    reused_ = false;
    got_bytes_ = false;
    if (allow_reuse && !server.host.empty()) {
        // A pooled connection may serve, but a stale DNS answer is refreshed now (in the
        // background): when the name has moved, the pool drops connections to the old place.
        uint64_t unused = 0;
        worker_.pool().addresses(loop_, up, server_, nullptr, &unused);
        if (unused)
            worker_.pool().cancel_wait(up, server_, unused);
    }
    if (allow_reuse) {
        if (auto conn = worker_.pool().take(up, server_)) {
            conn_ = std::move(conn);
            reused_ = true;
            stage_ = Stage::request;
            trace_.connected(false);
            return true;
        }
    }
    stage_ = Stage::connecting;
    if (server.host.empty()) {
        start_connect({server.addr});
        return !finished();
    }
    const std::vector<sockaddr_storage>* addrs = worker_.pool().addresses(
        loop_, up, server_,
        [this](const std::string& error) {
            dns_wait_ = 0;
            if (finished())
                return;
            if (!error.empty()) {
                std::string why = "cannot resolve " + describe() + ": " + error;
                if (!retry_elsewhere(why, Failure::connect))
                    fail(502, "proxy: " + why);
                return;
            }
            const UpstreamConfig& u = handler_.upstream();
            uint64_t unused = 0;
            auto* list = worker_.pool().addresses(loop_, u, server_, nullptr, &unused);
            start_connect(list ? *list : std::vector<sockaddr_storage>{});
        },
        &dns_wait_);
    if (addrs)
        start_connect(*addrs);
    return !finished();
}

void ProxyExchange::start_connect(const std::vector<sockaddr_storage>& addrs) {
    if (!connector_)
        connector_ = std::make_unique<Connector>(loop_);
    const double timeout =
        static_cast<double>(handler_.upstream().connect_timeout.count()) / 1000.0;
    connect_deadline_ = ev_now(loop_) + timeout;
    connector_->start(addrs, timeout,
                      [this](int fd, const std::string& error) { connector_done(fd, error); });
}

void ProxyExchange::connector_done(int fd, const std::string& error) {
    if (finished()) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (fd < 0) {
        std::string why = "connect to " + describe() + ": " + error;
        if (!retry_elsewhere(why, Failure::connect))
            fail(error.rfind("timed out", 0) == 0 ? 504 : 502, "proxy: " + why);
        return;
    }
    const UpstreamConfig& up = handler_.upstream();
    if (up.tls) {
        conn_ = up.tls->context->connect(fd, up.servers[server_],
                                         worker_.pool().tls_session(up, server_));
        if (!conn_)
            return fail(502, "proxy: cannot start TLS to " + describe() + ": out of memory");
    } else {
        conn_ = std::make_unique<UpstreamTransport>(fd);
    }
    if (handshake_step())
        write_ready();
    update_io();
}

bool ProxyExchange::handshake_step() {
    int r = conn_->handshake();
    if (r == 0)
        return false; // update_io() waits for what it asked for, within the connect deadline
    if (r < 0) {
        handshake_failed();
        return false;
    }
    stage_ = Stage::request;
    trace_.connected(true);
    arm_timer();
    return true;
}

// A handshake that failed (the certificate did not verify, no protocol in common, a reset) is
// the server's failure: passive health counts it, another server may be tried, else 502.
void ProxyExchange::handshake_failed() {
    const UpstreamConfig& up = handler_.upstream();
    std::string why = "TLS handshake with upstream \"" + up.name + "\" server " + describe() +
                      " failed: " + conn_->error();
    close_upstream();
    if (!retry_elsewhere(why, Failure::connect))
        fail(502, "proxy: " + why);
}

} // namespace wraith::proxy
