#include "worker/stream/connection.h"

#include <cerrno>
#include <cstring>
#include <sys/uio.h>

#include "common/log.h"
#include "worker/worker.h"

namespace wraith::stream {

Connection::Connection(Worker& worker, std::unique_ptr<Transport> transport,
                       const sockaddr_storage& peer, const ListenConfig& listen,
                       const StreamHandler& handler)
    : worker_(worker), transport_(std::move(transport)), fd_(transport_->fd()),
      arena_(&worker.arena_blocks()), handler_(handler) {
    peer_.init(peer, *transport_, worker.next_connection_id());
    io_init(io_, on_io, this);
}

Connection::~Connection() {
    io_stop(worker_.loop(), io_);
    if (rbuf_)
        worker_.read_buffers().put(rbuf_);
    // The arena runs the handler's cleanups; the transport closes the socket.
}

void Connection::start() {
    update_io();
    if (transport_->buffered() > 0) { // bytes that came with the end of the TLS handshake
        read_pending_ = true;
        worker_.defer(this);
    }
    StreamSession session{peer_.info, *this, *this, arena_, worker_.loop(), worker_.modules()};
    handler_.handle(session);
}

// ---- event plumbing ------------------------------------------------------------------------

void Connection::update_io() {
    if (closed_)
        return;
    int events = 0;
    if (!in_done_ && !in_failed_ && (!in_paused_ || discarding_) && rpos_ == rlen_)
        events |= EV_READ;
    if (seg_head_ < segs_.size())
        events |= EV_WRITE | transport_->wait_events(false);
    if (events != io_events_) {
        io_events_ = events;
        io_set(worker_.loop(), io_, fd_, events);
    }
}

void Connection::on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* c = static_cast<Connection*>(w->data);
    if (revents & EV_WRITE)
        c->flush();
    if ((revents & EV_READ) && !c->closed_)
        c->read_some();
}

void Connection::run_deferred() {
    if (closed_) {
        // The handler hears that the client is gone outside its own call stack, then the
        // connection goes (its arena runs the handler's cleanups).
        Callback cb = std::move(abort_cb_);
        if (abort_pending_ && cb)
            cb();
        delete this;
        return;
    }
    if (read_pending_) {
        read_pending_ = false;
        read_some();
        if (closed_)
            return;
    }
    if (data_pending_) {
        data_pending_ = false;
        if (data_cb_ && (!in_paused_ || finished() || in_failed_)) {
            Callback cb = data_cb_; // the callback may replace itself
            cb();
            if (closed_)
                return;
        }
    }
    if (writable_pending_) {
        writable_pending_ = false;
        if (writable_cb_ && !out_ended_) {
            Callback cb = writable_cb_;
            cb();
        }
    }
}

// ---- the client's bytes --------------------------------------------------------------------

void Connection::read_some() {
    if (closed_ || in_done_ || in_failed_ || rpos_ < rlen_)
        return;
    BufferPool& pool = worker_.read_buffers();
    if (!rbuf_ && !(rbuf_ = pool.get()))
        return end(true); // out of memory: nothing sensible to do with this connection
    ssize_t n = transport_->read(rbuf_, pool.buffer_size());
    if (n > 0) {
        rpos_ = 0;
        rlen_ = static_cast<size_t>(n);
        if (discarding_) {
            rpos_ = rlen_ = 0;
        }
    } else if (n == 0) {
        in_done_ = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        update_io();
        return;
    } else {
        in_failed_ = true;
    }
    if (rpos_ == rlen_ && rbuf_) {
        pool.put(rbuf_); // nothing waits: the buffer goes back until bytes come
        rbuf_ = nullptr;
    }
    if (in_failed_)
        return end(true);
    update_io();
    if (transport_->buffered() > 0 && rpos_ == rlen_ && !in_done_) {
        read_pending_ = true; // TLS has decrypted more than the last read took
        worker_.defer(this);
    }
    if ((rlen_ > rpos_ || in_done_) && !discarding_) {
        data_pending_ = true;
        worker_.defer(this);
    }
    if (in_done_ && out_shut_)
        end(false);
}

std::string_view Connection::peek() {
    return rbuf_ ? std::string_view(rbuf_ + rpos_, rlen_ - rpos_) : std::string_view();
}

void Connection::consume(size_t n) {
    rpos_ += std::min(n, rlen_ - rpos_);
    if (rpos_ == rlen_) {
        rpos_ = rlen_ = 0;
        if (rbuf_) {
            worker_.read_buffers().put(rbuf_);
            rbuf_ = nullptr;
        }
        update_io();
        if (transport_->buffered() > 0 && !read_pending_) {
            read_pending_ = true;
            worker_.defer(this);
        }
    }
}

