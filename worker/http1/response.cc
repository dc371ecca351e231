// HTTP/1.1 response side of a connection: status line and fields, Content-Length or chunked
// framing, the output queue (memory and file ranges) and its flushing with writev/sendfile.
#include "worker/http1/connection.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/log.h"
#include "worker/exchange_util.h"
#include "worker/worker.h"

namespace wraith::http1 {

namespace {

// "content-type" -> "Content-Type" on the wire; HTTP/1 field names are case-insensitive,
// but people read them, and some old clients expect the usual spelling.
void append_field_name(std::string& out, std::string_view name) {
    if (name == "etag") {
        out += "ETag";
        return;
    }
    if (name == "www-authenticate") {
        out += "WWW-Authenticate";
        return;
    }
    bool upper = true;
    for (char c : name) {
        out += upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
        upper = c == '-';
    }
}

void append_decimal(std::string& out, uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), v); // no locale, no format parsing
    out.append(buf, static_cast<size_t>(r.ptr - buf));
}

} // namespace

// ---- response ------------------------------------------------------------------------------

void Connection::register_mem(size_t start, size_t n) {
    if (n == 0)
        return;
    if (seg_head_ < segs_.size() && segs_.back().fd < 0 &&
        static_cast<size_t>(segs_.back().offset) + segs_.back().len == start)
        segs_.back().len += n;
    else
        segs_.push_back({-1, static_cast<off_t>(start), n});
}

void Connection::queue_mem(std::string_view data) {
    size_t start = out_.size();
    out_.append(data);
    register_mem(start, data.size());
}

void Connection::queue_file(int fd, off_t offset, size_t len) {
    if (len)
        segs_.push_back({fd, offset, len});
}

void Connection::send_informational(int status, const Headers& headers) {
    if (headers_sent_ || req_.version < 11)
        return;
    std::string& o = out_;
    size_t start = o.size();
    o += "HTTP/1.1 ";
    append_decimal(o, status);
    o += ' ';
    o += status_reason(status);
    o += "\r\n";
    for (const Header& h : headers) {
        append_field_name(o, h.name);
        o += ": ";
        o += h.value;
        o += "\r\n";
    }
    o += "\r\n";
    register_mem(start, o.size() - start);
    want_flush();
}

void Connection::send_headers(ResponseHead& head, bool end_stream) {
    if (headers_sent_ || state_ != State::exchange)
        return;
    if (head.status == 101)
        return send_switching_protocols(head, end_stream);
    headers_sent_ = true;
    status_ = head.status;
    if (!body_done_ && expect_continue_ && !continue_sent_ && !body_failed_) {
        // The client waits for 100 before sending its body. For a success answered without
        // reading it (as NGINX does when discarding), say 100 first so the body comes and can
        // be discarded on a kept-alive connection; otherwise the connection must close.
        uint64_t left = framing_ == BodyFraming::content_length ? body_left_ : 0;
        if (head.status < 400 && left <= kMaxDiscard) {
            continue_sent_ = true;
            queue_mem("HTTP/1.1 100 Continue\r\n\r\n");
        } else {
            keep_alive_ = false;
        }
    }
    if (body_failed_)
        keep_alive_ = false;
    if (draining_ || worker_.draining())
        keep_alive_ = false;

    bool has_body = status_has_body(head.status);
    body_expected_ = has_body ? head.content_length : 0;
    chunked_out_ = has_body && head.content_length < 0 && !head_request_ && !end_stream;
    if (has_body && head.content_length < 0 && !head_request_) {
        if (end_stream) {
            body_expected_ = 0; // empty body, known now
        } else if (req_.version < 11) {
            keep_alive_ = false; // HTTP/1.0: the body ends at close
            chunked_out_ = false;
        }
    }

    std::string& o = out_;
    size_t start = o.size();
    o += req_.version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
    append_decimal(o, head.status);
    o += ' ';
    o += status_reason(head.status);
    o += "\r\n";
    const std::string& server = worker_.config().http.server_header;
    if (!server.empty()) {
        o += "Server: ";
        o += server;
        o += "\r\n";
    }
    o += "Date: ";
    o += worker_.http_date();
    o += "\r\n";
    if (!peer_.info.alt_svc.empty() && !head.headers.find("alt-svc")) {
        o += "Alt-Svc: ";
        o += peer_.info.alt_svc;
        o += "\r\n";
    }
    for (const Header& h : head.headers) {
        // Framing is ours to write.
        if (h.name == "content-length" || h.name == "transfer-encoding" || h.name == "connection" ||
            h.name == "keep-alive")
            continue;
        append_field_name(o, h.name);
        o += ": ";
        o += h.value;
        o += "\r\n";
    }
    if (has_body && head.status != 304) {
        if (body_expected_ >= 0) {
            o += "Content-Length: ";
            append_decimal(o, body_expected_);
            o += "\r\n";
        } else if (chunked_out_) {
            o += "Transfer-Encoding: chunked\r\n";
        }
    }
    if (!keep_alive_)
        o += "Connection: close\r\n";
    else if (req_.version < 11)
        o += "Connection: keep-alive\r\n";
    o += "\r\n";
    register_mem(start, o.size() - start);
    if (end_stream)
        end_response();
    else
        want_flush();
}

