// The packet half of H3Session: datagrams in (fed to ngtcp2), packets out (one send(2) each;
// a datagram the socket refuses waits for EV_WRITE), the expiry timer, and how the library's
// read errors become log lines.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "modules/proxy/h3_session.h"

namespace wraith::proxy {

namespace {

constexpr int kReadRounds = 64; // datagrams per wake-up, so one session cannot starve others

std::string peer_close_text(const ngtcp2_ccerr& e) {
    if (e.type == NGTCP2_CCERR_TYPE_IDLE_CLOSE)
        return "closed the connection (idle)";
    std::string text = "closed the connection (";
    if (e.type == NGTCP2_CCERR_TYPE_APPLICATION) {
        char code[32];
        std::snprintf(code, sizeof code, "HTTP/3 error 0x%llx",
                      static_cast<unsigned long long>(e.error_code));
        text += code;
    } else {
        char code[32];
        std::snprintf(code, sizeof code, "QUIC error 0x%llx",
                      static_cast<unsigned long long>(e.error_code));
        text += code;
    }
    if (e.reasonlen > 0) {
        text += ": ";
        text.append(reinterpret_cast<const char*>(e.reason), std::min<size_t>(e.reasonlen, 200));
    }
    return text + ")";
}

} // namespace

uint64_t quic_now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * NGTCP2_SECONDS + static_cast<uint64_t>(ts.tv_nsec);
}

void H3Session::on_read(struct ev_loop*, ev_io* w, int) {
    static_cast<H3Session*>(w->data)->read_packets();
}

void H3Session::on_write(struct ev_loop* loop, ev_io* w, int) {
    auto* s = static_cast<H3Session*>(w->data);
    ev_io_stop(loop, w);
    if (s->state_ == State::dead)
        return;
    if (!s->blocked_.empty()) {
        std::vector<uint8_t> packet = std::move(s->blocked_);
        s->blocked_.clear();
        if (!s->send_packet(packet.data(), packet.size()))
            return;
        s->blocked_ = std::move(packet); // keeps its capacity for the next time
        s->blocked_.clear();
    }
    s->after_io();
    if (s->state_ != State::dead)
        s->flush();
}

void H3Session::on_expiry(struct ev_loop*, ev_timer* w, int) {
    auto* s = static_cast<H3Session*>(w->data);
    if (s->state_ == State::dead || !s->conn_)
        return;
    int rv = ngtcp2_conn_handle_expiry(s->conn_, quic_now_ns());
    if (rv == NGTCP2_ERR_IDLE_CLOSE || rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
        if (!s->handshake_done_)
            return s->die("QUIC handshake with " + s->where() + " got no answer", true);
        return s->die(s->streams_.empty() && s->waiting_.empty()
                          ? std::string()
                          : s->where() + ": the QUIC connection went idle");
    }
    if (rv != 0) {
        ngtcp2_ccerr_set_liberr(&s->last_error_, rv, nullptr, 0);
        return s->die(s->where() + ": QUIC error: " + ngtcp2_strerror(rv));
    }
    s->flush();
}

void H3Session::read_packets() {
    if (state_ == State::dead)
        return;
    uint8_t* buf = owner_.rx();
    in_io_ = true;
    for (int round = 0; round < kReadRounds; ++round) {
        ssize_t n = ::recv(fd_, buf, H3Sessions::kRxSize, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            in_io_ = false;
            if (errno == ECONNREFUSED) // ICMP port unreachable on the connected socket
                return die(where() + ": nothing answers on UDP (port unreachable)",
                           !handshake_done_);
            return die(where() + ": receive: " + std::strerror(errno));
        }
        ngtcp2_path path{{reinterpret_cast<sockaddr*>(&local_), local_len_},
                         {reinterpret_cast<sockaddr*>(&remote_), remote_len_},
                         nullptr};
        ngtcp2_pkt_info info{};
        int rv =
            ngtcp2_conn_read_pkt(conn_, &path, &info, buf, static_cast<size_t>(n), quic_now_ns());
        if (rv != 0) {
            in_io_ = false;
            return read_error(rv);
        }
    }
    in_io_ = false;
    after_io();
    if (state_ != State::dead)
        flush();
}

void H3Session::read_error(int liberr) {
    switch (liberr) {
    case NGTCP2_ERR_DRAINING: {
        const ngtcp2_ccerr* e = ngtcp2_conn_get_ccerr(conn_);
        bool quiet =
            streams_.empty() && waiting_.empty() &&
            (e->type == NGTCP2_CCERR_TYPE_IDLE_CLOSE ||
             (e->type == NGTCP2_CCERR_TYPE_APPLICATION && e->error_code == NGHTTP3_H3_NO_ERROR));
        return die(quiet ? std::string() : where() + " " + peer_close_text(*e));
    }
    case NGTCP2_ERR_CRYPTO: {
        std::string verify = quic_verify_failure(tls_);
        if (!verify.empty())
            return die("TLS handshake with " + where() + " failed: " + verify);
        auto alert = ngtcp2_conn_get_tls_alert(conn_);
        ngtcp2_ccerr_set_tls_alert(&last_error_, alert, nullptr, 0);
        const char* name = gnutls_alert_get_name(static_cast<gnutls_alert_description_t>(alert));
        return die("TLS handshake with " + where() + " failed: " + (name ? name : "error"));
    }
    case NGTCP2_ERR_DROP_CONN:
        return die(where() + ": QUIC connection dropped (stateless reset or bad packet)");
    case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
        return die(where() + " does not support QUIC version 1");
    case NGTCP2_ERR_CALLBACK_FAILURE:
        if (!http_error_.empty())
            return die(where() + " broke HTTP/3: " + http_error_, false, Failure::protocol);
        [[fallthrough]];
    default:
        if (last_error_.error_code == 0)
            ngtcp2_ccerr_set_liberr(&last_error_, liberr, nullptr, 0);
        return die(where() + ": QUIC error: " + ngtcp2_strerror(liberr));
    }
}

