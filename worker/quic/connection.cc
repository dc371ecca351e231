#include "worker/quic/connection.h"

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <sys/random.h>

#include <cstring>

#include "common/log.h"
#include "common/quic_cid.h"
#include "worker/quic/mem.h"
#include "worker/quic/stream.h"
#include "worker/worker.h"

namespace wraith::quic {

namespace {

Stream* stream_of(void* p) {
    return static_cast<Stream*>(p);
}

} // namespace

Connection::Connection(Endpoint& ep, Endpoint::Socket& sock) : ep_(ep), sock_(&sock) {
    owner_.ref.get_conn = get_conn;
    owner_.ref.user_data = this;
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_init(&goaway_timer_, on_goaway_timer);
    goaway_timer_.data = this;
    ngtcp2_ccerr_default(&last_error_);
}

Connection::~Connection() {
    while (Stream* s = streams_) {
        streams_ = s->next_;
        delete s;
    }
    if (http_)
        nghttp3_conn_del(http_);
    if (conn_)
        ngtcp2_conn_del(conn_);
    if (tls_)
        gnutls_deinit(tls_);
}

Connection* Connection::create(Endpoint& ep, Endpoint::Socket& sock, const ngtcp2_path& path,
                               const ngtcp2_pkt_hd& hd, const ngtcp2_cid* original_dcid,
                               ngtcp2_token_type token_type) {
    auto* c = new Connection(ep, sock);
    if (!c->init(path, hd, original_dcid, token_type)) {
        delete c;
        return nullptr;
    }
    return c;
}

bool Connection::init(const ngtcp2_path& path, const ngtcp2_pkt_hd& hd,
                      const ngtcp2_cid* original_dcid, ngtcp2_token_type token_type) {
    const Http3Config& cfg = ep_.settings();
    ngtcp2_cid scid;
    uint8_t reset_token[NGTCP2_STATELESS_RESET_TOKENLEN];
    ep_.new_cid(&scid, reset_token);

    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now_ns();
    settings.cc_algo = NGTCP2_CC_ALGO_CUBIC;
    settings.max_tx_udp_payload_size = cfg.max_udp_payload_size;
    settings.handshake_timeout = static_cast<uint64_t>(cfg.handshake_timeout.count()) *
                                 NGTCP2_MILLISECONDS;
    // Receive windows grow with the client's sending rate up to these (auto-tuning).
    settings.max_stream_window = std::max<uint64_t>(cfg.stream_window, 6 << 20);
    settings.max_window = std::max<uint64_t>(cfg.connection_window, 15 << 20);
    if (token_type != NGTCP2_TOKEN_TYPE_UNKNOWN && hd.tokenlen) {
        // A validated address: no anti-amplification limit (RFC 9000 §8). ngtcp2 also wants
        // every later Initial of the attempt to carry the same token.
        settings.token = hd.token;
        settings.tokenlen = hd.tokenlen;
        settings.token_type = token_type;
    }

    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_remote = cfg.stream_window;
    params.initial_max_stream_data_bidi_local = cfg.stream_window;
    params.initial_max_stream_data_uni = 256 * 1024; // control and QPACK streams
    params.initial_max_data = cfg.connection_window;
    params.initial_max_streams_bidi = cfg.max_concurrent_streams;
    params.initial_max_streams_uni = 3;
    params.max_idle_timeout = static_cast<uint64_t>(cfg.idle_timeout.count()) *
                              NGTCP2_MILLISECONDS;
    params.max_udp_payload_size = cfg.max_udp_payload_size;
    params.active_connection_id_limit = 7;
    params.stateless_reset_token_present = 1;
    std::memcpy(params.stateless_reset_token, reset_token, sizeof(reset_token));
    if (original_dcid) {
        // After a Retry (RFC 9000 §7.3): the first DCID came back in the token.
        params.original_dcid = *original_dcid;
        params.retry_scid = hd.dcid;
        params.retry_scid_present = 1;
    } else {
        params.original_dcid = hd.dcid;
    }
    params.original_dcid_present = 1;

    ngtcp2_path p = path;
    p.user_data = sock_;
    int rv = ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &p, hd.version,
                                    transport_callbacks(), &settings, &params, transport_mem(),
                                    this);
    if (rv != 0) {
        WLOG_ERROR("quic: ngtcp2_conn_server_new: %s", ngtcp2_strerror(rv));
        return false;
    }
    std::string error;
    if (!ep_.tls().init_session(&tls_, &owner_, ep_.secret(), &error)) {
        WLOG_ERROR("quic: %s", error.c_str());
        return false;
    }
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);

    sockaddr_storage peer{}, local{};
    std::memcpy(&peer, path.remote.addr, path.remote.addrlen);
    std::memcpy(&local, path.local.addr, path.local.addrlen);
    peer_.init(peer, local, worker().next_connection_id());
    peer_.info.tls = true;
    peer_.info.alpn = "h3";

    // Packets for the client's first DCID and for ours both reach this connection.
    ep_.associate(hd.dcid, this);
    ep_.associate(scid, this);
    cids_.push_back(hd.dcid);
    cids_.push_back(scid);
    worker().add_connection(this);
    return true;
}