// RFC 9110 §15.2.2: the tunnel starts right after the empty line of the 101.
void Connection::send_switching_protocols(ResponseHead& head, bool end_stream) {
    if (req_.upgrade.empty() || end_stream) {
        // Only a handler bug gets here: a switch nobody asked for, or one with no stream.
        WLOG_ERROR("handler answered 101 to a request from %s that cannot switch", peer_.text);
        keep_alive_ = false;
        return abort_exchange();
    }
    headers_sent_ = true;
    status_ = 101;
    body_expected_ = -1;
    chunked_out_ = false;
    std::string& o = out_;
    size_t start = o.size();
    o += "HTTP/1.1 101 Switching Protocols\r\n";
    const std::string& server = worker_.config().http.server_header;
    if (!server.empty()) {
        o += "Server: ";
        o += server;
        o += "\r\n";
    }
    o += "Date: ";
    o += worker_.http_date();
    o += "\r\n";
    for (const Header& h : head.headers) {
        if (h.name == "content-length" || h.name == "transfer-encoding" || h.name == "connection" ||
            h.name == "keep-alive")
            continue;
        append_field_name(o, h.name);
        o += ": ";
        o += h.value;
        o += "\r\n";
    }
    o += "Connection: upgrade\r\n\r\n";
    register_mem(start, o.size() - start);
    want_flush();
    start_tunnel();
}

ResponseWriter::Result Connection::send_body(std::string_view data, bool end_stream) {
    if (state_ != State::exchange || !headers_sent_ || response_ended_)
        return Result::closed;
    if (tunnel_) {
        queue_mem(data);
        body_bytes_ += data.size();
    } else if (!head_request_ && status_has_body(status_) && !data.empty()) {
        if (body_expected_ >= 0 &&
            body_bytes_ + data.size() > static_cast<uint64_t>(body_expected_)) {
            WLOG_ERROR("handler sent more body than its content-length (%s)", peer_.text);
            data = data.substr(0, body_expected_ - body_bytes_);
        }
        if (chunked_out_) {
            char size_line[24];
            int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
            queue_mem({size_line, static_cast<size_t>(n)});
            queue_mem(data);
            queue_mem("\r\n");
        } else {
            queue_mem(data);
        }
        body_bytes_ += data.size();
    }
    if (end_stream) {
        end_response();
    } else if (queued_mem() >= kHighWatermark) {
        flush();
    } else {
        want_flush();
    }
    if (state_ != State::exchange && !response_ended_)
        return Result::closed;
    if (queued_mem() >= kHighWatermark) {
        writable_wanted_ = true;
        return Result::blocked;
    }
    return Result::ok;
}

