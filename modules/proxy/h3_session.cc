#include "modules/proxy/h3_session.h"

#include <fcntl.h>
#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "modules/proxy/h3_upstream.h"
#include "modules/proxy/health.h"
#include "modules/proxy/pool.h"

namespace wraith::proxy {

namespace {

constexpr uint64_t kStreamWindow = 256 * 1024; // per response: what a slow client may owe
constexpr uint64_t kMaxStreamWindow = 1024 * 1024;
constexpr uint64_t kConnectionWindow = 16 * 1024 * 1024;
constexpr uint64_t kAssumedStreams = 100;              // until the server's transport parameters
constexpr size_t kMaxUnacked = 256 * 1024;             // request body in flight per stream
constexpr size_t kBodyChunk = 64 * 1024;               // request body taken from the client at once
constexpr ev_tstamp kUdpRetry = 30.0;                  // fallback: how long TCP is used alone
constexpr uint64_t kIdleTimeout = 30 * NGTCP2_SECONDS; // ours; PINGs keep a busy one alive
constexpr uint64_t kKeepAlive = 10 * NGTCP2_SECONDS;

} // namespace

// ngtcp2's and nghttp3's callbacks, routed to the H3Session in their user data.
struct H3Callbacks {
    static H3Session* of(void* user) { return static_cast<H3Session*>(user); }

    static ngtcp2_conn* get_conn(ngtcp2_crypto_conn_ref* ref) {
        return static_cast<H3Session*>(ref->user_data)->conn_;
    }

    static int handshake_completed(ngtcp2_conn*, void* user) {
        of(user)->handshake_done_ = true;
        return 0;
    }

    static int recv_stream_data(ngtcp2_conn*, uint32_t flags, int64_t id, uint64_t,
                                const uint8_t* data, size_t len, void* user, void*) {
        return of(user)->on_stream_data(flags, id, data, len);
    }

    static int acked_stream_data_offset(ngtcp2_conn*, int64_t id, uint64_t, uint64_t len,
                                        void* user, void*) {
        return of(user)->on_acked(id, len);
    }

    static int stream_close(ngtcp2_conn*, uint32_t flags, int64_t id, uint64_t app_error,
                            void* user, void*) {
        auto* s = of(user);
        if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
            app_error = NGHTTP3_H3_NO_ERROR;
        if (!s->http_)
            return 0;
        int rv = nghttp3_conn_close_stream(s->http_, id, app_error);
        if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
            if (!ngtcp2_is_bidi_stream(id))
                ngtcp2_conn_extend_max_streams_uni(s->conn_, 1);
            return 0;
        }
        if (rv != 0) {
            s->http_error_ = nghttp3_strerror(rv);
            ngtcp2_ccerr_set_application_error(
                &s->last_error_, nghttp3_err_infer_quic_app_error_code(rv), nullptr, 0);
            return NGTCP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
    }