ngtcp2_conn* Connection::get_conn(ngtcp2_crypto_conn_ref* ref) {
    return static_cast<Connection*>(ref->user_data)->conn_;
}

// ---- packets in ----------------------------------------------------------------------------

void Connection::on_packet(Endpoint::Socket& sock, const ngtcp2_path& path, uint32_t ecn,
                           const uint8_t* data, size_t len) {
    if (dead_)
        return;
    if (closing_) {
        // Closing period: answer with the same CONNECTION_CLOSE, at most once per 100 ms
        // (RFC 9000 §10.2.1). Draining period: say nothing.
        if (!close_packet_.empty() && now_ns() - close_sent_at_ > 100 * NGTCP2_MILLISECONDS) {
            close_sent_at_ = now_ns();
            ep_.send(sock, path.local, path.remote, 0,
                     reinterpret_cast<const uint8_t*>(close_packet_.data()), close_packet_.size(),
                     close_packet_.size());
        }
        return;
    }
    ngtcp2_path p = path;
    p.user_data = &sock;
    ngtcp2_pkt_info pi{};
    pi.ecn = ecn;
    int rv = ngtcp2_conn_read_pkt(conn_, &p, &pi, data, len, now_ns());
    if (rv != 0) {
        switch (rv) {
        case NGTCP2_ERR_DRAINING:
            start_draining();
            return;
        case NGTCP2_ERR_DROP_CONN:
            destroy();
            return;
        case NGTCP2_ERR_RETRY:
            wants_retry_ = true;
            destroy();
            return;
        case NGTCP2_ERR_CRYPTO:
            if (!last_error_.error_code)
                ngtcp2_ccerr_set_tls_alert(&last_error_, ngtcp2_conn_get_tls_alert(conn_), nullptr,
                                           0);
            ErrorLog::limited(LogLevel::info, "quic: handshake with %.*s failed: %s",
                              (int)peer_.info.peer_text.size(), peer_.info.peer_text.data(),
                              ngtcp2_strerror(rv));
            start_closing();
            return;
        default:
            if (!last_error_.error_code)
                ngtcp2_ccerr_set_liberr(&last_error_, rv, nullptr, 0);
            ErrorLog::limited(LogLevel::info, "quic: closing connection from %.*s: %s",
                              (int)peer_.info.peer_text.size(), peer_.info.peer_text.data(),
                              ngtcp2_strerror(rv));
            start_closing();
            return;
        }
    }
    if (handshake_done_ && tls_)
        release_tls();
    want_write();
}

// The server's TLS work ends with the handshake: its ticket and every later key update come
// from what ngtcp2 already holds. GnuTLS keeps ~16 KB per session (record state, handshake
// hashes, extension data) that an idle connection would otherwise carry for its lifetime.
void Connection::release_tls() {
    TlsContext::describe_peer(tls_, &peer_tls_);
    peer_.info.sni = peer_tls_.sni;
    peer_.info.client_subject = peer_tls_.client_subject;
    peer_.info.client_sans = peer_tls_.client_sans;
    peer_.info.client_fingerprint = peer_tls_.client_fingerprint;
    ngtcp2_conn_set_tls_native_handle(conn_, nullptr);
    gnutls_deinit(tls_);
    tls_ = nullptr;
}

// CRYPTO data after the handshake: RFC 9001 gives a client no TLS message to send then (no
// KeyUpdate, no post-handshake authentication), so it is an unexpected message.
int Connection::on_recv_crypto_data(ngtcp2_conn* conn, ngtcp2_encryption_level level,
                                    uint64_t offset, const uint8_t* data, size_t len, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (!c->tls_) {
        ngtcp2_conn_set_tls_alert(conn, GNUTLS_A_UNEXPECTED_MESSAGE);
        return NGTCP2_ERR_CRYPTO;
    }
    return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, len, user);
}

// ---- packets out ---------------------------------------------------------------------------

