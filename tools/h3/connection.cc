#include "tools/h3/connection.h"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tools/h3/clock.h"
#include "tools/h3/errors.h"

namespace h3 {

namespace {

std::string describe_peer_close(const ngtcp2_ccerr& error) {
    std::string text = "the server closed the connection: ";
    switch (error.type) {
    case NGTCP2_CCERR_TYPE_APPLICATION:
        text += application_error_name(error.error_code);
        break;
    case NGTCP2_CCERR_TYPE_VERSION_NEGOTIATION:
        return "the server does not support QUIC version 1";
    case NGTCP2_CCERR_TYPE_IDLE_CLOSE:
        return "idle timeout";
    default:
        text += transport_error_name(error.error_code);
        break;
    }
    if (error.reasonlen > 0) {
        text += " (";
        text.append(reinterpret_cast<const char*>(error.reason), error.reasonlen);
        text += ")";
    }
    return text;
}

} // namespace

// ngtcp2's callbacks, forwarding to the Connection in `user_data`.
struct QuicCallbacks {
    static Connection* of(void* user) { return static_cast<Connection*>(user); }

    static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref) {
        return static_cast<Connection*>(ref->user_data)->conn_;
    }

    static int handshake_completed(ngtcp2_conn*, void* user) {
        return of(user)->on_handshake_completed();
    }

    static int handshake_confirmed(ngtcp2_conn*, void* user) {
        of(user)->handshake_confirmed_ = true;
        return 0;
    }

    static int recv_stream_data(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t,
                                const uint8_t* data, size_t len, void* user, void*) {
        return of(user)->on_recv_stream_data(flags, stream_id, data, len);
    }

    static int acked_stream_data_offset(ngtcp2_conn*, int64_t stream_id, uint64_t offset,
                                        uint64_t len, void* user, void*) {
        auto* c = of(user);
        if (c->raw_) {
            len = c->raw_->acked(stream_id, offset, len); // nghttp3 hears of its own bytes only
        }
        if (c->http_) {
            if (int rv = nghttp3_conn_add_ack_offset(c->http_, stream_id, len); rv != 0) {
                c->set_app_error(rv);
                return NGTCP2_ERR_CALLBACK_FAILURE;
            }
        }
        return 0;
    }

    static int stream_close(ngtcp2_conn*, uint32_t flags, int64_t stream_id, uint64_t app_error,
                            void* user, void*) {
        return of(user)->on_stream_close(flags, stream_id, app_error);
    }

    // The server reset its side, or asked us to stop sending: HTTP/3 stops reading it.
    static int shutdown_read(ngtcp2_conn*, int64_t stream_id, uint64_t, void* user, void*) {
        auto* c = of(user);
        if (c->http_ && !(c->raw_ && c->raw_->is_request(stream_id))) {
            if (int rv = nghttp3_conn_shutdown_stream_read(c->http_, stream_id); rv != 0) {
                c->set_app_error(rv);
                return NGTCP2_ERR_CALLBACK_FAILURE;
            }
        }
        return 0;
    }

    static int stream_reset(ngtcp2_conn* conn, int64_t stream_id, uint64_t, uint64_t app_error,
                            void* user, void* stream) {
        auto* c = of(user);
        c->handler_.on_stream_reset(*c, stream_id, app_error);
        return shutdown_read(conn, stream_id, app_error, user, stream);
    }

    static int stop_sending(ngtcp2_conn* conn, int64_t stream_id, uint64_t app_error, void* user,
                            void* stream) {
        auto* c = of(user);
        c->handler_.on_stop_sending(*c, stream_id, app_error);
        if (c->raw_) {
            c->raw_->stop(stream_id);
        }
        return shutdown_read(conn, stream_id, app_error, user, stream);
    }