    // The server reset its side or sent STOP_SENDING: HTTP/3 stops reading the stream.
    static int shutdown_read(ngtcp2_conn*, int64_t id, uint64_t, void* user, void*) {
        auto* s = of(user);
        if (s->http_ && nghttp3_conn_shutdown_stream_read(s->http_, id) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        return 0;
    }

    static int stream_reset(ngtcp2_conn* c, int64_t id, uint64_t, uint64_t app_error, void* user,
                            void* st) {
        return shutdown_read(c, id, app_error, user, st);
    }

    static int extend_max_stream_data(ngtcp2_conn*, int64_t id, uint64_t, void* user, void*) {
        auto* s = of(user);
        if (s->http_ && nghttp3_conn_unblock_stream(s->http_, id) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        return 0;
    }

    static void rand(uint8_t* dest, size_t len, const ngtcp2_rand_ctx*) {
        gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
    }

    static int get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, uint8_t* token, size_t cidlen,
                                     void*) {
        if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
            gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        cid->datalen = cidlen;
        return 0;
    }

    // 1-RTT keys: HTTP/3's control and QPACK streams can open.
    static int recv_rx_key(ngtcp2_conn*, ngtcp2_encryption_level level, void* user) {
        if (level != NGTCP2_ENCRYPTION_LEVEL_1RTT)
            return 0;
        return of(user)->setup_http() ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    }

    static ngtcp2_callbacks quic() {
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
        cb.stream_reset = stream_reset;
        cb.stream_stop_sending = shutdown_read;
        cb.extend_max_stream_data = extend_max_stream_data;
        cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
        cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
        cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
        cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
        cb.recv_rx_key = recv_rx_key;
        return cb;
    }

    // ---- nghttp3 -------------------------------------------------------------------------

    static H3Exchange* exchange(void* stream) {
        return stream ? static_cast<H3Stream*>(stream)->exchange : nullptr;
    }

    static int http_stream_close(nghttp3_conn*, int64_t id, uint64_t app_error, void* user,
                                 void* stream) {
        auto* s = of(user);
        if (ngtcp2_is_bidi_stream(id))
            s->on_http_stream_close(id, app_error, static_cast<H3Stream*>(stream));
        else
            ngtcp2_conn_extend_max_streams_uni(s->conn_, 1);
        return 0;
    }

    static int recv_data(nghttp3_conn*, int64_t id, const uint8_t* data, size_t len, void* user,
                         void* stream) {
        auto* s = of(user);
        // The connection's credit comes back at once, so other streams keep moving; the
        // stream's once the client took the bytes (H3Session::consume).
        ngtcp2_conn_extend_max_offset(s->conn_, len);
        if (H3Exchange* x = exchange(stream))
            x->on_data(data, len);
        else
            ngtcp2_conn_extend_max_stream_offset(s->conn_, id, len);
        return 0;
    }

    static int deferred_consume(nghttp3_conn*, int64_t id, size_t consumed, void* user, void*) {
        auto* s = of(user);
        ngtcp2_conn_extend_max_stream_offset(s->conn_, id, consumed);
        ngtcp2_conn_extend_max_offset(s->conn_, consumed);
        return 0;
    }

    static int recv_header(nghttp3_conn*, int64_t, int32_t, nghttp3_rcbuf* name,
                           nghttp3_rcbuf* value, uint8_t, void*, void* stream) {
        if (H3Exchange* x = exchange(stream)) {
            nghttp3_vec n = nghttp3_rcbuf_get_buf(name);
            nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
            x->on_field({reinterpret_cast<const char*>(n.base), n.len},
                        {reinterpret_cast<const char*>(v.base), v.len});
        }
        return 0;
    }

    static int end_headers(nghttp3_conn*, int64_t, int fin, void*, void* stream) {
        if (H3Exchange* x = exchange(stream))
            x->on_headers_end(fin != 0);
        return 0;
    }

    static int end_trailers(nghttp3_conn*, int64_t, int, void*, void*) { return 0; }

    static int end_stream(nghttp3_conn*, int64_t, void*, void* stream) {
        if (H3Exchange* x = exchange(stream))
            x->on_stream_end();
        return 0;
    }

    static int stop_sending(nghttp3_conn*, int64_t id, uint64_t app_error, void* user, void*) {
        int rv = ngtcp2_conn_shutdown_stream_read(of(user)->conn_, 0, id, app_error);
        return rv == 0 || rv == NGTCP2_ERR_STREAM_NOT_FOUND ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
    }

    static int reset_stream(nghttp3_conn*, int64_t id, uint64_t app_error, void* user, void*) {
        int rv = ngtcp2_conn_shutdown_stream_write(of(user)->conn_, 0, id, app_error);
        return rv == 0 || rv == NGTCP2_ERR_STREAM_NOT_FOUND ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
    }

    // GOAWAY (RFC 9114 §5.2): what runs finishes; new requests go to another connection.
    static int shutdown(nghttp3_conn*, int64_t, void* user) {
        of(user)->goaway_ = true;
        return 0;
    }

    static int acked_stream_data(nghttp3_conn*, int64_t, uint64_t len, void*, void* stream) {
        auto* st = static_cast<H3Stream*>(stream);
        if (!st)
            return 0;
        size_t left = static_cast<size_t>(len);
        while (left && !st->unacked.empty()) {
            size_t rest = st->unacked.front().size() - st->front_acked;
            size_t n = std::min(rest, left);
            st->front_acked += n;
            st->unacked_bytes -= n;
            left -= n;
            if (st->front_acked == st->unacked.front().size()) {
                st->unacked.pop_front();
                st->front_acked = 0;
            }
        }
        return 0;
    }

    // The request body's next bytes: copied out of the client's reader into the stream's
    // unacknowledged chunks, which nghttp3 sends from (and resends from, until acked).
    static nghttp3_ssize read_data(nghttp3_conn*, int64_t, nghttp3_vec* vec, size_t veccnt,
                                   uint32_t* flags, void*, void* stream) {
        auto* st = static_cast<H3Stream*>(stream);
        if (!st || !st->exchange || veccnt == 0)
            return NGHTTP3_ERR_WOULDBLOCK; // cancelled: the reset follows
        if (st->unacked_bytes >= kMaxUnacked) {
            st->body_blocked = true; // resumed once the server acknowledged some
            return NGHTTP3_ERR_WOULDBLOCK;
        }
        std::string chunk;
        bool eof = false;
        if (!st->exchange->pull_body(chunk, kBodyChunk, &eof))
            return NGHTTP3_ERR_WOULDBLOCK; // the exchange failed: it resets the stream
        if (eof)
            *flags |= NGHTTP3_DATA_FLAG_EOF;
        if (chunk.empty())
            return eof ? 0 : NGHTTP3_ERR_WOULDBLOCK;
        st->unacked_bytes += chunk.size();
        st->unacked.push_back(std::move(chunk));
        vec[0].base = reinterpret_cast<uint8_t*>(st->unacked.back().data());
        vec[0].len = st->unacked.back().size();
        return 1;
    }

    static nghttp3_callbacks http() {
        nghttp3_callbacks cb{};
        cb.acked_stream_data = acked_stream_data;
        cb.stream_close = http_stream_close;
        cb.recv_data = recv_data;
        cb.deferred_consume = deferred_consume;
        cb.recv_header = recv_header;
        cb.end_headers = end_headers;
        cb.recv_trailer = recv_header; // trailer fields reach on_field after the body
        cb.end_trailers = end_trailers;
        cb.stop_sending = stop_sending;
        cb.end_stream = end_stream;
        cb.reset_stream = reset_stream;
        cb.shutdown = shutdown;
        return cb;
    }
};

H3Session::H3Session(H3Sessions& owner, UpstreamPool& pool, struct ev_loop* loop,
                     const UpstreamConfig& up, size_t server)
    : owner_(owner), pool_(pool), up_(up), server_(server), loop_(loop) {
    ev_init(&read_io_, on_read);
    read_io_.data = this;
    ev_init(&write_io_, on_write);
    write_io_.data = this;
    ev_init(&expiry_, on_expiry);
    expiry_.data = this;
    ev_init(&deadline_, on_deadline);
    deadline_.data = this;
    ngtcp2_ccerr_default(&last_error_);
}

H3Session::~H3Session() {
    if (state_ != State::dead)
        send_close(); // the worker is going: tell the server (H3_NO_ERROR)
    if (dns_wait_)
        pool_.cancel_wait(up_, server_, dns_wait_);
    ev_io_stop(loop_, &read_io_);
    ev_io_stop(loop_, &write_io_);
    ev_clear_pending(loop_, &write_io_);
    ev_timer_stop(loop_, &expiry_);
    ev_timer_stop(loop_, &deadline_);
    if (http_)
        nghttp3_conn_del(http_);
    if (conn_)
        ngtcp2_conn_del(conn_);
    if (tls_)
        gnutls_deinit(tls_);
    if (fd_ >= 0)
        ::close(fd_);
}

std::string H3Session::where() const {
    return "upstream \"" + up_.name + "\" server " + up_.servers[server_].address;
}

bool H3Session::has_room() const {
    uint64_t max = kAssumedStreams;
    if (conn_ && handshake_done_)
        max = ngtcp2_conn_get_remote_transport_params(conn_)->initial_max_streams_bidi;
    return streams_.size() + waiting_.size() < max;
}

void H3Session::start() {
    started_us_ = monotonic_us();
    // connect_timeout covers DNS and the whole QUIC handshake.
    ev_timer_set(&deadline_, static_cast<double>(up_.connect_timeout.count()) / 1000.0, 0.);
    ev_timer_start(loop_, &deadline_);
    const UpstreamServer& s = up_.servers[server_];
    if (s.host.empty())
        return connect({s.addr});
    auto* addrs = pool_.addresses(
        loop_, up_, server_,
        [this](const std::string& error) {
            dns_wait_ = 0;
            if (!error.empty())
                return die("cannot resolve " + up_.servers[server_].address + ": " + error);
            uint64_t unused = 0;
            auto* list = pool_.addresses(loop_, up_, server_, nullptr, &unused);
            connect(list ? *list : std::vector<sockaddr_storage>{});
        },
        &dns_wait_);
    if (addrs)
        connect(*addrs);
}

void H3Session::connect(const std::vector<sockaddr_storage>& addrs) {
    if (addrs.empty())
        return die("no address to connect to for " + where());
    std::string error;
    // The first address of the answer (IPv6 first, as Happy Eyeballs orders them): QUIC
    // offers no cheap parallel attempt, and the deadline bounds a silent one.
    if (!open_connection(addrs.front(), error))
        return die("QUIC to " + where() + ": " + error);
    state_ = State::handshaking;
    flush();
}

bool H3Session::open_connection(const sockaddr_storage& addr, std::string& error) {
    const int family = addr.ss_family;
    remote_ = addr;
    remote_len_ = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    fd_ = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return false;
    }
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&remote_), remote_len_) != 0) {
        error = std::string("connect: ") + std::strerror(errno);
        return false;
    }
    local_len_ = sizeof local_;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local_), &local_len_) != 0) {
        error = std::string("getsockname: ") + std::strerror(errno);
        return false;
    }
    conn_ref_.get_conn = H3Callbacks::get_conn;
    conn_ref_.user_data = this;
    ngtcp2_cid scid, dcid;
    scid.datalen = 16;
    dcid.datalen = 18;
    if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0 ||
        gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) != 0) {
        error = "cannot generate connection IDs";
        return false;
    }
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = quic_now_ns();
    settings.handshake_timeout =
        static_cast<uint64_t>(up_.connect_timeout.count()) * NGTCP2_MILLISECONDS;
    settings.max_window = kConnectionWindow * 2;
    settings.max_stream_window = kMaxStreamWindow;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_local = kStreamWindow;
    params.initial_max_stream_data_uni = 256 * 1024;
    params.initial_max_data = kConnectionWindow;
    params.initial_max_streams_bidi = 0; // the server opens none towards us
    params.initial_max_streams_uni = 8;  // its control and QPACK streams, and grease
    params.max_idle_timeout = kIdleTimeout;
    params.active_connection_id_limit = 4;
    ngtcp2_path path{{reinterpret_cast<sockaddr*>(&local_), local_len_},
                     {reinterpret_cast<sockaddr*>(&remote_), remote_len_},
                     nullptr};
    static const ngtcp2_callbacks callbacks = H3Callbacks::quic();
    if (int rv = ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                                        &callbacks, &settings, &params, nullptr, this);
        rv != 0) {
        error = std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv);
        return false;
    }
    tls_ = up_.tls->quic_context->new_session(up_.servers[server_], peer_, error);
    if (!tls_)
        return false;
    gnutls_session_set_ptr(tls_, &conn_ref_);
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);
    ngtcp2_conn_set_keep_alive_timeout(conn_, kKeepAlive);
    ev_io_set(&read_io_, fd_, EV_READ);
    ev_io_start(loop_, &read_io_);
    ev_io_set(&write_io_, fd_, EV_WRITE);
    return true;
}

