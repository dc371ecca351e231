#include "worker/quic/connection.h"

#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <cstring>

#include "common/counters.h"
#include "common/log.h"
#include "common/quic_cid.h"
#include "worker/quic/mem.h"
#include "worker/quic/random.h"
#include "worker/worker.h"

namespace wraith::quic {

Connection::Connection(Endpoint& ep, Endpoint::Socket& sock) : ep_(ep), sock_(&sock) {
    owner_.ref.get_conn = get_conn;
    owner_.ref.user_data = this;
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ngtcp2_ccerr_default(&last_error_);
}

Connection::~Connection() {
    app_.reset(); // its streams refer to ngtcp2's
    // Streams ngtcp2 still holds (a client that closed the connection at the end of its last
    // response does not wait for them to close): their losses count too.
    while (conn_ && !open_streams_.empty())
        count_stream_losses(conn_, open_streams_.back());
    if (conn_ && handshake_done_) {
        ngtcp2_conn_info info;
        ngtcp2_conn_get_conn_info(conn_, &info);
        counters::quic_connection_closed(info.smoothed_rtt / NGTCP2_MICROSECONDS, info.cwnd,
                                         info.ssthresh != UINT64_MAX);
    }
    if (conn_)
        ngtcp2_conn_del(conn_);
    if (tls_)
        gnutls_deinit(tls_);
}

Connection* Connection::create(Endpoint& ep, Endpoint::Socket& sock, const ngtcp2_path& path,
                               const ngtcp2_pkt_hd& hd, const ngtcp2_cid* original_dcid,
                               ngtcp2_token_type token_type) {
    std::unique_ptr<Connection> c(new Connection(ep, sock));
    if (!c->init(path, hd, original_dcid, token_type))
        return nullptr;
    return c.release(); // from here it owns itself: run_deferred deletes it once dead
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
    settings.handshake_timeout =
        static_cast<uint64_t>(cfg.handshake_timeout.count()) * NGTCP2_MILLISECONDS;
    // RFC 9368: a client that lists a version we prefer in its version_information moves to
    // it (compatible version negotiation); these are also our Fully-Deployed Versions.
    settings.preferred_versions = cfg.versions.data();
    settings.preferred_versionslen = cfg.versions.size();
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
    params.max_idle_timeout = static_cast<uint64_t>(cfg.idle_timeout.count()) * NGTCP2_MILLISECONDS;
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
    int rv = ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &p, hd.version, transport_callbacks(),
                                    &settings, &params, transport_mem(), this);
    if (rv != 0) {
        WLOG_ERROR("quic: ngtcp2_conn_server_new: %s", ngtcp2_strerror(rv));
        return false;
    }
    std::string error;
    if (!ep_.tls().init_session(&tls_, &owner_, ep_.secret(), *sock_->listen, &error)) {
        WLOG_ERROR("quic: %s", error.c_str());
        return false;
    }
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);

    sockaddr_storage peer{}, local{};
    std::memcpy(&peer, path.remote.addr, path.remote.addrlen);
    std::memcpy(&local, path.local.addr, path.local.addrlen);
    peer_.init(peer, local, worker().next_connection_id());
    peer_.info.tls = &tls_info_;

    // Packets for the client's first DCID and for ours both reach this connection.
    ep_.associate(hd.dcid, this);
    ep_.associate(scid, this);
    client_dcid_ = hd.dcid;
    worker().add_connection(this, ConnectionKind::h3);
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
    tls_info_.sni = peer_tls_.sni;
    tls_info_.client_subject = peer_tls_.client_subject;
    tls_info_.client_sans = peer_tls_.client_sans;
    tls_info_.client_fingerprint = peer_tls_.client_fingerprint;
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

