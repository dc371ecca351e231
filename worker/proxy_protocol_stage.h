// The first stage of a connection on a listener with `proxy_protocol = true`: reads the PROXY
// header (proxy_protocol.h) without taking a byte more, bounded by http.header_timeout, then
// hands the socket on as if it had just been accepted from the address the header names
// (Worker::serve_accepted: the accept phase, then TLS or HTTP). A connection without a valid
// header is closed.
#pragma once

#include <ev.h>
#include <sys/socket.h>

#include "common/loop.h"
#include "worker/connection.h"

namespace wraith {

class Worker;

class ProxyProtocolStage final : public Connection {
public:
    ProxyProtocolStage(Worker& worker, int fd, const sockaddr_storage& peer, size_t listener);
    ~ProxyProtocolStage() override;
    void start();

    void drain() override {} // the header is all it waits for; the protocol sees the drain
    void close_now() override;
    void run_deferred() override;

private:
    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timeout(struct ev_loop* loop, ev_timer* w, int revents);
    void step();
    void fail(const char* why);
    void finish();

    Worker& worker_;
    int fd_;
    sockaddr_storage peer_;
    size_t listener_;
    OrderedIo io_;
    ev_timer timer_;
    bool done_ = false;
};

} // namespace wraith
