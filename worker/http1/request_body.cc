// The HTTP/1.1 request body as the exchange's BodyReader: Content-Length and chunked decoding
// (RFC 9112 §6-7) straight from the connection's read buffer, 100 Continue, read interest
// while a handler waits or is full, and discarding what a handler did not read.
#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "worker/http1/connection.h"
#include "worker/worker.h"

namespace wraith::http1 {

// ---- request body --------------------------------------------------------------------------

void Connection::decode_body(bool notify) {
    if (body_done_ && braw_ == rlen_)
        return;
    uint64_t limit = worker_.config().http.client_max_body_size;
    if (tunnel_) {
        // Every byte is the client's stream; no limit applies (the handler paces it).
        size_t take = rlen_ - braw_;
        if (bdata_end_ != braw_ && take)
            std::memmove(rbuf_ + bdata_end_, rbuf_ + braw_, take);
        bdata_end_ += take;
        braw_ += take;
        body_received_ += take;
    } else if (framing_ == BodyFraming::content_length) {
        size_t avail = rlen_ - braw_;
        size_t take = static_cast<size_t>(std::min<uint64_t>(avail, body_left_));
        if (bdata_end_ != braw_ && take)
            std::memmove(rbuf_ + bdata_end_, rbuf_ + braw_, take);
        bdata_end_ += take;
        braw_ += take;
        body_left_ -= take;
        body_received_ += take;
        if (body_left_ == 0)
            body_done_ = true;
    } else if (framing_ == BodyFraming::chunked && !body_done_) {
        size_t consumed = 0, out_len = 0;
        ParseError err;
        auto r = ex_->chunked.feed(rbuf_ + braw_, rlen_ - braw_, &consumed, &out_len, err);
        if (out_len && bdata_end_ != braw_)
            std::memmove(rbuf_ + bdata_end_, rbuf_ + braw_, out_len);
        bdata_end_ += out_len;
        braw_ += consumed;
        body_received_ += out_len;
        if (r == ChunkedDecoder::Result::error) {
            ErrorLog::limited(LogLevel::info, "%d %s in chunked body, client: %s", err.status,
                              err.reason, peer_.text);
            body_failed_ = true;
            body_done_ = true;
            keep_alive_ = false;
            if (!ex_->headers_sent() && !ex_->ended()) {
                Callback cb = std::move(ex_->data_cb);
                if (cb)
                    cb();
                if (state_ == State::exchange && !ex_->headers_sent())
                    send_error(ex_->request(), *ex_, err.status, {});
                return;
            }
            return abort_exchange();
        }
        if (r == ChunkedDecoder::Result::done)
            body_done_ = true;
        if (ex_->chunked.body_size() > limit) {
            ErrorLog::limited(LogLevel::info,
                              "413 chunked body larger than client_max_body_size, client: %s",
                              peer_.text);
            body_failed_ = true;
            body_done_ = true;
            keep_alive_ = false;
            if (!ex_->headers_sent() && !ex_->ended()) {
                Callback cb = std::move(ex_->data_cb);
                if (cb)
                    cb();
                if (state_ == State::exchange && !ex_->headers_sent())
                    send_error(ex_->request(), *ex_, 413, {});
                return;
            }
            return abort_exchange();
        }
    }
    if (body_discarding_) {
        bdata_ = bdata_end_; // drop
    }
    // Space after the head is reusable once the consumer caught up.
    if (bdata_ == bdata_end_) {
        if (braw_ < rlen_ && braw_ > head_end_)
            std::memmove(rbuf_ + head_end_, rbuf_ + braw_, rlen_ - braw_);
        rlen_ = head_end_ + (rlen_ - braw_);
        bdata_ = bdata_end_ = braw_ = head_end_;
    }
    if (body_discarding_) {
        if (body_done_ && ex_->ended() && queued_mem() == 0 && seg_head_ == segs_.size())
            worker_.defer(this);
        update_read_interest();
        return;
    }
    if (notify && (bdata_ < bdata_end_ || body_done_)) {
        if (ex_->data_cb) {
            Callback cb = ex_->data_cb; // the callback may replace itself
            cb();
        }
    }
    if (state_ == State::exchange)
        update_read_interest();
}

bool Connection::body_wants_data() const {
    if (body_done_ || body_failed_)
        return false;
    if (body_discarding_)
        return true;
    if (body_paused_)
        return false;
    return rlen_ < rcap_;
}

void Connection::update_read_interest() {
    if (state_ != State::exchange)
        return;
    // Reading is left on when nothing needs it, to spare epoll_ctl calls on every request;
    // handle_readable() turns it off if bytes arrive that nobody wants yet. It is turned off
    // here only where reading would be wrong: a paused body, or a client waiting for 100.
    bool want = body_wants_data() && (continue_sent_ || !expect_continue_ || body_discarding_);
    bool forbid =
        !body_done_ && !body_discarding_ && (body_paused_ || (expect_continue_ && !continue_sent_));
    if (want)
        set_io(io_events_ | EV_READ);
    else if (forbid)
        set_io(io_events_ & ~EV_READ);
    // A tunnel's idleness is its handler's business (the proxy's tunnel_timeout).
    if (want && !tunnel_ && !(io_events_ & EV_WRITE))
        arm(worker_.config().http.body_timeout);
    // TLS may hold decrypted bytes that no socket event will announce (a record larger than
    // the room the last read had): read them from the deferred work.
    if (want && !read_pending_ && transport_->buffered() > 0) {
        read_pending_ = true;
        worker_.defer(this);
    }
}

void Connection::maybe_send_continue() {
    if (expect_continue_ && !continue_sent_ && !ex_->headers_sent() && !body_done_) {
        continue_sent_ = true;
        queue_mem("HTTP/1.1 100 Continue\r\n\r\n");
        flush();
    }
}

std::string_view Connection::peek() {
    maybe_send_continue();
    update_read_interest();
    return {rbuf_ + bdata_, bdata_end_ - bdata_};
}

void Connection::consume(size_t n) {
    bdata_ += static_cast<uint32_t>(std::min<size_t>(n, bdata_end_ - bdata_));
    if (bdata_ == bdata_end_) {
        // Compact and decode more of what is already buffered; the consumer is on the stack,
        // so it is not called back from here.
        decode_body(false);
        if (tunnel_)
            maybe_finish_tunnel();
    }
}

bool Connection::finished() const {
    return body_done_ && bdata_ == bdata_end_;
}

void Connection::on_data(Callback cb) {
    ex_->data_cb = std::move(cb);
    if (ex_->data_cb) {
        maybe_send_continue();
        update_read_interest();
    }
}

void Connection::pause() {
    body_paused_ = true;
    update_read_interest();
}

void Connection::resume() {
    body_paused_ = false;
    maybe_send_continue();
    update_read_interest();
}

void Connection::discard() {
    ex_->data_cb = nullptr;
    body_discarding_ = true;
    bdata_ = bdata_end_;
    if (expect_continue_ && !continue_sent_) {
        // The client waits for 100 before sending. Before the response, send_headers()
        // decides (100 then discard, or close); after it, we will not ask: close.
        if (ex_->headers_sent()) {
            keep_alive_ = false;
            body_done_ = true;
        }
        return;
    }
    decode_body();
}

} // namespace wraith::http1
