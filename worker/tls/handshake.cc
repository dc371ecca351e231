#include "worker/tls/handshake.h"

#include <arpa/inet.h>
#include <cerrno>
#include <sys/socket.h>

#include "common/counters.h"
#include "common/log.h"
#include "worker/protocols.h"
#include "worker/worker.h"

namespace wraith::tls {

Handshake::Handshake(Worker& worker, std::unique_ptr<TlsTransport> transport,
                     const sockaddr_storage& peer, const ListenConfig& listen)
    : worker_(worker), transport_(std::move(transport)), listen_(listen) {
    peer_.init(peer, *transport_, 0); // for log lines; the protocol numbers the connection
    io_init(io_, on_io, this);
    ev_timer_init(&timer_, on_timeout, worker.config().http.header_timeout.count() / 1000.0, 0.);
    timer_.data = this;
}

Handshake::~Handshake() {
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
}

void Handshake::start() {
    ev_timer_start(worker_.loop(), &timer_);
    step();
}

void Handshake::on_io(struct ev_loop*, ev_io* w, int) {
    static_cast<Handshake*>(w->data)->step();
}

void Handshake::on_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Handshake*>(w->data);
    ErrorLog::limited(LogLevel::info, "TLS handshake timed out, client: %s", self->peer_.text);
    counters::add(counters::tls_fail_timeout);
    self->finish(false);
}

// A TLS connection starts with a handshake record (content type 22). Anything else is most
// likely plain HTTP sent to the HTTPS port: say so, as NGINX does, instead of a bare reset.
bool Handshake::plain_http_sent() {
    if (checked_first_byte_)
        return false;
    char first[8];
    ssize_t n = ::recv(transport_->fd(), first, sizeof(first), MSG_PEEK);
    if (n <= 0)
        return false; // nothing yet (or closed): the handshake step sorts it out
    checked_first_byte_ = true;
    // A request line starts with a method and a space; junk gets the TLS layer's alert.
    std::string_view head(first, static_cast<size_t>(n));
    bool http = false;
    for (std::string_view m : {"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ",
                               "CONNECT ", "TRACE ", "PRI "})
        http |= head.starts_with(m);
    if (!http)
        return false;
    static const char answer[] =
        "HTTP/1.1 400 Bad Request\r\nServer: wraith\r\nContent-Type: text/plain\r\n"
        "Content-Length: 49\r\nConnection: close\r\n\r\n"
        "This port speaks HTTPS: use https:// to reach it\n";
    ssize_t w = ::send(transport_->fd(), answer, sizeof(answer) - 1, MSG_NOSIGNAL);
    (void)w;
    ErrorLog::limited(LogLevel::info, "400 plain HTTP request on TLS listener %s, client: %s",
                      listen_.address.c_str(), peer_.text);
    ::shutdown(transport_->fd(), SHUT_WR);
    return true;
}

void Handshake::step() {
    if (done_)
        return;
    if (plain_http_sent()) {
        counters::add(counters::tls_fail_plain_http);
        return finish(false);
    }
    int r = transport_->handshake();
    if (r == 0) {
        int events = transport_->wait_events(true);
        io_set(worker_.loop(), io_, transport_->fd(), events);
        return;
    }
    if (r < 0) {
        ErrorLog::limited(LogLevel::info, "TLS handshake failed: %s, client: %s",
                          transport_->error(), peer_.text);
        counters::add(static_cast<counters::Id>(transport_->failure_counter()));
    } else {
        counters::add(counters::tls_handshakes);
        if (transport_->resumed())
            counters::add(counters::tls_resumed);
    }
    finish(r > 0);
}

void Handshake::finish(bool ok) {
    done_ = true;
    io_stop(worker_.loop(), io_);
    ev_timer_stop(worker_.loop(), &timer_);
    worker_.remove_connection(this);
    if (ok) {
        const TlsInfo* tls = transport_->tls_info();
        std::string_view alpn = tls ? tls->alpn : std::string_view();
        start_protocol(worker_, std::move(transport_), peer_.info.peer.storage(), listen_, alpn,
                       {});
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