    static int extend_max_stream_data(ngtcp2_conn*, int64_t stream_id, uint64_t, void* user,
                                      void*) {
        auto* c = of(user);
        if (c->raw_) {
            c->raw_->set_blocked(stream_id, false);
        }
        if (c->http_) {
            if (int rv = nghttp3_conn_unblock_stream(c->http_, stream_id); rv != 0) {
                c->set_app_error(rv);
                return NGTCP2_ERR_CALLBACK_FAILURE;
            }
        }
        return 0;
    }

    static void rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*) {
        gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
    }

    static int get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t cidlen,
                                     void*) {
        if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
            gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0) {
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        cid->datalen = cidlen;
        return 0;
    }

    static int path_validation(ngtcp2_conn*, uint32_t, const ngtcp2_path* path, const ngtcp2_path*,
                               ngtcp2_path_validation_result result, void* user) {
        of(user)->on_path_validation(path, result == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS);
        return 0;
    }

    // 1-RTT keys: HTTP/3 can start, unless it already runs over 0-RTT.
    static int recv_rx_key(ngtcp2_conn*, ngtcp2_encryption_level level, void* user) {
        auto* c = of(user);
        if (level != NGTCP2_ENCRYPTION_LEVEL_1RTT || c->early_data_) {
            return 0;
        }
        return c->setup_http() ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    }

    static int early_data_rejected(ngtcp2_conn*, void* user) {
        of(user)->reject_early_data();
        return 0;
    }

    static int new_session_ticket(gnutls_session_t session, unsigned, unsigned, unsigned,
                                  const gnutls_datum_t*) {
        auto* ref = static_cast<ngtcp2_crypto_conn_ref*>(gnutls_session_get_ptr(session));
        static_cast<Connection*>(ref->user_data)->on_new_ticket();
        return 0;
    }

    static ngtcp2_callbacks make() {
        ngtcp2_callbacks cb{};
        cb.client_initial = ngtcp2_crypto_client_initial_cb;
        cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
        cb.handshake_completed = handshake_completed;
        cb.encrypt = ngtcp2_crypto_encrypt_cb;
        cb.decrypt = ngtcp2_crypto_decrypt_cb;
        cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
        cb.recv_stream_data = recv_stream_data;
        cb.acked_stream_data_offset = acked_stream_data_offset;
        cb.stream_close = stream_close;
        cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
        cb.rand = rand;
        cb.get_new_connection_id = get_new_connection_id;
        cb.update_key = ngtcp2_crypto_update_key_cb;
        cb.path_validation = path_validation;
        cb.stream_reset = stream_reset;
        cb.extend_max_stream_data = extend_max_stream_data;
        cb.handshake_confirmed = handshake_confirmed;
        cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
        cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
        cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
        cb.stream_stop_sending = stop_sending;
        cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
        cb.recv_rx_key = recv_rx_key;
        cb.tls_early_data_rejected = early_data_rejected;
        return cb;
    }
};

Connection::Connection(struct ev_loop* loop, PacketIo& io, const ClientSettings& settings,
                       ConnectionHandler& handler)
    : loop_(loop), io_(io), settings_(settings), handler_(handler) {
    ev_io_init(&write_watcher_, write_cb, -1, EV_WRITE);
    write_watcher_.data = this;
    ev_timer_init(&timer_, timer_cb, 0., 0.);
    timer_.data = this;
    ngtcp2_ccerr_default(&last_error_);
}

Connection::~Connection() {
    if (conn_ && !closed_) {
        ngtcp2_ccerr_set_application_error(&last_error_, NGHTTP3_H3_NO_ERROR, nullptr, 0);
        send_connection_close();
    }
    ev_io_stop(loop_, &write_watcher_);
    ev_timer_stop(loop_, &timer_);
    for (auto& endpoint : endpoints_) {
        ev_io_stop(loop_, &endpoint->read_watcher);
        ::close(endpoint->fd);
    }
    teardown_http();
    if (conn_) {
        ngtcp2_conn_del(conn_);
    }
    if (tls_) {
        gnutls_deinit(tls_);
    }
}

