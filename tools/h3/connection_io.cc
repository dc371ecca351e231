// The packet half of Connection: datagrams in (recvmmsg batches fed to ngtcp2), packets out
// (GSO batches, with what the socket refuses kept for later), and the expiry timer.
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tools/h3/clock.h"
#include "tools/h3/connection.h"

namespace h3 {

namespace {

// GSO sends at most 64 segments and one IP datagram's worth of payload.
constexpr size_t kMaxSegments = 64;
constexpr size_t kMaxBatchBytes = 65000;

} // namespace

void Connection::on_readable(Endpoint& endpoint) {
    if (closed_) {
        return;
    }
    // A bounded number of batches per wake-up, so one busy connection can't starve others.
    for (int round = 0; round < 8 && !closing_; ++round) {
        int n = io_.receive(endpoint.fd);
        if (n < 0) {
            send_close_ = false;
            if (n == -ECONNREFUSED) {
                fail(refused_reason());
            } else {
                fail(std::string("receive: ") + std::strerror(-n));
            }
            break;
        }
        for (int i = 0; i < n && !closing_; ++i) {
            feed(endpoint, i);
        }
        if (static_cast<size_t>(n) < PacketIo::kBatch) {
            break;
        }
    }
    after_event();
}

void Connection::feed(Endpoint& endpoint, int i) {
    ngtcp2_path path{{endpoint.local.get(), endpoint.local.len},
                     {const_cast<sockaddr*>(io_.source(i)), io_.source_len(i)},
                     &endpoint};
    ngtcp2_pkt_info info{};
    int rv = ngtcp2_conn_read_pkt(conn_, &path, &info, io_.data(i), io_.size(i), now_ns());
    if (rv != 0) {
        fail_read(rv);
    }
}

bool Connection::add_write_offset(int64_t stream_id, ngtcp2_ssize n) {
    if (raw_) {
        raw_->http_sent(stream_id, static_cast<size_t>(n));
    }
    if (int rv = nghttp3_conn_add_write_offset(http_, stream_id, static_cast<size_t>(n)); rv != 0) {
        set_app_error(rv);
        fail(std::string("HTTP/3 error: ") + nghttp3_strerror(rv));
        return false;
    }
    return true;
}

bool Connection::write_packets() {
    if (!unsent_.empty()) {
        return true; // the socket is full; write_cb resumes
    }
    auto ts = now_ns();
    size_t max_payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
    size_t max_packets = ngtcp2_conn_get_send_quantum(conn_) / max_payload;
    if (max_packets == 0) {
        max_packets = 1;
    }
    uint8_t* buffer = io_.tx();
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info info;
    Endpoint* batch_endpoint = nullptr;
    size_t batch_len = 0;
    size_t segment = 0;
    size_t segments = 0;
    size_t packets = 0;
    nghttp3_vec vec[16];

    for (;;) {
        int64_t stream_id = -1;
        int fin = 0;
        nghttp3_ssize nvec = 0;
        if (http_ && ngtcp2_conn_get_max_data_left(conn_)) {
            nvec = nghttp3_conn_writev_stream(http_, &stream_id, &fin, vec, std::size(vec));
            if (nvec < 0) {
                set_app_error(static_cast<int>(nvec));
                fail(std::string("HTTP/3 error: ") + nghttp3_strerror(static_cast<int>(nvec)));
                return false;
            }
        }
        // Raw mode (raw.h): nghttp3's decoder stream vanishes; raw bytes go when nghttp3 is
        // idle, so they follow what it wrote on a stream they share.
        bool from_raw = false;
        if (raw_ && stream_id == RawStreams::kPhantomStream) {
            if (!swallow_phantom(vec, static_cast<size_t>(nvec))) {
                return false;
            }
            continue;
        }
        if (raw_ && stream_id < 0 && ngtcp2_conn_get_max_data_left(conn_)) {
            bool raw_fin = false;
            from_raw = raw_->next(stream_id, vec[0], raw_fin);
            nvec = from_raw && vec[0].len > 0 ? 1 : 0;
            fin = raw_fin ? 1 : 0;
        }
        uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
        if (fin) {
            flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        ngtcp2_ssize ndatalen = -1;
        auto n = ngtcp2_conn_writev_stream(
            conn_, &ps.path, &info, buffer + batch_len, max_payload, &ndatalen, flags, stream_id,
            reinterpret_cast<const ngtcp2_vec*>(vec), static_cast<size_t>(nvec), ts);
        if (n < 0) {
            if (from_raw && n == NGTCP2_ERR_STREAM_NOT_FOUND) {
                raw_->stop(stream_id); // reset and closed meanwhile: the rest has nowhere to go
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                if (from_raw) {
                    raw_->set_blocked(stream_id, true);
                } else {
                    nghttp3_conn_block_stream(http_, stream_id);
                }
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                if (from_raw) {
                    raw_->stop(stream_id);
                } else {
                    nghttp3_conn_shutdown_stream_write(http_, stream_id);
                }
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (from_raw) {
                    raw_->sent(stream_id, static_cast<size_t>(ndatalen));
                } else if (!add_write_offset(stream_id, ndatalen)) {
                    return false;
                }
                continue;
            }
            ngtcp2_ccerr_set_liberr(&last_error_, static_cast<int>(n), nullptr, 0);
            fail(std::string("QUIC error: ") + ngtcp2_strerror(static_cast<int>(n)));
            return false;
        }
        if (ndatalen >= 0 && from_raw) {
            raw_->sent(stream_id, static_cast<size_t>(ndatalen));
        } else if (ndatalen >= 0 && !add_write_offset(stream_id, ndatalen)) {
            return false;
        }
        if (n == 0) {
            break;
        }
        auto* endpoint = static_cast<Endpoint*>(ps.path.user_data);
        if (!endpoint) {
            endpoint = endpoints_.front().get();
        }
        auto len = static_cast<size_t>(n);
        if (batch_len > 0 && (endpoint != batch_endpoint || len > segment)) {
            // This packet can't join the batch (other path, or larger): send the batch first.
            if (!send_batch(batch_endpoint, buffer, batch_len, segment)) {
                queue_unsent(endpoint, buffer + batch_len, len, len);
                ngtcp2_conn_update_pkt_tx_time(conn_, ts);
                return !closing_;
            }
            std::memmove(buffer, buffer + batch_len, len);
            batch_len = 0;
        }
        if (batch_len == 0) {
            batch_endpoint = endpoint;
            segment = len;
            segments = 0;
        }
        batch_len += len;
        ++segments;
        ++packets;
        // A shorter packet ends a GSO batch: every segment but the last has the same size.
        if (len < segment || segments == kMaxSegments || batch_len + max_payload > kMaxBatchBytes ||
            packets >= max_packets) {
            bool sent = send_batch(batch_endpoint, buffer, batch_len, segment);
            batch_len = 0;
            if (!sent) {
                ngtcp2_conn_update_pkt_tx_time(conn_, ts);
                return !closing_;
            }
            if (packets >= max_packets) {
                // Send quantum used: let reads and other connections run, then go on.
                ngtcp2_conn_update_pkt_tx_time(conn_, ts);
                arm_write_watcher(batch_endpoint);
                return true;
            }
        }
    }
    if (batch_len > 0 && !send_batch(batch_endpoint, buffer, batch_len, segment)) {
        ngtcp2_conn_update_pkt_tx_time(conn_, ts);
        return !closing_;
    }
    ngtcp2_conn_update_pkt_tx_time(conn_, ts);
    return true;
}

bool Connection::send_batch(Endpoint* endpoint, const uint8_t* data, size_t len, size_t segment) {
    auto n = io_.send(endpoint->fd, data, len, segment);
    if (n == static_cast<ssize_t>(len)) {
        return true;
    }
    if (n == -EMSGSIZE) {
        return true; // a path MTU probe too large for the route: it counts as lost
    }
    if (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK) {
        send_close_ = false;
        fail(n == -ECONNREFUSED ? refused_reason()
                                : std::string("send: ") + std::strerror(static_cast<int>(-n)));
        return false;
    }
    size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
    queue_unsent(endpoint, data + sent, len - sent, segment);
    return false;
}

void Connection::queue_unsent(Endpoint* endpoint, const uint8_t* data, size_t len, size_t segment) {
    unsent_.push_back(Unsent{endpoint, segment, std::vector<uint8_t>(data, data + len)});
    arm_write_watcher(unsent_.front().endpoint);
}

bool Connection::send_unsent() {
    while (!unsent_.empty()) {
        auto& chunk = unsent_.front();
        auto n =
            io_.send(chunk.endpoint->fd, chunk.bytes.data(), chunk.bytes.size(), chunk.segment);
        if (n == static_cast<ssize_t>(chunk.bytes.size()) || n == -EMSGSIZE) {
            unsent_.erase(unsent_.begin());
            continue;
        }
        if (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK) {
            send_close_ = false;
            fail(std::string("send: ") + std::strerror(static_cast<int>(-n)));
            return false;
        }
        if (n > 0) {
            chunk.bytes.erase(chunk.bytes.begin(), chunk.bytes.begin() + n);
        }
        arm_write_watcher(chunk.endpoint);
        return false;
    }
    return true;
}

void Connection::arm_write_watcher(Endpoint* endpoint) {
    if (write_watcher_.fd != endpoint->fd) {
        ev_io_stop(loop_, &write_watcher_);
        ev_io_set(&write_watcher_, endpoint->fd, EV_WRITE);
    }
    ev_io_start(loop_, &write_watcher_);
}

void Connection::update_timer() {
    auto expiry = ngtcp2_conn_get_expiry(conn_);
    if (expiry == UINT64_MAX) {
        ev_timer_stop(loop_, &timer_);
        return;
    }
    auto now = now_ns();
    if (expiry <= now) {
        ev_timer_stop(loop_, &timer_);
        ev_feed_event(loop_, &timer_, EV_TIMER);
        return;
    }
    timer_.repeat = static_cast<ev_tstamp>(expiry - now) / NGTCP2_SECONDS;
    ev_timer_again(loop_, &timer_);
}

std::string Connection::refused_reason() const {
    // ICMP port unreachable, reported on the connected socket.
    auto where = format_address(remote_.get());
    return handshake_completed_ ? "the server went away (" + where + " port unreachable)"
                                : "connection refused: nothing answers on UDP " + where;
}

void Connection::send_connection_close() {
    if (!send_close_ || !conn_ || ngtcp2_conn_in_closing_period(conn_) ||
        ngtcp2_conn_in_draining_period(conn_)) {
        return;
    }
    send_close_ = false;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info info;
    auto n = ngtcp2_conn_write_connection_close(
        conn_, &ps.path, &info, io_.tx(), NGTCP2_MAX_UDP_PAYLOAD_SIZE, &last_error_, now_ns());
    if (n <= 0) {
        return;
    }
    auto* endpoint = static_cast<Endpoint*>(ps.path.user_data);
    if (!endpoint) {
        endpoint = endpoints_.front().get();
    }
    io_.send(endpoint->fd, io_.tx(), static_cast<size_t>(n), static_cast<size_t>(n));
}

} // namespace h3