void Connection::want_write() {
    write_wanted_ = true;
    if (!in_service_)
        worker().defer(this);
}

void Connection::schedule(Stream* s) {
    if (!s->queued_) {
        s->queued_ = true;
        pending_.push_back(s);
    }
    if (!in_service_)
        worker().defer(this);
}

void Connection::run_deferred() {
    if (dead_) {
        delete this;
        return;
    }
    service();
}

void Connection::service() {
    if (in_service_ || dead_)
        return;
    in_service_ = true;
    for (int rounds = 0; rounds < 16 && !dead_; ++rounds) {
        if (!pending_.empty()) {
            // Two vectors trade places so neither gives up its capacity.
            working_.swap(pending_);
            for (Stream* s : working_) {
                s->queued_ = false;
                s->run_pending();
            }
            working_.clear();
        }
        if (dead_ || closing_)
            break;
        if (write_wanted_) {
            write_wanted_ = false;
            write();
        }
        if (pending_.empty() && !write_wanted_)
            break;
    }
    in_service_ = false;
    if (closing_)
        write_wanted_ = false; // nothing more goes out but the CONNECTION_CLOSE
    if (!dead_) {
        reap_streams();
        if (!pending_.empty() || write_wanted_)
            worker().defer(this); // more work than one round allows: after other connections
        maybe_finish_drain();
    }
    if (!dead_)
        update_timer();
}

bool Connection::flush_pending() {
    if (!send_blocked_)
        return true;
    if (!ep_.send(*static_cast<Endpoint::Socket*>(pending_path_.path.user_data),
                  pending_path_.path.local, pending_path_.path.remote, pending_ecn_,
                  reinterpret_cast<const uint8_t*>(pending_tx_.data()), pending_tx_.size(),
                  pending_gso_)) {
        ep_.wait_writable(*static_cast<Endpoint::Socket*>(pending_path_.path.user_data), this);
        return false;
    }
    send_blocked_ = false;
    pending_tx_.clear();
    pending_tx_.shrink_to_fit();
    return true;
}

void Connection::on_send_ready() {
    if (dead_)
        return;
    want_write();
}

