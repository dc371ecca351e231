// How a QUIC connection ends (RFC 9000 §10): an immediate close that sends CONNECTION_CLOSE
// and lingers in the closing period, answering late packets with it; the draining period after
// the peer's close; the idle timeout; and the deletion that follows. The rest of the
// connection is in connection.cc.
#include "common/log.h"
#include "worker/quic/connection.h"
#include "worker/worker.h"

namespace wraith::quic {

// ---- closing -------------------------------------------------------------------------------

void Connection::fail_transport(int liberr) {
    if (!last_error_.error_code)
        ngtcp2_ccerr_set_liberr(&last_error_, liberr, nullptr, 0);
    start_closing();
}

void Connection::set_application_error(uint64_t code) {
    ngtcp2_ccerr_set_application_error(&last_error_, code, nullptr, 0);
}

void Connection::close_application(uint64_t code) {
    set_application_error(code);
    start_closing();
}

void Connection::linger() {
    // The closing or draining period: three PTOs (RFC 9000 §10.2), then the state goes. A
    // draining worker does not wait that long for a peer that already said goodbye.
    double pto = static_cast<double>(ngtcp2_conn_get_pto(conn_)) / NGTCP2_SECONDS;
    double after = std::min(3.0 * pto, worker().draining() ? 0.1 : 3.0);
    accepted_.reset(); // a closing connection no longer counts against connection limits
    ev_timer_stop(worker().loop(), &timer_);
    ev_timer_set(&timer_, after, 0.);
    ev_timer_start(worker().loop(), &timer_);
}

void Connection::start_closing() {
    if (closing_ || dead_)
        return;
    closing_ = true;
    if (ngtcp2_conn_in_closing_period(conn_) || ngtcp2_conn_in_draining_period(conn_) ||
        last_error_.type == NGTCP2_CCERR_TYPE_IDLE_CLOSE) {
        linger();
        return;
    }
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    uint8_t* buf = ep_.tx_buffer();
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
        conn_, &ps.path, &pi, buf, Endpoint::kTxBufferSize, &last_error_, now_ns());
    if (n > 0) {
        close_packet_.assign(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
        close_sent_at_ = now_ns();
        auto* sock = static_cast<Endpoint::Socket*>(ps.path.user_data);
        ep_.send(sock ? *sock : *sock_, ps.path.local, ps.path.remote, pi.ecn, buf,
                 static_cast<size_t>(n), static_cast<size_t>(n));
    }
    linger();
}

void Connection::start_draining() {
    if (closing_ || dead_)
        return;
    closing_ = true;
    linger();
}

void Connection::drain() {
    if (draining_ || closing_ || dead_)
        return;
    draining_ = true;
    // A handshake in progress finishes first (the client may have sent requests in 0-RTT or
    // right behind it); start_application() then tells the application.
    if (app_)
        app_->drain();
}

void Connection::close_now() {
    if (dead_)
        return;
    if (!closing_) {
        if (app_)
            set_application_error(app_->no_error_code());
        else if (owner_.application)
            set_application_error(owner_.application->no_error_code);
        start_closing();
    }
    destroy();
}

void Connection::destroy() {
    if (dead_)
        return;
    dead_ = true;
    ev_timer_stop(worker().loop(), &timer_);
    if (app_)
        app_->abort();
    // Our CIDs are the ones ngtcp2 still holds: each one it dropped went through
    // on_remove_connection_id. The client's first DCID is the one more we registered.
    ep_.dissociate(client_dcid_);
    ngtcp2_cid scids[kMaxScids];
    size_t n = ngtcp2_conn_get_scid(conn_, nullptr);
    if (n <= kMaxScids) {
        n = ngtcp2_conn_get_scid(conn_, scids);
        for (size_t i = 0; i < n; ++i)
            ep_.dissociate(scids[i]);
    } else {
        std::vector<ngtcp2_cid> many(n); // not with ngtcp2's pool of 8; kept correct anyway
        n = ngtcp2_conn_get_scid(conn_, many.data());
        for (size_t i = 0; i < n; ++i)
            ep_.dissociate(many[i]);
    }
    ep_.forget(this);
    worker().remove_connection(this);
    worker().defer(this);
}

} // namespace wraith::quic