bool H3Session::send_packet(const uint8_t* data, size_t len) {
    for (;;) {
        ssize_t n = ::send(fd_, data, len, 0);
        if (n >= 0 || errno == EMSGSIZE)
            return true; // a too large PMTU probe counts as lost
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            blocked_.assign(data, data + len);
            ev_io_start(loop_, &write_io_);
            return false;
        }
        if (errno == ECONNREFUSED) {
            die(where() + ": nothing answers on UDP (port unreachable)", !handshake_done_);
            return false;
        }
        die(where() + ": send: " + std::strerror(errno));
        return false;
    }
}

void H3Session::flush() {
    if (state_ == State::dead || !conn_ || !blocked_.empty())
        return;
    const uint64_t ts = quic_now_ns();
    uint8_t* buf = owner_.tx();
    const size_t max_payload =
        std::min(ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_), H3Sessions::kTxSize);
    size_t quantum = ngtcp2_conn_get_send_quantum(conn_) / max_payload;
    size_t packets = 0;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info info;
    nghttp3_vec vec[16];
    for (;;) {
        int64_t id = -1;
        int fin = 0;
        nghttp3_ssize nvec = 0;
        if (http_ && ngtcp2_conn_get_max_data_left(conn_)) {
            in_io_ = true;
            nvec = nghttp3_conn_writev_stream(http_, &id, &fin, vec, std::size(vec));
            in_io_ = false;
            if (nvec < 0) {
                ngtcp2_ccerr_set_application_error(
                    &last_error_, nghttp3_err_infer_quic_app_error_code(static_cast<int>(nvec)),
                    nullptr, 0);
                return die(where() + ": HTTP/3 error: " + nghttp3_strerror(static_cast<int>(nvec)),
                           false, Failure::protocol);
            }
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (fin)
            flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        ngtcp2_ssize ndatalen = -1;
        in_io_ = true;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(
            conn_, &ps.path, &info, buf, max_payload, &ndatalen, flags, id,
            reinterpret_cast<const ngtcp2_vec*>(vec), static_cast<size_t>(nvec), ts);
        in_io_ = false;
        if (n < 0) {
            int rv = 0;
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                nghttp3_conn_block_stream(http_, id);
            } else if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                nghttp3_conn_shutdown_stream_write(http_, id);
            } else if (n == NGTCP2_ERR_WRITE_MORE) {
                rv = nghttp3_conn_add_write_offset(http_, id, static_cast<size_t>(ndatalen));
            } else {
                ngtcp2_ccerr_set_liberr(&last_error_, static_cast<int>(n), nullptr, 0);
                return die(where() + ": QUIC error: " + ngtcp2_strerror(static_cast<int>(n)));
            }
            if (rv != 0)
                return die(where() + ": HTTP/3 error: " + nghttp3_strerror(rv), false,
                           Failure::protocol);
            continue;
        }
        if (ndatalen >= 0) {
            if (int rv = nghttp3_conn_add_write_offset(http_, id, static_cast<size_t>(ndatalen));
                rv != 0)
                return die(where() + ": HTTP/3 error: " + nghttp3_strerror(rv), false,
                           Failure::protocol);
        }
        if (n == 0)
            break;
        if (!send_packet(buf, static_cast<size_t>(n))) {
            if (state_ != State::dead)
                ngtcp2_conn_update_pkt_tx_time(conn_, ts);
            return;
        }
        if (++packets >= std::max<size_t>(quantum, 1)) {
            // The send quantum is used: other work runs, then this resumes.
            ngtcp2_conn_update_pkt_tx_time(conn_, ts);
            schedule_flush();
            return update_timer();
        }
    }
    ngtcp2_conn_update_pkt_tx_time(conn_, ts);
    update_timer();
}

void H3Session::update_timer() {
    uint64_t expiry = ngtcp2_conn_get_expiry(conn_);
    if (expiry == UINT64_MAX) {
        ev_timer_stop(loop_, &expiry_);
        return;
    }
    uint64_t now = quic_now_ns();
    double after = expiry <= now ? 0. : static_cast<double>(expiry - now) / NGTCP2_SECONDS;
    ev_timer_stop(loop_, &expiry_);
    ev_timer_set(&expiry_, after, 0.);
    ev_timer_start(loop_, &expiry_);
}

void H3Session::send_close() {
    if (!conn_ || !handshake_done_ || ngtcp2_conn_in_closing_period(conn_) ||
        ngtcp2_conn_in_draining_period(conn_))
        return;
    if (last_error_.error_code == 0 && last_error_.type == NGTCP2_CCERR_TYPE_TRANSPORT)
        ngtcp2_ccerr_set_application_error(&last_error_, NGHTTP3_H3_NO_ERROR, nullptr, 0);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info info;
    uint8_t* buf = owner_.tx();
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
        conn_, &ps.path, &info, buf, H3Sessions::kTxSize, &last_error_, quic_now_ns());
    if (n > 0)
        (void)::send(fd_, buf, static_cast<size_t>(n), 0);
}

} // namespace wraith::proxy