void Connection::write() {
    if (closing_ || dead_ || !flush_pending())
        return;
    uint8_t* buf = ep_.tx_buffer();
    const size_t max_size = ngtcp2_conn_get_max_tx_udp_payload_size(conn_);
    const size_t path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
    size_t max_pkts = std::min<size_t>(ngtcp2_conn_get_send_quantum(conn_) / max_size,
                                       Endpoint::kTxBufferSize / max_size);
    max_pkts = std::max<size_t>(max_pkts, 1);
    const uint64_t ts = now_ns();
    ngtcp2_path_storage ps, first_ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_path_storage_zero(&first_ps);
    ngtcp2_pkt_info pi{};
    uint32_t first_ecn = 0;
    size_t batched = 0, npkts = 0, gso = 0;

    auto send_batch = [&](size_t len) {
        if (len == 0)
            return true;
        auto* sock = static_cast<Endpoint::Socket*>(first_ps.path.user_data);
        if (!sock)
            sock = sock_;
        if (ep_.send(*sock, first_ps.path.local, first_ps.path.remote, first_ecn, buf, len, gso))
            return true;
        // The socket is full: keep the batch and wait for it to drain.
        pending_tx_.assign(reinterpret_cast<const char*>(buf), len);
        ngtcp2_path_storage_init(&pending_path_, first_ps.path.local.addr,
                                 first_ps.path.local.addrlen, first_ps.path.remote.addr,
                                 first_ps.path.remote.addrlen, sock);
        pending_ecn_ = first_ecn;
        pending_gso_ = gso;
        send_blocked_ = true;
        ep_.wait_writable(*sock, this);
        return false;
    };

    for (;;) {
        int64_t stream_id = -1;
        int fin = 0;
        nghttp3_vec vec[16];
        nghttp3_ssize nvec = 0;
        if (http_ && ngtcp2_conn_get_max_data_left(conn_)) {
            nvec = nghttp3_conn_writev_stream(http_, &stream_id, &fin, vec, 16);
            if (nvec < 0) {
                fail_application(nghttp3_err_infer_quic_app_error_code(static_cast<int>(nvec)));
                return;
            }
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (fin)
            flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        ngtcp2_ssize ndatalen = -1;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(
            conn_, &ps.path, &pi, buf + batched, max_size, &ndatalen, flags, stream_id,
            reinterpret_cast<const ngtcp2_vec*>(vec), static_cast<size_t>(nvec), ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                nghttp3_conn_block_stream(http_, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                nghttp3_conn_shutdown_stream_write(http_, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (int rv = nghttp3_conn_add_write_offset(http_, stream_id, ndatalen); rv != 0) {
                    fail_application(nghttp3_err_infer_quic_app_error_code(rv));
                    return;
                }
                continue;
            }
            fail_transport(static_cast<int>(n));
            return;
        }
        if (ndatalen >= 0) {
            if (int rv = nghttp3_conn_add_write_offset(http_, stream_id, ndatalen); rv != 0) {
                fail_application(nghttp3_err_infer_quic_app_error_code(rv));
                return;
            }
        }
        if (n == 0) {
            // Nothing more to send now (done, or congestion/pacing limited).
            send_batch(batched);
            ngtcp2_conn_update_pkt_tx_time(conn_, ts);
            return;
        }
        if (npkts == 0) {
            ngtcp2_path_copy(&first_ps.path, &ps.path);
            first_ecn = pi.ecn;
            gso = static_cast<size_t>(n);
        } else if (!ngtcp2_path_eq(&first_ps.path, &ps.path) || first_ecn != pi.ecn ||
                   static_cast<size_t>(n) > gso ||
                   (gso > path_max && static_cast<size_t>(n) != gso)) {
            // This packet cannot join the batch: send the batch, then start a new one with it.
            if (!send_batch(batched)) {
                // The new packet is lost with the socket full; ngtcp2 will declare it lost.
                ngtcp2_conn_update_pkt_tx_time(conn_, ts);
                return;
            }
            std::memmove(buf, buf + batched, static_cast<size_t>(n));
            batched = 0;
            npkts = 0;
            ngtcp2_path_copy(&first_ps.path, &ps.path);
            first_ecn = pi.ecn;
            gso = static_cast<size_t>(n);
        }
        batched += static_cast<size_t>(n);
        ++npkts;
        // A short packet ends a GSO batch (every segment but the last must be full size).
        if (npkts == max_pkts || static_cast<size_t>(n) < gso) {
            send_batch(batched);
            // The send quantum is out: the pacing timer (ngtcp2's expiry, armed after this
            // pass) brings the next one, after the loop has read whatever ACKs came in.
            ngtcp2_conn_update_pkt_tx_time(conn_, ts);
            return;
        }
    }
}

void Connection::update_timer() {
    if (dead_)
        return;
    if (closing_)
        return; // the linger timer of start_closing() runs
    uint64_t expiry = ngtcp2_conn_get_expiry(conn_);
    uint64_t now = now_ns();
    double after = expiry <= now ? 0.0 : static_cast<double>(expiry - now) / NGTCP2_SECONDS;
    ev_timer_stop(worker().loop(), &timer_);
    ev_timer_set(&timer_, after, 0.);
    ev_timer_start(worker().loop(), &timer_);
}

void Connection::on_timer(struct ev_loop*, ev_timer* w, int) {
    auto* c = static_cast<Connection*>(w->data);
    if (c->closing_) {
        c->destroy();
        return;
    }
    c->handle_expiry();
}

void Connection::handle_expiry() {
    int rv = ngtcp2_conn_handle_expiry(conn_, now_ns());
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
        destroy(); // silently (RFC 9000 §10.1)
        return;
    }
    if (rv != 0) {
        if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT)
            ErrorLog::limited(LogLevel::info, "quic: handshake with %.*s timed out",
                              (int)peer_.info.peer_text.size(), peer_.info.peer_text.data());
        fail_transport(rv);
        return;
    }
    write_wanted_ = true;
    service();
}

// ---- closing -------------------------------------------------------------------------------

void Connection::fail_transport(int liberr) {
    if (!last_error_.error_code)
        ngtcp2_ccerr_set_liberr(&last_error_, liberr, nullptr, 0);
    start_closing();
}

void Connection::fail_application(uint64_t h3_error) {
    ngtcp2_ccerr_set_application_error(&last_error_, h3_error, nullptr, 0);
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
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf,
                                                        Endpoint::kTxBufferSize, &last_error_,
                                                        now_ns());
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
    // right behind it); setup_http3() then starts the GOAWAY.
    if (http_)
        start_goaway();
}

void Connection::start_goaway() {
    // RFC 9114 §5.2, in two steps as for HTTP/2: a GOAWAY that announces the end but refuses
    // nothing, then (two PTOs later, when requests already on the wire arrived) the GOAWAY with
    // the first stream id we will not serve; streams below it finish.
    nghttp3_conn_submit_shutdown_notice(http_);
    want_write();
    double pto = static_cast<double>(ngtcp2_conn_get_pto(conn_)) / NGTCP2_SECONDS;
    ev_timer_set(&goaway_timer_, std::max(0.05, 2 * pto), 0.);
    ev_timer_start(worker().loop(), &goaway_timer_);
}