bool H3Session::setup_http() {
    if (http_)
        return true;
    if (ngtcp2_conn_get_streams_uni_left(conn_) < 3) {
        http_error_ = "the server allows fewer than the 3 unidirectional streams HTTP/3 needs";
        return false;
    }
    static const nghttp3_callbacks callbacks = H3Callbacks::http();
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 100;
    if (nghttp3_conn_client_new(&http_, &callbacks, &settings, nghttp3_mem_default(), this) != 0) {
        http_error_ = "nghttp3_conn_client_new failed";
        return false;
    }
    // Control stream and the QPACK encoder/decoder pair (RFC 9114 §6.2, RFC 9204 §4.2).
    int64_t control, encoder, decoder;
    if (ngtcp2_conn_open_uni_stream(conn_, &control, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &encoder, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &decoder, nullptr) != 0 ||
        nghttp3_conn_bind_control_stream(http_, control) != 0 ||
        nghttp3_conn_bind_qpack_streams(http_, encoder, decoder) != 0) {
        http_error_ = "cannot open the HTTP/3 control streams";
        return false;
    }
    return true;
}

void H3Session::add(H3Exchange* x) {
    waiting_.push_back(x);
    if (state_ == State::ready) {
        ev_timer_stop(loop_, &deadline_); // not idle any more
        schedule_flush();                 // serve_waiting runs there, outside the caller
    }
}

