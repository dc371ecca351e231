#include "worker/tls/handshake.h"

#include <arpa/inet.h>
#include <cerrno>

#include "common/log.h"
#include "worker/protocols.h"
#include "worker/worker.h"

namespace wraith::tls {

Handshake::Handshake(Worker& worker, std::unique_ptr<TlsTransport> transport,
                     const sockaddr_storage& peer, const ListenConfig& listen)
    : worker_(worker), transport_(std::move(transport)), peer_(peer), listen_(listen) {
    ev_io_init(&io_, on_io, transport_->fd(), EV_READ);
    io_.data = this;
    ev_timer_init(&timer_, on_timeout, worker.config().http.header_timeout.count() / 1000.0, 0.);
    timer_.data = this;
}

Handshake::~Handshake() {
    ev_io_stop(worker_.loop(), &io_);
    ev_timer_stop(worker_.loop(), &timer_);
}

void Handshake::start() {
    ev_timer_start(worker_.loop(), &timer_);
    step();
}

void Handshake::on_io(struct ev_loop*, ev_io* w, int) { static_cast<Handshake*>(w->data)->step(); }

void Handshake::on_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Handshake*>(w->data);
    char ip[64] = "";
    ErrorLog::limited(LogLevel::info, "TLS handshake timed out, client fd %d",
                      self->transport_->fd());
    (void)ip;
    self->finish(false);
}

void Handshake::step() {
    if (done_)
        return;
    int r = transport_->handshake();
    if (r == 0) {
        int events = transport_->wait_events(true);
        ev_io_stop(worker_.loop(), &io_);
        ev_io_set(&io_, transport_->fd(), events);
        ev_io_start(worker_.loop(), &io_);
        return;
    }
    if (r < 0)
        ErrorLog::limited(LogLevel::info, "TLS handshake failed: %s", transport_->error());
    finish(r > 0);
}

void Handshake::finish(bool ok) {
    done_ = true;
    ev_io_stop(worker_.loop(), &io_);
    ev_timer_stop(worker_.loop(), &timer_);
    worker_.remove_connection(this);
    if (ok) {
        ConnectionInfo info;
        transport_->describe(info);
        start_protocol(worker_, std::move(transport_), peer_, listen_, info.alpn, {});
    } else {
        transport_.reset(); // closes the socket
    }
    worker_.defer(this); // deleted outside this call stack
}

void Handshake::close_now() {
    if (!done_)
        finish(false);
}

void Handshake::run_deferred() {
    if (done_)
        delete this;
}

} // namespace wraith::tls