void Connection::on_goaway_timer(struct ev_loop*, ev_timer* w, int) {
    auto* c = static_cast<Connection*>(w->data);
    if (c->closing_ || c->dead_ || !c->http_)
        return;
    if (c->final_goaway_) {
        // The quiet period of maybe_finish_drain() is over.
        c->close_when_idle_ = true;
        c->maybe_finish_drain();
        return;
    }
    c->final_goaway_ = true;
    nghttp3_conn_shutdown(c->http_);
    c->want_write();
    c->maybe_finish_drain();
}

void Connection::maybe_finish_drain() {
    if (!draining_ || !final_goaway_ || closing_ || dead_)
        return;
    if (streams_ != nullptr) {
        // A stream below the GOAWAY id still arrived: the quiet period starts again after it.
        close_when_idle_ = false;
        ev_timer_stop(worker().loop(), &goaway_timer_);
        return;
    }
    if (close_when_idle_) {
        ngtcp2_ccerr_set_application_error(&last_error_, NGHTTP3_H3_NO_ERROR, nullptr, 0);
        start_closing();
        return;
    }
    // The last stream just ended, its final bytes from the client (the FIN closing a tunnel)
    // perhaps not acknowledged yet: ngtcp2 delays that ACK (RFC 9000 §13.2.1), and
    // CONNECTION_CLOSE carries none, so closing now would cut the client's stream short on its
    // side. Our ACK delay plus one PTO lets the ACK go out and reach the client first; a client
    // done with the connection usually closes it itself in that time.
    if (!ev_is_active(&goaway_timer_)) {
        const ngtcp2_duration wait = ngtcp2_conn_get_local_transport_params(conn_)->max_ack_delay +
                                     ngtcp2_conn_get_pto(conn_);
        ev_timer_set(&goaway_timer_, static_cast<double>(wait) / NGTCP2_SECONDS, 0.);
        ev_timer_start(worker().loop(), &goaway_timer_);
    }
}

void Connection::close_now() {
    if (dead_)
        return;
    if (!closing_) {
        ngtcp2_ccerr_set_application_error(&last_error_, NGHTTP3_H3_NO_ERROR, nullptr, 0);
        start_closing();
    }
    destroy();
}

void Connection::destroy() {
    if (dead_)
        return;
    dead_ = true;
    ev_timer_stop(worker().loop(), &timer_);
    ev_timer_stop(worker().loop(), &goaway_timer_);
    // Streams still open end now: handlers see an abort, logs a 499.
    for (Stream* s = streams_; s; s = s->next_)
        if (!s->closed())
            s->on_closed(NGHTTP3_H3_NO_ERROR);
    for (Stream* s = streams_; s; s = s->next_)
        s->finish();
    for (const ngtcp2_cid& cid : cids_)
        ep_.dissociate(cid);
    cids_.clear();
    ep_.forget(this);
    worker().remove_connection(this);
    worker().defer(this);
}

void Connection::reap_streams() {
    for (Stream* s : closed_streams_) {
        s->finish();
        if (s->prev_)
            s->prev_->next_ = s->next_;
        else
            streams_ = s->next_;
        if (s->next_)
            s->next_->prev_ = s->prev_;
        delete s;
    }
    closed_streams_.clear();
}

// ---- for streams ---------------------------------------------------------------------------

void Connection::consumed(int64_t stream_id, size_t n) {
    if (closing_ || dead_)
        return;
    ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, n);
    ngtcp2_conn_extend_max_offset(conn_, n);
    want_write();
}

void Connection::reset_stream(int64_t stream_id, uint64_t app_error_code) {
    if (closing_ || dead_)
        return;
    ngtcp2_conn_shutdown_stream(conn_, 0, stream_id, app_error_code);
    want_write();
}

bool Connection::early_data_allowed() const {
    return owner_.site && owner_.site->tls && owner_.site->tls->early_data;
}

// ---- HTTP/3 session ------------------------------------------------------------------------