void Connection::pause() {
    in_paused_ = true;
    update_io();
}

void Connection::resume() {
    in_paused_ = false;
    update_io();
    if (rlen_ > rpos_ || in_done_) {
        data_pending_ = true;
        worker_.defer(this);
    }
}

void Connection::discard() {
    discarding_ = true;
    data_cb_ = nullptr;
    rpos_ = rlen_ = 0;
    update_io();
}

// ---- our bytes -----------------------------------------------------------------------------

void Connection::send_headers(ResponseHead&, bool end_stream) {
    if (end_stream)
        send_body({}, true); // no head on a stream; only its end means something
}

size_t Connection::queued() const {
    return out_.size() - out_sent_;
}

ResponseWriter::Result Connection::writer_state() {
    if (closed_)
        return Result::closed;
    if (!out_ended_ && queued() >= kHighWatermark) {
        writable_wanted_ = true;
        return Result::blocked;
    }
    return Result::ok;
}

ResponseWriter::Result Connection::send_body(std::string_view data, bool end_stream) {
    if (closed_ || out_ended_)
        return Result::closed;
    if (!data.empty()) {
        size_t start = out_.size();
        out_.append(data);
        if (seg_head_ < segs_.size() && segs_.back().fd < 0 &&
            static_cast<size_t>(segs_.back().offset) + segs_.back().len == start)
            segs_.back().len += data.size();
        else
            segs_.push_back({-1, static_cast<off_t>(start), data.size()});
    }
    out_ended_ = end_stream;
    flush();
    return writer_state();
}

ResponseWriter::Result Connection::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    if (closed_ || out_ended_)
        return Result::closed;
    if (len)
        segs_.push_back({fd, offset, len});
    out_ended_ = end_stream;
    flush();
    return writer_state();
}

void Connection::flush() {
    while (!closed_ && seg_head_ < segs_.size()) {
        Segment& s = segs_[seg_head_];
        ssize_t n;
        if (s.fd < 0) {
            iovec iov[16];
            int cnt = 0;
            for (size_t i = seg_head_; i < segs_.size() && cnt < 16 && segs_[i].fd < 0; ++i)
                iov[cnt++] = {out_.data() + segs_[i].offset, segs_[i].len};
            n = transport_->write(iov, cnt, false);
            if (n > 0) {
                out_sent_ += static_cast<size_t>(n);
                sent_ += static_cast<uint64_t>(n);
                for (size_t left = static_cast<size_t>(n); left > 0;) {
                    Segment& m = segs_[seg_head_];
                    size_t take = std::min(left, m.len);
                    m.offset += static_cast<off_t>(take);
                    m.len -= take;
                    left -= take;
                    if (m.len == 0)
                        ++seg_head_;
                }
            }
        } else {
            off_t off = s.offset;
            n = transport_->send_file(s.fd, &off, std::min<size_t>(s.len, 1 << 20));
            if (n > 0) {
                s.offset += n;
                s.len -= static_cast<size_t>(n);
                sent_ += static_cast<uint64_t>(n);
                if (s.len == 0)
                    ++seg_head_;
            } else if (n == 0) {
                return end(true); // the file shrank under us
            }
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return end(true); // the client is gone
        }
    }
    if (closed_)
        return;
    if (seg_head_ == segs_.size()) {
        segs_.clear();
        seg_head_ = 0;
        out_.clear();
        out_sent_ = 0;
        if (out_ended_ && !out_shut_) {
            out_shut_ = true;
            transport_->shutdown_write();
            if (in_done_)
                return end(false);
        }
    }
    update_io();
    if (writable_wanted_ && queued() < kLowWatermark) {
        writable_wanted_ = false;
        writable_pending_ = true;
        worker_.defer(this);
    }
}

void Connection::reset() {
    if (!closed_)
        end(false); // the handler chose to close: its own abort callback is not for this
}

void Connection::close_now() {
    if (!closed_)
        end(true);
}

void Connection::end(bool aborted) {
    closed_ = true;
    abort_pending_ = aborted;
    io_stop(worker_.loop(), io_);
    io_events_ = 0;
    data_cb_ = nullptr;
    writable_cb_ = nullptr;
    worker_.remove_connection(this);
    worker_.defer(this);
}

} // namespace wraith::stream