Connection::Endpoint* Connection::open_endpoint(std::string& error) {
    auto endpoint = std::make_unique<Endpoint>();
    endpoint->owner = this;
    endpoint->fd = open_udp_socket(remote_, bind_to_, endpoint->local, error);
    if (endpoint->fd < 0) {
        return nullptr;
    }
    endpoint->bound_port = address_port(endpoint->local.get());
    ev_io_init(&endpoint->read_watcher, read_cb, endpoint->fd, EV_READ);
    endpoint->read_watcher.data = endpoint.get();
    ev_io_start(loop_, &endpoint->read_watcher);
    endpoints_.push_back(std::move(endpoint));
    return endpoints_.back().get();
}

bool Connection::connect(const ConnectTarget& target, std::string& error) {
    remote_ = target.remote;
    bind_to_ = target.local;
    conn_ref_.get_conn = QuicCallbacks::get_conn;
    conn_ref_.user_data = this;
    Endpoint* endpoint = open_endpoint(error);
    if (!endpoint) {
        return false;
    }

    ngtcp2_cid scid, dcid;
    scid.datalen = 17;
    dcid.datalen = 18;
    if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) != 0) {
        error = "cannot generate connection IDs";
        return false;
    }

    started_at_ = now_ns();
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = started_at_;
    settings.handshake_timeout = settings_.handshake_timeout;
    settings.max_window = settings_.max_connection_window;
    settings.max_stream_window = settings_.max_stream_window;

    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_local = settings_.stream_window;
    params.initial_max_stream_data_uni = 256 * 1024;
    params.initial_max_data = settings_.connection_window;
    params.initial_max_streams_bidi = 0;
    // The server's control and QPACK streams, with room for reserved (grease) ones.
    params.initial_max_streams_uni = 8;
    params.max_idle_timeout = settings_.idle_timeout;
    params.active_connection_id_limit = 8;
    params.max_udp_payload_size = PacketIo::kSlotSize;

    ngtcp2_path path{
        {endpoint->local.get(), endpoint->local.len}, {remote_.get(), remote_.len}, endpoint};
    static const ngtcp2_callbacks callbacks = QuicCallbacks::make();
    if (int rv = ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                                        &callbacks, &settings, &params, nullptr, this);
        rv != 0) {
        error = std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv);
        return false;
    }
    if (!init_tls(target, error)) {
        return false;
    }
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);
    if (settings_.keep_alive) {
        ngtcp2_conn_set_keep_alive_timeout(conn_, settings_.keep_alive);
    }
    use_session(target);

    ev_io_set(&write_watcher_, endpoint->fd, EV_WRITE);
    ev_feed_event(loop_, &write_watcher_, EV_WRITE);
    return true;
}

bool Connection::init_tls(const ConnectTarget& target, std::string& error) {
    if (int rv = gnutls_init(&tls_, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA |
                                        GNUTLS_NO_END_OF_EARLY_DATA);
        rv != 0) {
        error = std::string("gnutls_init: ") + gnutls_strerror(rv);
        return false;
    }
    if (int rv = gnutls_priority_set(tls_, settings_.tls->priority()); rv != 0) {
        error = std::string("gnutls_priority_set: ") + gnutls_strerror(rv);
        return false;
    }
    if (ngtcp2_crypto_gnutls_configure_client_session(tls_) != 0) {
        error = "ngtcp2_crypto_gnutls_configure_client_session failed";
        return false;
    }
    gnutls_session_set_ptr(tls_, &conn_ref_);
    if (int rv = gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, settings_.tls->credentials());
        rv != 0) {
        error = std::string("gnutls_credentials_set: ") + gnutls_strerror(rv);
        return false;
    }
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(settings_.alpn.data())),
                        static_cast<unsigned>(settings_.alpn.size())};
    gnutls_alpn_set_protocols(tls_, &alpn, 1, GNUTLS_ALPN_MANDATORY);
    if (!target.sni.empty()) {
        gnutls_server_name_set(tls_, GNUTLS_NAME_DNS, target.sni.data(), target.sni.size());
    }
    if (settings_.tls->verify()) {
        verify_name_ = target.verify_name;
        gnutls_session_set_verify_cert(tls_, verify_name_.empty() ? nullptr : verify_name_.c_str(),
                                       0);
    }
    if (settings_.keep_session) {
        gnutls_handshake_set_hook_function(tls_, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
                                           GNUTLS_HOOK_POST, QuicCallbacks::new_session_ticket);
    }
    return true;
}

