// Connecting to one upstream server that may have several addresses: Happy Eyeballs
// (RFC 8305 §5). Addresses are tried in the resolver's order (IPv6 first, alternating
// families); when an attempt has not connected within the attempt delay the next one starts
// beside it, and the first to connect wins (the others are closed). An attempt that fails at
// once moves on at once. All of it is bounded by the connect timeout.
#pragma once

#include <ev.h>
#include <sys/socket.h>

#include <functional>
#include <string>
#include <vector>

namespace wraith {

class Connector {
public:
    // fd >= 0: connected (the caller owns it); -1: every address failed, `error` says how.
    using Done = std::function<void(int fd, const std::string& error)>;
    static constexpr double kAttemptDelay = 0.25; // seconds (RFC 8305 recommends 250 ms)

    explicit Connector(struct ev_loop* loop);
    ~Connector(); // abandons attempts in flight; `done` is not called
    Connector(const Connector&) = delete;
    Connector& operator=(const Connector&) = delete;

    void start(std::vector<sockaddr_storage> addrs, double timeout, Done done);
    bool running() const { return running_; }
    void cancel();

private:
    struct Attempt {
        int fd = -1;
        ev_io io{};
        Connector* self = nullptr;
        std::string peer; // for messages
    };
    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_delay(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_timeout(struct ev_loop* loop, ev_timer* w, int revents);
    void next(); // starts the next address (or finishes when none is left)
    void attempt_done(Attempt& a);
    void finish(int fd, const std::string& error);

    struct ev_loop* loop_;
    std::vector<sockaddr_storage> addrs_;
    size_t next_ = 0;
    Attempt attempts_[2];
    ev_timer delay_{};
    ev_timer timeout_{};
    Done done_;
    std::string last_error_;
    bool running_ = false;
};

std::string address_text(const sockaddr_storage& a);

} // namespace wraith