void Connection::wake() {
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
        if (app_ && app_->has_pending())
            app_->run_pending();
        if (dead_ || closing_)
            break;
        if (write_wanted_) {
            write_wanted_ = false;
            write();
        }
        if (!(app_ && app_->has_pending()) && !write_wanted_)
            break;
    }
    in_service_ = false;
    if (closing_)
        write_wanted_ = false; // nothing more goes out but the CONNECTION_CLOSE
    if (!dead_ && app_) {
        // Closed streams go, and a drained application may close the connection.
        app_->after_service();
        if (!dead_ && (app_->has_pending() || write_wanted_))
            worker().defer(this); // more work than one round allows: after other connections
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
        bool fin = false;
        ngtcp2_vec vec[16];
        int nvec = 0;
        if (app_ && ngtcp2_conn_get_max_data_left(conn_)) {
            nvec = app_->next_data(&stream_id, &fin, vec, 16);
            if (nvec < 0) {
                start_closing(); // the application set its error
                return;
            }
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (fin)
            flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        ngtcp2_ssize ndatalen = -1;
        ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, buf + batched, max_size, &ndatalen,
                                      flags, stream_id, vec, static_cast<size_t>(nvec), ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                app_->stream_blocked(stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                app_->stream_write_shut(stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (app_->data_sent(stream_id, static_cast<size_t>(ndatalen)) != 0) {
                    start_closing();
                    return;
                }
                continue;
            }
            fail_transport(static_cast<int>(n));
            return;
        }
        if (ndatalen >= 0 && app_->data_sent(stream_id, static_cast<size_t>(ndatalen)) != 0) {
            start_closing();
            return;
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

// ---- for the application ------------------------------------------------------------------

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

void Connection::shutdown_stream_read(int64_t stream_id, uint64_t app_error_code) {
    if (closing_ || dead_)
        return;
    ngtcp2_conn_shutdown_stream_read(conn_, 0, stream_id, app_error_code);
    want_write();
}

void Connection::shutdown_stream_write(int64_t stream_id, uint64_t app_error_code) {
    if (closing_ || dead_)
        return;
    ngtcp2_conn_shutdown_stream_write(conn_, 0, stream_id, app_error_code);
    want_write();
}

bool Connection::open_uni_stream(int64_t* stream_id) {
    return ngtcp2_conn_open_uni_stream(conn_, stream_id, nullptr) == 0;
}

uint64_t Connection::streams_uni_left() const {
    return ngtcp2_conn_get_streams_uni_left(conn_);
}

uint64_t Connection::local_max_streams_bidi() const {
    return ngtcp2_conn_get_local_transport_params(conn_)->initial_max_streams_bidi;
}

void Connection::extend_max_streams_bidi(uint64_t n) {
    ngtcp2_conn_extend_max_streams_bidi(conn_, n);
}

ngtcp2_duration Connection::pto() const {
    return ngtcp2_conn_get_pto(conn_);
}

ngtcp2_duration Connection::local_max_ack_delay() const {
    return ngtcp2_conn_get_local_transport_params(conn_)->max_ack_delay;
}

ModuleWorkers* Connection::modules() const {
    return worker().modules();
}

bool Connection::early_data_allowed() const {
    return owner_.site && owner_.site->tls && owner_.site->tls->early_data;
}

// ---- the application ----------------------------------------------------------------------

bool Connection::start_application() {
    if (app_)
        return true;
    // The handshake chose it by ALPN (TlsContext::on_client_hello); a session without one
    // failed there with no_application_protocol.
    const ApplicationSpec* spec = owner_.application;
    if (!spec)
        return false;
    tls_info_.alpn = spec->alpn;
    app_ = spec->create(*this);
    if (!app_ || !app_->start())
        return false;
    if (draining_)
        app_->drain();
    return true;
}

int Connection::on_recv_tx_key(ngtcp2_conn*, ngtcp2_encryption_level level, void* user) {
    // 1-RTT keys (or 0-RTT accepted): the application can start; HTTP/3's control streams go
    // out first.
    if (level != NGTCP2_ENCRYPTION_LEVEL_1RTT)
        return 0;
    auto* c = static_cast<Connection*>(user);
    return c->start_application() ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

int Connection::on_handshake_completed(ngtcp2_conn* conn, void* user) {
    auto* c = static_cast<Connection*>(user);
    c->handshake_done_ = true;
    counters::add(counters::quic_handshakes);
    // For logs ($ssl_protocol, $ssl_cipher, $quic_version): static strings.
    c->tls_info_.version = "TLSv1.3";
    if (const char* suite = gnutls_ciphersuite_get(c->tls_))
        c->tls_info_.cipher = suite;
    c->tls_info_.resumed = gnutls_session_is_resumed(c->tls_);
    c->peer_.info.quic_version = ngtcp2_conn_get_negotiated_version(conn);
    if (c->tls_info_.resumed)
        counters::add(counters::quic_resumed);
    if (gnutls_session_get_flags(c->tls_) & GNUTLS_SFLAGS_EARLY_DATA)
        counters::add(counters::quic_early_data);
    if (ErrorLog::enabled(LogLevel::debug)) {
        // What was negotiated, for operators and the interop tests (test_interop.py).
        const unsigned flags = gnutls_session_get_flags(c->tls_);
        WLOG_DEBUG("quic: connection %llu from %.*s: handshake done, version 0x%08x, %s, "
                   "ALPN %.*s, resumed %s, early data %s",
                   (unsigned long long)c->peer_.info.id, (int)c->peer_.info.peer_text.size(),
                   c->peer_.info.peer_text.data(), ngtcp2_conn_get_negotiated_version(conn),
                   gnutls_cipher_get_name(gnutls_cipher_get(c->tls_)),
                   c->owner_.application ? (int)c->owner_.application->alpn.size() : 0,
                   c->owner_.application ? c->owner_.application->alpn.data() : "",
                   gnutls_session_is_resumed(c->tls_) ? "yes" : "no",
                   flags & GNUTLS_SFLAGS_EARLY_DATA ? "accepted" : "no");
    }
    // A ticket for resumption (and 0-RTT where a site allows it) and an address token so the
    // client skips address validation next time (RFC 9000 §8.1.3).
    gnutls_session_ticket_send(c->tls_, 1, 0);
    c->submit_address_token(*ngtcp2_conn_get_path(conn));
    return 0;
}

int Connection::on_update_key(ngtcp2_conn* conn, uint8_t* rx_secret, uint8_t* tx_secret,
                              ngtcp2_crypto_aead_ctx* rx_aead_ctx, uint8_t* rx_iv,
                              ngtcp2_crypto_aead_ctx* tx_aead_ctx, uint8_t* tx_iv,
                              const uint8_t* current_rx_secret, const uint8_t* current_tx_secret,
                              size_t secretlen, void* user) {
    // ngtcp2 derives the next keys once the handshake is confirmed and again after every key
    // update (RFC 9001 §6), so each call past the first is one update done.
    auto* c = static_cast<Connection*>(user);
    if (c->key_phases_ < UINT16_MAX)
        ++c->key_phases_;
    if (c->key_phases_ > 1)
        WLOG_DEBUG("quic: connection %llu: key update %u", (unsigned long long)c->peer_.info.id,
                   c->key_phases_ - 1u);
    return ngtcp2_crypto_update_key_cb(conn, rx_secret, tx_secret, rx_aead_ctx, rx_iv, tx_aead_ctx,
                                       tx_iv, current_rx_secret, current_tx_secret, secretlen,
                                       user);
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
    if (!c->app_)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    size_t credit = 0;
    if (c->app_->recv_stream_data(stream_id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN,
                                  &credit) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_conn_extend_max_stream_offset(c->conn_, stream_id, credit);
    ngtcp2_conn_extend_max_offset(c->conn_, credit);
    return 0;
}

int Connection::on_acked_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t len,
                                     void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->app_ && c->app_->acked_stream_data(stream_id, len) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

void Connection::count_stream_losses(ngtcp2_conn* conn, int64_t stream_id) {
    if (const size_t lost = ngtcp2_conn_get_stream_loss_count(conn, stream_id))
        counters::add(counters::quic_stream_lost, lost);
    auto it = std::find(open_streams_.begin(), open_streams_.end(), stream_id);
    if (it != open_streams_.end()) {
        *it = open_streams_.back();
        open_streams_.pop_back();
    }
    // An idle connection keeps at most a few slots (no allocation per request for the usual
    // one stream at a time), not what a burst of streams needed.
    if (open_streams_.empty() && open_streams_.capacity() > 16)
        std::vector<int64_t>().swap(open_streams_);
}

int Connection::on_stream_open(ngtcp2_conn*, int64_t stream_id, void* user) {
    auto* c = static_cast<Connection*>(user);
    c->open_streams_.push_back(stream_id);
    if (c->app_)
        c->app_->stream_open(stream_id);
    return 0;
}

int Connection::on_stream_close(ngtcp2_conn* conn, uint32_t flags, int64_t stream_id,
                                uint64_t app_error_code, void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    c->count_stream_losses(conn, stream_id); // ngtcp2 still knows the stream here
    if (!c->app_)
        return 0;
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
        app_error_code = c->app_->no_error_code();
    return c->app_->stream_close(stream_id, app_error_code) ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
}

int Connection::on_stream_reset(ngtcp2_conn*, int64_t stream_id, uint64_t, uint64_t app_error_code,
                                void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->app_ && c->app_->stream_reset(stream_id, app_error_code) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

int Connection::on_stream_stop_sending(ngtcp2_conn*, int64_t stream_id, uint64_t app_error_code,
                                       void* user, void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->app_ && c->app_->stream_stop_sending(stream_id, app_error_code) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

int Connection::on_extend_max_remote_streams_bidi(ngtcp2_conn*, uint64_t max_streams, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (c->app_)
        c->app_->extend_max_remote_streams_bidi(max_streams);
    return 0;
}

int Connection::on_extend_max_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t, void* user,
                                          void*) {
    auto* c = static_cast<Connection*>(user);
    if (c->app_ && c->app_->extend_max_stream_data(stream_id) != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
}

void Connection::on_rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*) {
    // Packet padding and PATH_CHALLENGE data: unpredictable, not secret keys.
    fill_random(dest, len);
}

int Connection::on_get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t,
                                         void* user) {
    auto* c = static_cast<Connection*>(user);
    c->ep_.new_cid(cid, token);
    c->ep_.associate(*cid, c);
    return 0;
}

int Connection::on_remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* user) {
    auto* c = static_cast<Connection*>(user);
    c->ep_.dissociate(*cid);
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
    counters::add(counters::quic_migrations);
    sockaddr_storage peer{};
    std::memcpy(&peer, path->remote.addr, path->remote.addrlen);
    c->peer_.set_peer(peer, c->peer_.info.id);
    if (path->user_data)
        c->sock_ = static_cast<Endpoint::Socket*>(path->user_data);
    WLOG_DEBUG("quic: connection %llu migrated to %.*s", (unsigned long long)c->peer_.info.id,
               (int)c->peer_.info.peer_text.size(), c->peer_.info.peer_text.data());
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
        c.update_key = on_update_key;
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

} // namespace wraith::quic