void Connection::use_session(const ConnectTarget& target) {
    if (!target.session || target.session->empty()) {
        return;
    }
    const auto& ticket = target.session->ticket;
    if (gnutls_session_set_data(tls_, ticket.data(), ticket.size()) != 0) {
        return; // unusable ticket: a full handshake it is
    }
    const auto& saved = target.session->transport_params;
    if (!target.early_data || saved.empty()) {
        return;
    }
    // 0-RTT obeys the limits the server announced last time (RFC 9000 §7.4.1).
    if (ngtcp2_conn_decode_and_set_0rtt_transport_params(conn_, saved.data(), saved.size()) != 0) {
        return;
    }
    early_data_ = true;
    if (!setup_http()) {
        early_data_ = false;
    }
}

bool Connection::can_submit() const {
    return can_open_stream() && (!raw_ || raw_->settled());
}

bool Connection::can_open_stream() const {
    return http_ && !goaway_ && !closing_ && !closed_ && !close_requested_ &&
           ngtcp2_conn_get_streams_bidi_left(conn_) > 0;
}

void Connection::consume(int64_t stream_id, size_t n) {
    ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, n);
    ngtcp2_conn_extend_max_offset(conn_, n);
}

void Connection::consume_stream(int64_t stream_id, size_t n) {
    ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, n);
}

void Connection::consume_connection(size_t n) {
    ngtcp2_conn_extend_max_offset(conn_, n);
}

void Connection::schedule_write() {
    if (!closed_) {
        ev_feed_event(loop_, &write_watcher_, EV_WRITE);
    }
}

void Connection::close() {
    close_requested_ = true;
    schedule_write();
}

void Connection::request_migration(Migration kind) {
    if (migration_requested_ || migration_validating_) {
        return;
    }
    migration_requested_ = true;
    migration_kind_ = kind;
    schedule_write();
}

Connection::Endpoint* Connection::current_endpoint() const {
    auto* endpoint = static_cast<Endpoint*>(ngtcp2_conn_get_path(conn_)->user_data);
    return endpoint ? endpoint : endpoints_.front().get();
}

std::string Connection::alpn() const {
    gnutls_datum_t selected{};
    if (!tls_ || gnutls_alpn_get_selected_protocol(tls_, &selected) != 0) {
        return "";
    }
    return std::string(reinterpret_cast<const char*>(selected.data), selected.size);
}

std::string Connection::tls_version() const {
    const char* name = gnutls_protocol_get_name(gnutls_protocol_get_version(tls_));
    if (!name) {
        return "?";
    }
    // GnuTLS says "TLS1.3"; h2load (OpenSSL) says "TLSv1.3".
    std::string_view view = name;
    if (view.size() > 3 && view.substr(0, 3) == "TLS" && view[3] != 'v') {
        std::string text("TLSv");
        text.append(view.substr(3));
        return text;
    }
    return std::string(view);
}

std::string Connection::tls_cipher() const {
    const char* name = gnutls_ciphersuite_get(tls_);
    return name ? name : "?";
}

std::string Connection::tls_group() const {
    const char* name = gnutls_group_get_name(gnutls_group_get(tls_));
    return name ? name : "?";
}

uint32_t Connection::quic_version() const {
    return ngtcp2_conn_get_negotiated_version(conn_);
}

uint16_t Connection::local_port() const {
    return conn_ ? current_endpoint()->bound_port : 0;
}

void Connection::read_cb(struct ev_loop*, ev_io* w, int) {
    auto* endpoint = static_cast<Endpoint*>(w->data);
    endpoint->owner->on_readable(*endpoint);
}