ResponseWriter::Result Connection::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    if (state_ != State::exchange || !headers_sent_ || response_ended_)
        return Result::closed;
    if (!head_request_ && status_has_body(status_) && len) {
        if (body_expected_ >= 0 && body_bytes_ + len > static_cast<uint64_t>(body_expected_))
            len = body_expected_ - body_bytes_;
        if (chunked_out_) {
            char size_line[24];
            int n = snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
            queue_mem({size_line, static_cast<size_t>(n)});
            queue_file(fd, offset, len);
            queue_mem("\r\n");
        } else {
            queue_file(fd, offset, len);
        }
        body_bytes_ += len;
    }
    if (end_stream)
        end_response();
    else
        want_flush();
    if (state_ != State::exchange && !response_ended_)
        return Result::closed;
    // A file range costs no memory, but more than a few queued means the peer is slow.
    if (segs_.size() - seg_head_ > 8 || queued_mem() >= kHighWatermark) {
        writable_wanted_ = true;
        return Result::blocked;
    }
    return Result::ok;
}

ResponseWriter::Result Connection::send_trailers(const Headers& trailers) {
    if (state_ != State::exchange || !headers_sent_ || response_ended_)
        return Result::closed;
    if (chunked_out_) {
        // RFC 9112 §7.1.2: the last chunk, then the trailer section, then CRLF.
        size_t start = out_.size();
        out_ += "0\r\n";
        for (const Header& h : trailers) {
            append_field_name(out_, h.name);
            out_ += ": ";
            out_ += h.value;
            out_ += "\r\n";
        }
        out_ += "\r\n";
        register_mem(start, out_.size() - start);
        chunked_out_ = false; // the last chunk is out
    }
    end_response();
    return state_ == State::exchange || response_ended_ ? Result::ok : Result::closed;
}

void Connection::end_response() {
    if (response_ended_)
        return;
    response_ended_ = true;
    if (chunked_out_)
        queue_mem("0\r\n\r\n");
    if (!head_request_ && body_expected_ >= 0 &&
        body_bytes_ < static_cast<uint64_t>(body_expected_)) {
        // Short body: the client would wait for the rest forever; close after what we have.
        WLOG_ERROR("response to %s ended %llu bytes short of its content-length", peer_.text,
                   (unsigned long long)(body_expected_ - body_bytes_));
        keep_alive_ = false;
    }
    if (!body_done_ && keep_alive_) {
        // Read and drop the unread request body to keep the connection; large ones close.
        uint64_t left = framing_ == BodyFraming::content_length ? body_left_ : 0;
        if (left > kMaxDiscard || (expect_continue_ && !continue_sent_))
            keep_alive_ = false;
        else
            discard();
    }
    flush();
}

void Connection::reset() {
    if (state_ != State::exchange)
        return;
    keep_alive_ = false;
    abort_exchange();
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
        if (response_ended_ && tunnel_) {
            // The server's side of the tunnel is over: FIN, while the client's may go on.
            if (!tunnel_write_shut_) {
                tunnel_write_shut_ = true;
                transport_->shutdown_write();
            }
            maybe_finish_tunnel();
        } else if (response_ended_) {
            if (body_done_ || !keep_alive_)
                worker_.defer(this); // complete outside the handler's stack
        } else if (writable_wanted_ && writable_cb_) {
            writable_wanted_ = false;
            writable_fire_ = true;
            worker_.defer(this);
        }
    }
}

void Connection::handle_writable() {
    if (state_ == State::exchange) {
        flush();
        // Partially drained below the low watermark: let a blocked producer continue.
        if (state_ == State::exchange && writable_wanted_ && writable_cb_ &&
            queued_mem() < kLowWatermark && segs_.size() - seg_head_ <= 8) {
            writable_wanted_ = false;
            Callback cb = writable_cb_;
            cb();
        }
    } else if (state_ == State::lingering) {
        set_io(EV_READ);
    }
}

} // namespace wraith::http1
