// The first phase of a connection on a TLS listener: drives the server handshake on the loop
// (bounded by http.header_timeout), then hands the TlsTransport to the protocol ALPN chose.
#pragma once

#include <ev.h>
#include <memory>
#include <sys/socket.h>

#include "common/loop.h"
#include "common/config.h"
#include "worker/connection.h"
#include "worker/peer.h"
#include "worker/tls/transport.h"

namespace wraith {
class Worker;
}

namespace wraith::tls {

class Handshake final : public wraith::Connection {
public:
    Handshake(Worker& worker, std::unique_ptr<TlsTransport> transport, const sockaddr_storage& peer,
              const ListenConfig& listen);
    ~Handshake() override;
    void start();

    // A TLS 1.3 client may already have sent its requests behind its Finished: let the
    // handshake end; the protocol then sees the worker draining and finishes them.
    void drain() override {}
    void close_now() override;
    void run_deferred() override;

private:
    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timeout(struct ev_loop* loop, ev_timer* w, int revents);
    void step();
    bool plain_http_sent();
    void finish(bool ok);

    Worker& worker_;
    std::unique_ptr<TlsTransport> transport_;
    Peer peer_; // the client, for log lines and the protocol that follows
    const ListenConfig& listen_;
    OrderedIo io_; // common/loop.h: served in readiness order
    ev_timer timer_;
    bool done_ = false;
    bool checked_first_byte_ = false;
};

} // namespace wraith::tls
