// The HTTP/1.1 connection's output queue: what the exchange queued (memory and file ranges),
// written with writev and sendfile (or the TLS transport's equivalents), with backpressure.
#include "worker/http1/connection.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/log.h"
#include "common/spares.h"
#include "worker/worker.h"

namespace wraith::http1 {

namespace {

// Output buffers of idle and closed connections, for the next response (common/spares.h).
// A buffer that grew past 16 KiB (a large head or body chunk) is freed instead.
using KeptOutput = Spares<std::string, 256, 16 * 1024>;
using KeptSegments = Spares<std::vector<OutputSegment>, 256, 16 * 1024>;

} // namespace

std::string& Connection::out_mem() {
    KeptOutput::take(out_);
    return out_;
}

void Connection::take_segments() {
    KeptSegments::take(segs_);
}

void Connection::give_output() {
    KeptOutput::give(out_);
    KeptSegments::give(segs_);
    out_sent_ = seg_head_ = 0;
}

void Connection::register_mem(size_t start, size_t n) {
    if (n == 0)
        return;
    if (seg_head_ < segs_.size() && segs_.back().fd < 0 &&
        static_cast<size_t>(segs_.back().offset) + segs_.back().len == start) {
        segs_.back().len += n;
    } else {
        take_segments();
        segs_.push_back({-1, static_cast<off_t>(start), n});
    }
}

void Connection::queue_mem(std::string_view data) {
    std::string& out = out_mem();
    size_t start = out.size();
    out.append(data);
    register_mem(start, data.size());
}

void Connection::queue_file(int fd, off_t offset, size_t len) {
    if (!len)
        return;
    take_segments();
    segs_.push_back({fd, offset, len});
}

size_t Connection::queued_files() const {
    size_t n = 0;
    for (size_t i = seg_head_; i < segs_.size(); ++i)
        n += segs_[i].fd >= 0;
    return n;
}

// Output was queued: flushed when the dispatch returns (inside it), else from the deferred
// work, so a handler answering from its own callbacks (the proxy) is not left waiting for the
// next write that happens to cross the watermark.
void Connection::want_flush() {
    flush_pending_ = true;
    if (!in_dispatch_)
        worker_.defer(this);
}

void Connection::flush() {
    flush_pending_ = false;
    if (state_ == State::closed)
        return;
    while (seg_head_ < segs_.size()) {
        Segment& s = segs_[seg_head_];
        ssize_t n;
        if (s.fd < 0) {
            // Gather consecutive memory segments into one writev.
            iovec iov[16];
            int cnt = 0;
            for (size_t i = seg_head_; i < segs_.size() && cnt < 16 && segs_[i].fd < 0; ++i) {
                iov[cnt].iov_base = out_.data() + segs_[i].offset;
                iov[cnt].iov_len = segs_[i].len;
                ++cnt;
            }
            bool more = seg_head_ + cnt < segs_.size(); // a file follows: cork the headers
            n = transport_->write(iov, cnt, more);
            if (n > 0) {
                out_sent_ += n;
                size_t left = n;
                while (left > 0) {
                    Segment& m = segs_[seg_head_];
                    size_t take = std::min(left, m.len);
                    m.offset += take;
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
                s.len -= n;
                if (s.len == 0)
                    ++seg_head_;
            } else if (n == 0) {
                // The file shrank under us: the promised length cannot be delivered.
                WLOG_ERROR("file for %s shrank while being sent", peer_.text);
                keep_alive_ = false;
                abort_exchange();
                return;
            }
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_io(io_events_ | EV_WRITE | transport_->wait_events(false));
                arm(worker_.config().http.send_timeout);
                return;
            }
            // EPIPE, ECONNRESET: the client is gone.
            if (state_ == State::exchange)
                abort_exchange();
            else
                destroy();
            return;
        }
        if (state_ == State::exchange && (io_events_ & EV_WRITE))
            arm(worker_.config().http.send_timeout); // progress restarts the clock
    }
    // Everything queued is written.
    segs_.clear();
    seg_head_ = 0;
    out_.clear();
    out_sent_ = 0;
    if (io_events_ & EV_WRITE) {
        set_io(io_events_ & ~EV_WRITE);
        ev_timer_stop(worker_.loop(), &timer_);
    }
    if (state_ == State::exchange) {
        const bool ended = ex_->ended();
        if (ended && tunnel_) {
            // The server's side of the tunnel is over: FIN, while the client's may go on.
            if (!tunnel_write_shut_) {
                tunnel_write_shut_ = true;
                transport_->shutdown_write();
            }
            maybe_finish_tunnel();
        } else if (ended) {
            if (body_done_ || !keep_alive_)
                worker_.defer(this); // complete outside the handler's stack
        } else if (ex_->writable_wanted()) {
            ex_->clear_writable_wanted();
            writable_fire_ = true;
            worker_.defer(this);
        }
    }
}

void Connection::handle_writable() {
    if (state_ == State::exchange) {
        flush();
        // Partially drained below the low watermark: let a blocked producer continue.
        if (state_ == State::exchange && ex_->writable_wanted() && queued_mem() < kLowWatermark &&
            queued_files() <= kMaxQueuedFiles) {
            ex_->clear_writable_wanted();
            ex_->fire_writable();
        }
    } else if (state_ == State::lingering) {
        set_io(EV_READ);
    }
}

} // namespace wraith::http1