void Connection::write_cb(struct ev_loop* loop, ev_io* w, int) {
    auto* c = static_cast<Connection*>(w->data);
    ev_io_stop(loop, w); // armed again only while there is something to send
    if (c->closed_) {
        return;
    }
    if (!c->unsent_.empty() && !c->send_unsent()) {
        if (c->closing_) {
            c->finish_close();
        }
        return;
    }
    c->after_event();
}

void Connection::timer_cb(struct ev_loop*, ev_timer* w, int) {
    auto* c = static_cast<Connection*>(w->data);
    if (c->closed_) {
        return;
    }
    if (int rv = ngtcp2_conn_handle_expiry(c->conn_, now_ns()); rv != 0) {
        c->send_close_ = false;
        if (rv == NGTCP2_ERR_IDLE_CLOSE) {
            c->fail(c->handshake_completed_ ? "idle timeout" : "handshake timed out (no answer)");
        } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
            c->fail("handshake timed out");
        } else {
            c->send_close_ = true;
            ngtcp2_ccerr_set_liberr(&c->last_error_, rv, nullptr, 0);
            c->fail(std::string("QUIC error: ") + ngtcp2_strerror(rv));
        }
    }
    c->after_event();
}

void Connection::after_event() {
    if (closed_) {
        return;
    }
    if (!closing_ && migration_requested_ && handshake_confirmed_) {
        perform_migration();
    }
    if (!closing_ && raw_ && handshake_confirmed_ && !raw_->send_crypto()) {
        fail("ngtcp2 refused --raw-crypto");
        return;
    }
    if (!closing_ && can_open_stream()) {
        handler_.on_stream_credit(*this);
    }
    if (!closing_ && close_requested_) {
        ngtcp2_ccerr_set_application_error(&last_error_, NGHTTP3_H3_NO_ERROR, nullptr, 0);
        fail("closed by the client");
    }
    if (!closing_) {
        write_packets();
    }
    if (closing_) {
        finish_close(); // may destroy this: nothing after it
        return;
    }
    update_timer();
}

void Connection::fail(std::string reason) {
    if (close_reason_.empty()) {
        close_reason_ = std::move(reason);
    }
    closing_ = true;
}

void Connection::set_app_error(int nghttp3_error) {
    ngtcp2_ccerr_set_application_error(
        &last_error_, nghttp3_err_infer_quic_app_error_code(nghttp3_error), nullptr, 0);
    if (close_reason_.empty()) {
        close_reason_ = std::string("HTTP/3 error: ") + nghttp3_strerror(nghttp3_error);
    }
}

void Connection::fail_read(int liberr) {
    switch (liberr) {
    case NGTCP2_ERR_DRAINING: {
        const ngtcp2_ccerr& error = *ngtcp2_conn_get_ccerr(conn_);
        peer_close_.received = true;
        peer_close_.application = error.type == NGTCP2_CCERR_TYPE_APPLICATION;
        peer_close_.code = error.error_code;
        send_close_ = false;
        fail(describe_peer_close(error));
        return;
    }
    case NGTCP2_ERR_CLOSING:
        send_close_ = false;
        fail("connection closed");
        return;
    case NGTCP2_ERR_DROP_CONN:
        send_close_ = false;
        fail("connection dropped (stateless reset or unusable packet)");
        return;
    case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
        send_close_ = false;
        fail("the server does not support QUIC version 1");
        return;
    case NGTCP2_ERR_CRYPTO: {
        auto alert = ngtcp2_conn_get_tls_alert(conn_);
        ngtcp2_ccerr_set_tls_alert(&last_error_, alert, nullptr, 0);
        if (settings_.tls->verify() && gnutls_session_get_verify_cert_status(tls_) != 0) {
            fail(describe_verify_failure(tls_));
        } else {
            const char* name =
                gnutls_alert_get_name(static_cast<gnutls_alert_description_t>(alert));
            fail(std::string("TLS handshake failed: ") + (name ? name : "error"));
        }
        return;
    }
    default:
        if (last_error_.type == NGTCP2_CCERR_TYPE_TRANSPORT && last_error_.error_code == 0) {
            ngtcp2_ccerr_set_liberr(&last_error_, liberr, nullptr, 0);
        }
        fail(std::string("QUIC error: ") + ngtcp2_strerror(liberr));
    }
}