void H3Session::remove(H3Exchange* x) {
    std::erase(waiting_, x);
    maybe_idle();
}

int64_t H3Session::submit(H3Exchange* x, const nghttp3_nv* nva, size_t count, bool body) {
    if (state_ != State::ready || !http_)
        return -1;
    int64_t id = -1;
    if (ngtcp2_conn_open_bidi_stream(conn_, &id, nullptr) != 0)
        return -1;
    auto st = std::make_unique<H3Stream>();
    st->exchange = x;
    static const nghttp3_data_reader reader{H3Callbacks::read_data};
    if (nghttp3_conn_submit_request(http_, id, nva, count, body ? &reader : nullptr, st.get()) !=
        0) {
        ngtcp2_conn_shutdown_stream(conn_, 0, id, NGHTTP3_H3_INTERNAL_ERROR);
        return -1;
    }
    streams_.emplace(id, std::move(st));
    // keepalive_requests: this connection takes no more; it closes once they are done.
    if (++streams_opened_ >= up_.keepalive_requests)
        goaway_ = true;
    schedule_flush();
    return id;
}

void H3Session::resume(int64_t id) {
    if (http_ && state_ != State::dead && nghttp3_conn_resume_stream(http_, id) == 0)
        schedule_flush();
}

void H3Session::consume(int64_t id, size_t n) {
    if (conn_ && state_ != State::dead && n) {
        ngtcp2_conn_extend_max_stream_offset(conn_, id, n);
        schedule_flush();
    }
}