bool Connection::setup_http3() {
    if (http_)
        return true;
    if (ngtcp2_conn_get_streams_uni_left(conn_) < 3)
        return false;
    const Http3Config& cfg = ep_.settings();
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = cfg.qpack_table_size;
    settings.qpack_blocked_streams = cfg.qpack_blocked_streams;
    settings.max_field_section_size = worker().config().http.max_header_size;
    settings.enable_connect_protocol = 1; // RFC 9220: WebSockets over HTTP/3
    if (int rv = nghttp3_conn_server_new(&http_, http_callbacks(), &settings, http3_mem(), this);
        rv != 0) {
        WLOG_ERROR("http3: nghttp3_conn_server_new: %s", nghttp3_strerror(rv));
        return false;
    }
    const ngtcp2_transport_params* params = ngtcp2_conn_get_local_transport_params(conn_);
    nghttp3_conn_set_max_client_streams_bidi(http_, params->initial_max_streams_bidi);
    int64_t control = -1, enc = -1, dec = -1;
    if (ngtcp2_conn_open_uni_stream(conn_, &control, nullptr) != 0 ||
        nghttp3_conn_bind_control_stream(http_, control) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &enc, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &dec, nullptr) != 0 ||
        nghttp3_conn_bind_qpack_streams(http_, enc, dec) != 0) {
        WLOG_ERROR("http3: cannot open the control and QPACK streams");
        return false;
    }
    if (draining_)
        start_goaway();
    return true;
}