void Connection::finish_close() {
    send_connection_close();
    closed_ = true;
    ev_io_stop(loop_, &write_watcher_);
    ev_timer_stop(loop_, &timer_);
    for (auto& endpoint : endpoints_) {
        ev_io_stop(loop_, &endpoint->read_watcher);
    }
    handler_.on_closed(*this); // last: the handler may destroy this connection
}

int Connection::on_handshake_completed() {
    handshake_completed_ = true;
    if (early_data_ && !(gnutls_session_get_flags(tls_) & GNUTLS_SFLAGS_EARLY_DATA)) {
        // GnuTLS learns of the rejection only now; ngtcp2 drops the 0-RTT streams (and calls
        // tls_early_data_rejected, which tears HTTP/3 down).
        if (ngtcp2_conn_tls_early_data_rejected(conn_) != 0) {
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        reject_early_data();
        if (!setup_http()) {
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
    }
    if (settings_.keep_session) {
        // The server's limits that 0-RTT must obey next time (RFC 9000 §7.4.1).
        uint8_t encoded[512];
        auto n = ngtcp2_conn_encode_0rtt_transport_params(conn_, encoded, sizeof(encoded));
        if (n > 0) {
            session_.transport_params.assign(encoded, encoded + n);
        }
    }
    handler_.on_handshake_completed(*this);
    return 0;
}

void Connection::reject_early_data() {
    if (early_data_rejected_) {
        return;
    }
    early_data_rejected_ = true;
    teardown_http();
    handler_.on_early_data_rejected(*this);
}

void Connection::on_new_ticket() {
    gnutls_datum_t data{};
    if (gnutls_session_get_data2(tls_, &data) != 0) {
        return;
    }
    session_.ticket.assign(data.data, data.data + data.size);
    gnutls_free(data.data);
}

int Connection::on_recv_stream_data(uint32_t flags, int64_t stream_id, const uint8_t* data,
                                    size_t len) {
    counters_.stream_bytes += len;
    if (ngtcp2_is_bidi_stream(stream_id)) {
        counters_.request_bytes += len;
    }
    if (raw_ && raw_->is_request(stream_id)) {
        int rv = raw_->on_response_data(stream_id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
        if (rv != 0) {
            set_app_error(rv);
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
    }
    if (!http_) {
        return 0;
    }
    auto consumed =
        nghttp3_conn_read_stream(http_, stream_id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
    if (consumed < 0) {
        set_app_error(static_cast<int>(consumed));
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    // Framing and header bytes; body bytes come back through consume().
    ngtcp2_conn_extend_max_stream_offset(conn_, stream_id, static_cast<uint64_t>(consumed));
    ngtcp2_conn_extend_max_offset(conn_, static_cast<uint64_t>(consumed));
    return 0;
}

int Connection::on_stream_close(uint32_t flags, int64_t stream_id, uint64_t app_error) {
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) {
        app_error = NGHTTP3_H3_NO_ERROR;
    }
    if (raw_ && raw_->on_stream_close(stream_id, app_error)) {
        return 0;
    }
    if (!http_) {
        return 0;
    }
    int rv = nghttp3_conn_close_stream(http_, stream_id, app_error);
    if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
        // A server stream that carried nothing HTTP/3 saw: give its credit back anyway.
        if (!ngtcp2_is_bidi_stream(stream_id)) {
            ngtcp2_conn_extend_max_streams_uni(conn_, 1);
        }
        return 0;
    }
    if (rv != 0) {
        set_app_error(rv);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

} // namespace h3