void H3Session::release(int64_t id) {
    auto it = streams_.find(id);
    if (it != streams_.end())
        it->second->exchange = nullptr;
}

void H3Session::cancel(int64_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end())
        return;
    it->second->exchange = nullptr; // its events reach no one; its buffers stay till close
    if (state_ == State::dead)
        return;
    cancels_.push_back(id);
    if (!in_io_)
        after_io();
    schedule_flush();
}

void H3Session::on_deadline(struct ev_loop*, ev_timer* w, int) {
    auto* s = static_cast<H3Session*>(w->data);
    if (s->state_ != State::ready)
        return s->die("QUIC handshake with " + s->where() + " timed out (" +
                          std::to_string(s->up_.connect_timeout.count()) + " ms)",
                      s->state_ == State::handshaking);
    s->die({}); // idle for keepalive_timeout
}

int H3Session::on_stream_data(uint32_t flags, int64_t id, const uint8_t* data, size_t len) {
    if (!http_)
        return 0;
    nghttp3_ssize consumed =
        nghttp3_conn_read_stream(http_, id, data, len, flags & NGTCP2_STREAM_DATA_FLAG_FIN);
    if (consumed < 0) {
        http_error_ = nghttp3_strerror(static_cast<int>(consumed));
        ngtcp2_ccerr_set_application_error(
            &last_error_, nghttp3_err_infer_quic_app_error_code(static_cast<int>(consumed)),
            nullptr, 0);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    // Framing and header bytes; body bytes come back through recv_data and consume().
    ngtcp2_conn_extend_max_stream_offset(conn_, id, static_cast<uint64_t>(consumed));
    ngtcp2_conn_extend_max_offset(conn_, static_cast<uint64_t>(consumed));
    return 0;
}

int H3Session::on_acked(int64_t id, uint64_t len) {
    if (!http_)
        return 0;
    if (int rv = nghttp3_conn_add_ack_offset(http_, id, len); rv != 0) {
        http_error_ = nghttp3_strerror(rv);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    auto it = streams_.find(id);
    if (it != streams_.end() && it->second->body_blocked &&
        it->second->unacked_bytes < kMaxUnacked) {
        it->second->body_blocked = false;
        nghttp3_conn_resume_stream(http_, id);
    }
    return 0;
}

void H3Session::on_http_stream_close(int64_t id, uint64_t app_error, H3Stream* st) {
    auto it = streams_.find(id);
    std::unique_ptr<H3Stream> owned;
    if (it != streams_.end()) {
        owned = std::move(it->second);
        streams_.erase(it);
    }
    if (st && st->exchange)
        st->exchange->on_stream_closed(app_error, {}, Failure::reset);
}

void H3Session::after_io() {
    if (state_ == State::dead)
        return;
    for (int64_t id : cancels_)
        ngtcp2_conn_shutdown_stream(conn_, 0, id, NGHTTP3_H3_REQUEST_CANCELLED);
    cancels_.clear();
    if (state_ == State::handshaking && handshake_done_ && http_) {
        state_ = State::ready;
        ev_timer_stop(loop_, &deadline_);
        UpstreamMetrics& metrics = owner_.metrics();
        metrics.observe_connect(metrics.slots(up_).upstream, monotonic_us() - started_us_);
    }
    serve_waiting();
}

void H3Session::schedule_flush() {
    if (state_ != State::dead && fd_ >= 0)
        ev_feed_event(loop_, &write_io_, EV_WRITE);
}

void H3Session::serve_waiting() {
    while (state_ == State::ready && usable() && !waiting_.empty() &&
           ngtcp2_conn_get_streams_bidi_left(conn_) > 0) {
        H3Exchange* x = waiting_.front();
        waiting_.erase(waiting_.begin());
        x->session_ready(*this);
    }
    if (!waiting_.empty() && state_ != State::dead && goaway_) {
        // A GOAWAY came: the waiting go to another connection.
        std::vector<H3Exchange*> moved = std::move(waiting_);
        waiting_.clear();
        for (H3Exchange* x : moved)
            x->session_failed({}, false);
    }
    maybe_idle();
}

void H3Session::maybe_idle() {
    if (state_ != State::ready || !streams_.empty() || !waiting_.empty())
        return;
    if (goaway_ || up_.keepalive == 0)
        return die({});
    if (ev_is_active(&deadline_))
        return;
    ev_timer_set(&deadline_, static_cast<double>(up_.keepalive_timeout.count()) / 1000.0, 0.);
    ev_timer_start(loop_, &deadline_);
}

void H3Session::die(const std::string& why, bool udp_blocked, Failure kind) {
    if (state_ == State::dead)
        return;
    if (state_ != State::ready)
        kind = Failure::connect; // the connection never carried a request
    send_close();
    state_ = State::dead;
    ev_io_stop(loop_, &read_io_);
    ev_io_stop(loop_, &write_io_);
    ev_clear_pending(loop_, &write_io_);
    ev_timer_stop(loop_, &expiry_);
    ev_timer_stop(loop_, &deadline_);
    const std::string reason = why.empty() ? "the QUIC connection closed" : why;
    std::vector<H3Exchange*> waiting = std::move(waiting_);
    waiting_.clear();
    std::vector<H3Exchange*> open;
    for (auto& [id, st] : streams_)
        if (st->exchange)
            open.push_back(std::exchange(st->exchange, nullptr));
    for (H3Exchange* x : waiting)
        x->session_failed(reason, udp_blocked, kind);
    for (H3Exchange* x : open)
        x->on_stream_closed(NGHTTP3_H3_INTERNAL_ERROR, reason, kind);
    owner_.closed(this);
}

// ---- the sessions of this worker -------------------------------------------------------------

H3Sessions::H3Sessions(struct ev_loop* loop, UpstreamPool& pool, UpstreamMetrics& metrics)
    : loop_(loop), pool_(pool), metrics_(metrics) {
    ev_prepare_init(&reaper_, on_reap);
    reaper_.data = this;
}

H3Sessions::~H3Sessions() {
    ev_prepare_stop(loop_, &reaper_);
    sessions_.clear();
    dead_.clear();
}

H3Session* H3Sessions::session_for(const UpstreamConfig& up, size_t server) {
    if (!rx_) { // the first HTTP/3 upstream request of this worker
        rx_ = std::make_unique<uint8_t[]>(kRxSize);
        tx_ = std::make_unique<uint8_t[]>(kTxSize);
    }
    for (auto& [key, s] : sessions_)
        if (key.up == &up && key.server == server && s->usable() && s->has_room())
            return s.get();
    sessions_.emplace_back(Key{&up, server},
                           std::make_unique<H3Session>(*this, pool_, loop_, up, server));
    H3Session* s = sessions_.back().second.get();
    s->start();
    return s;
}

void H3Sessions::closed(H3Session* s) {
    auto it = std::find_if(sessions_.begin(), sessions_.end(),
                           [s](const auto& p) { return p.second.get() == s; });
    if (it == sessions_.end())
        return;
    dead_.push_back(std::move(it->second));
    sessions_.erase(it);
    ev_prepare_start(loop_, &reaper_);
}

void H3Sessions::on_reap(struct ev_loop* loop, ev_prepare* w, int) {
    auto* self = static_cast<H3Sessions*>(w->data);
    self->dead_.clear();
    ev_prepare_stop(loop, w);
}

void H3Sessions::mark_udp_blocked(const UpstreamConfig& up, size_t server, const std::string& why) {
    ev_tstamp now = ev_now(loop_);
    ev_tstamp& until = blocked_until_[{&up, server}];
    if (until <= now)
        WLOG_WARN("proxy: %s; upstream \"%s\" server %s falls back to HTTP/2 over TCP for %.0f s",
                  why.c_str(), up.name.c_str(), up.servers[server].address.c_str(), kUdpRetry);
    until = now + kUdpRetry;
}

bool H3Sessions::udp_blocked(const UpstreamConfig& up, size_t server) const {
    auto it = blocked_until_.find({&up, server});
    return it != blocked_until_.end() && it->second > ev_now(loop_);
}

} // namespace wraith::proxy