int Connection::on_recv_tx_key(ngtcp2_conn*, ngtcp2_encryption_level level, void* user) {
    // 1-RTT keys (or 0-RTT accepted): HTTP/3 can start; the control streams go out first.
    if (level != NGTCP2_ENCRYPTION_LEVEL_1RTT)
        return 0;
    auto* c = static_cast<Connection*>(user);
    return c->setup_http3() ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

int Connection::on_handshake_completed(ngtcp2_conn* conn, void* user) {
    auto* c = static_cast<Connection*>(user);
    c->handshake_done_ = true;
    // A ticket for resumption (and 0-RTT where a site allows it) and an address token so the
    // client skips address validation next time (RFC 9000 §8.1.3).
    gnutls_session_ticket_send(c->tls_, 1, 0);
    c->submit_address_token(*ngtcp2_conn_get_path(conn));
    return 0;
}

void Connection::submit_address_token(const ngtcp2_path& path) {
    uint8_t token[NGTCP2_CRYPTO_MAX_REGULAR_TOKENLEN];
    ngtcp2_ssize len =
        ngtcp2_crypto_generate_regular_token(token, ep_.secret().data(), ep_.secret().size(),
                                             path.remote.addr, path.remote.addrlen, now_ns());
    if (len > 0)
        ngtcp2_conn_submit_new_token(conn_, token, static_cast<size_t>(len));
}

int Connection::on_recv_stream_data(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t,
                                    const uint8_t* data, size_t len, void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    if (!c->http_)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    const bool fin = flags & NGTCP2_STREAM_DATA_FLAG_FIN;
    nghttp3_ssize n = nghttp3_conn_read_stream(c->http_, stream_id, data, len, fin);
    // nghttp3 (0.8, still 1.8) calls a frame type cut short by the end of a request stream a
    // general protocol error; RFC 9114 §7.1 makes a truncated frame H3_FRAME_ERROR.
    if (n == NGHTTP3_ERR_H3_GENERAL_PROTOCOL_ERROR && fin && ngtcp2_is_bidi_stream(stream_id))
        n = NGHTTP3_ERR_H3_FRAME_ERROR;
    if (n < 0) {
        ErrorLog::limited(LogLevel::info, "http3: bad input from %.*s: %s",
                          (int)c->peer_.info.peer_text.size(), c->peer_.info.peer_text.data(),
                          nghttp3_strerror(static_cast<int>(n)));
        ngtcp2_ccerr_set_application_error(
            &c->last_error_, nghttp3_err_infer_quic_app_error_code(static_cast<int>(n)), nullptr,
            0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    // Framing and QPACK bytes are consumed at once; body bytes when the handler takes them.
    ngtcp2_conn_extend_max_stream_offset(c->conn_, stream_id, static_cast<uint64_t>(n));
    ngtcp2_conn_extend_max_offset(c->conn_, static_cast<uint64_t>(n));
    return 0;
}

int Connection::on_acked_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t len,
                                     void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->http_ && nghttp3_conn_add_ack_offset(c->http_, stream_id, len) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

int Connection::on_stream_open(ngtcp2_conn*, int64_t stream_id, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (ngtcp2_is_bidi_stream(stream_id) && c->final_goaway_) {
        // Past our GOAWAY: refuse it (RFC 9114 §5.2); the client retries elsewhere.
        ngtcp2_conn_shutdown_stream(c->conn_, 0, stream_id, NGHTTP3_H3_REQUEST_REJECTED);
    }
    return 0;
}

int Connection::on_stream_close(ngtcp2_conn*, uint32_t flags, int64_t stream_id,
                                uint64_t app_error_code, void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
        app_error_code = NGHTTP3_H3_NO_ERROR;
    if (c->http_) {
        int rv = nghttp3_conn_close_stream(c->http_, stream_id, app_error_code);
        if (rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
            if (ngtcp2_is_bidi_stream(stream_id))
                ngtcp2_conn_extend_max_streams_bidi(c->conn_, 1);
        } else {
            ngtcp2_ccerr_set_application_error(
                &c->last_error_, nghttp3_err_infer_quic_app_error_code(rv), nullptr, 0);
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
    }
    return 0;
}

int Connection::on_stream_reset(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t, void* user,
                                void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->http_ && nghttp3_conn_shutdown_stream_read(c->http_, stream_id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

int Connection::on_stream_stop_sending(ngtcp2_conn*, int64_t stream_id, uint64_t, void* user,
                                       void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->http_ && nghttp3_conn_shutdown_stream_read(c->http_, stream_id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

int Connection::on_extend_max_remote_streams_bidi(ngtcp2_conn*, uint64_t max_streams,
                                                  void* user) {
    auto* c = static_cast<Connection*>(user);
    if (c->http_)
        nghttp3_conn_set_max_client_streams_bidi(c->http_, max_streams);
    return 0;
}

int Connection::on_extend_max_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t, void* user,
                                          void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->http_ && nghttp3_conn_unblock_stream(c->http_, stream_id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

void Connection::on_rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*) {
    // Packet padding and PATH_CHALLENGE data: unpredictable, not secret keys.
    while (len) {
        ssize_t n = getrandom(dest, len, 0);
        if (n <= 0)
            break;
        dest += n;
        len -= static_cast<size_t>(n);
    }
}

int Connection::on_get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t,
                                         void* user) {
    auto* c = static_cast<Connection*>(user);
    c->ep_.new_cid(cid, token);
    c->ep_.associate(*cid, c);
    c->cids_.push_back(*cid);
    return 0;
}

int Connection::on_remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* user) {
    auto* c = static_cast<Connection*>(user);
    c->ep_.dissociate(*cid);
    std::erase_if(c->cids_, [&](const ngtcp2_cid& x) { return ngtcp2_cid_eq(&x, cid); });
    return 0;
}

int Connection::on_path_validation(ngtcp2_conn*, uint32_t flags, const ngtcp2_path* path,
                                   const ngtcp2_path*, ngtcp2_path_validation_result res,
                                   void* user) {
    auto* c = static_cast<Connection*>(user);
    if (res != NGTCP2_PATH_VALIDATION_RESULT_SUCCESS)
        return 0;
    // A token for the new address: ngtcp2 asks once the client's new path is validated.
    if (flags & NGTCP2_PATH_VALIDATION_FLAG_NEW_TOKEN)
        c->submit_address_token(*path);
    // The client moved (RFC 9000 §9): logs and X-Forwarded-For follow it.
    sockaddr_storage peer{};
    std::memcpy(&peer, path->remote.addr, path->remote.addrlen);
    c->peer_.set_peer(peer, c->peer_.info.id);
    if (path->user_data)
        c->sock_ = static_cast<Endpoint::Socket*>(path->user_data);
    WLOG_DEBUG("quic: connection %llu migrated to %.*s", (unsigned long long)c->peer_.info.id,
               (int)c->peer_.info.peer_text.size(), c->peer_.info.peer_text.data());
    return 0;
}

// ---- nghttp3 callbacks ---------------------------------------------------------------------

int Connection::h3_acked_stream_data(nghttp3_conn*, int64_t, uint64_t len, void*,
                                     void* stream_user) {
    if (Stream* s = stream_of(stream_user))
        s->on_acked(len);
    return 0;
}

int Connection::h3_stream_close(nghttp3_conn*, int64_t, uint64_t app_error_code, void* user,
                                void* stream_user) {
    auto* c = static_cast<Connection*>(user);
    if (Stream* s = stream_of(stream_user)) {
        s->on_closed(app_error_code);
        c->closed_streams_.push_back(s);
        if (!c->in_service_)
            c->worker().defer(c);
    }
    return 0;
}

int Connection::h3_recv_data(nghttp3_conn*, int64_t, const uint8_t* data, size_t len, void*,
                             void* stream_user) {
    if (Stream* s = stream_of(stream_user))
        s->on_body(data, len);
    return 0;
}

int Connection::h3_deferred_consume(nghttp3_conn*, int64_t stream_id, size_t consumed,
                                    void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    ngtcp2_conn_extend_max_stream_offset(c->conn_, stream_id, consumed);
    ngtcp2_conn_extend_max_offset(c->conn_, consumed);
    return 0;
}

int Connection::h3_begin_headers(nghttp3_conn* h3, int64_t stream_id, void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    auto* s = new Stream(*c, stream_id);
    s->next_ = c->streams_;
    if (c->streams_)
        c->streams_->prev_ = s;
    c->streams_ = s;
    nghttp3_conn_set_stream_user_data(h3, stream_id, s);
    return 0;
}

int Connection::h3_recv_header(nghttp3_conn*, int64_t, int32_t token, nghttp3_rcbuf* name,
                               nghttp3_rcbuf* value, uint8_t, void*, void* stream_user) {
    if (Stream* s = stream_of(stream_user)) {
        nghttp3_vec n = nghttp3_rcbuf_get_buf(name);
        nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
        s->on_header(token, {reinterpret_cast<const char*>(n.base), n.len},
                     {reinterpret_cast<const char*>(v.base), v.len},
                     nghttp3_rcbuf_is_static(name) != 0);
    }
    return 0;
}

int Connection::h3_end_headers(nghttp3_conn*, int64_t, int fin, void* user, void* stream_user) {
    auto* c = static_cast<Connection*>(user);
    if (Stream* s = stream_of(stream_user))
        s->on_head_complete(fin != 0, !c->handshake_done_);
    return 0;
}

int Connection::h3_end_stream(nghttp3_conn*, int64_t, void*, void* stream_user) {
    if (Stream* s = stream_of(stream_user))
        s->on_body_end();
    return 0;
}

int Connection::h3_stop_sending(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                                void* user, void* stream_user) {
    auto* c = static_cast<Connection*>(user);
    ngtcp2_conn_shutdown_stream_read(c->conn_, 0, stream_id, app_error_code);
    return 0;
}

int Connection::h3_reset_stream(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                                void* user, void* stream_user) {
    // nghttp3 wants the stream reset with this code: the peer stopped reading (STOP_SENDING)
    // or the request was malformed (H3_MESSAGE_ERROR, RFC 9114 §4.1.2).
    auto* c = static_cast<Connection*>(user);
    if (Stream* s = stream_of(stream_user))
        s->reset_with(app_error_code);
    else
        ngtcp2_conn_shutdown_stream_write(c->conn_, 0, stream_id, app_error_code);
    return 0;
}

const ngtcp2_callbacks* Connection::transport_callbacks() {
    static const ngtcp2_callbacks cb = [] {
        ngtcp2_callbacks c{};
        c.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
        c.recv_crypto_data = on_recv_crypto_data;
        c.handshake_completed = on_handshake_completed;
        c.encrypt = ngtcp2_crypto_encrypt_cb;
        c.decrypt = ngtcp2_crypto_decrypt_cb;
        c.hp_mask = ngtcp2_crypto_hp_mask_cb;
        c.recv_stream_data = on_recv_stream_data;
        c.acked_stream_data_offset = on_acked_stream_data;
        c.stream_open = on_stream_open;
        c.stream_close = on_stream_close;
        c.rand = on_rand;
        c.get_new_connection_id = on_get_new_connection_id;
        c.remove_connection_id = on_remove_connection_id;
        c.update_key = ngtcp2_crypto_update_key_cb;
        c.path_validation = on_path_validation;
        c.stream_reset = on_stream_reset;
        c.extend_max_remote_streams_bidi = on_extend_max_remote_streams_bidi;
        c.extend_max_stream_data = on_extend_max_stream_data;
        c.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
        c.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
        c.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
        c.stream_stop_sending = on_stream_stop_sending;
        c.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
        c.recv_tx_key = on_recv_tx_key;
        return c;
    }();
    return &cb;
}

const nghttp3_callbacks* Connection::http_callbacks() {
    static const nghttp3_callbacks cb = [] {
        nghttp3_callbacks c{};
        c.acked_stream_data = h3_acked_stream_data;
        c.stream_close = h3_stream_close;
        c.recv_data = h3_recv_data;
        c.deferred_consume = h3_deferred_consume;
        c.begin_headers = h3_begin_headers;
        c.recv_header = h3_recv_header;
        c.end_headers = h3_end_headers;
        c.stop_sending = h3_stop_sending;
        c.end_stream = h3_end_stream;
        c.reset_stream = h3_reset_stream;
        return c;
    }();
    return &cb;
}

} // namespace wraith::quic
