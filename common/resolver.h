// Asynchronous DNS (upstream host names, the master's OCSP fetches): c-ares on a libev loop (A
// and AAAA at once, never getaddrinfo on the loop), with the answer's TTL so the caller can
// re-resolve in the background, and the addresses ordered for Happy Eyeballs (RFC 8305 §4:
// IPv6 first, then alternating families).
#pragma once

#include <ares.h>
#include <ev.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <vector>

namespace wraith {

class Resolver {
public:
    // Why a lookup failed, for counters.
    enum class Failure : uint8_t { none, not_found, timeout, other };
    struct Result {
        bool ok = false;
        Failure failure = Failure::none;
        std::string error;                   // why not, for logs ("NXDOMAIN", "timeout", ...)
        std::vector<sockaddr_storage> addrs; // Happy Eyeballs order, port set
        uint32_t ttl = 0;                    // seconds: the smallest TTL of the answer
    };
    using Done = std::function<void(const Result&)>;

    // `servers`: "" for the system's resolv.conf, else c-ares CSV "ip:port,[ipv6]:port".
    // `timeout_ms` bounds each query try (c-ares retries once per server).
    Resolver(struct ev_loop* loop, const std::string& servers, int timeout_ms);
    ~Resolver(); // pending callbacks are not called
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    bool ready() const { return channel_ != nullptr; }
    const std::string& init_error() const { return init_error_; }
    // Resolves `host` (a literal address answers at once). `done` runs on the loop, never
    // inside this call.
    void resolve(const std::string& host, uint16_t port, Done done);

    // RFC 8305 §4 order: IPv6 first, then alternating with IPv4.
    static std::vector<sockaddr_storage> interleave(const std::vector<sockaddr_storage>& in);

private:
    struct Query;
    struct Watch {
        ev_io io;
        Resolver* self;
    };
    static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable);
    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_answer(void* arg, int status, int timeouts, struct ares_addrinfo* ai);
    static void on_deliver(struct ev_loop* loop, ev_idle* w, int revents);
    void rearm_timer();
    void deliver(std::unique_ptr<Query> q, Result r);

    struct ev_loop* loop_;
    ares_channel channel_ = nullptr;
    std::string init_error_;
    std::map<ares_socket_t, std::unique_ptr<Watch>> watches_;
    ev_timer timer_;
    // Answers waiting to be handed out from the loop (never inside resolve()).
    std::vector<std::pair<Done, Result>> ready_;
    ev_idle deliver_;
    bool destroying_ = false;
};

} // namespace wraith
