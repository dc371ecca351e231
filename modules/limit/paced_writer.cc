#include "modules/limit/paced_writer.h"

#include <algorithm>

#include "modules/limit/zone_table.h"

namespace wraith::limit {

PacedWriter::PacedWriter(ResponseWriter& next, LimitWorker& worker, Pace& pace, uint64_t rate,
                         uint64_t after, struct ev_loop* loop)
    : next_(next), worker_(worker), pace_(pace), rate_(static_cast<int64_t>(rate)),
      burst_(std::clamp<int64_t>(static_cast<int64_t>(rate) / 10, 1024, 256 * 1024)),
      after_(after), loop_(loop) {
    ev_timer_init(&timer_, on_timer, 0., 0.);
    timer_.data = this;
    // Registered now, not when the handler asks: a timer must never fire into an exchange
    // that is gone, whatever the handler does with on_abort.
    next_.on_abort([this] {
        aborted_ = true;
        ev_timer_stop(loop_, &timer_);
        file_.len = 0;
        if (abort_cb_)
            abort_cb_();
    });
}

PacedWriter::~PacedWriter() {
    ev_timer_stop(loop_, &timer_);
    worker_.release_pace(&pace_);
}

void PacedWriter::refill(int64_t now) {
    // At most ten seconds' worth at once: the product stays far inside a double's precision.
    const int64_t elapsed = std::min<int64_t>(now - pace_.last_ns, 10000000000);
    if (elapsed <= 0)
        return;
    const auto earned = static_cast<int64_t>(static_cast<double>(elapsed) *
                                             static_cast<double>(rate_) / 1e9);
    if (earned <= 0)
        return; // less than a byte so far: keep the interval running
    pace_.tokens = std::min(burst_, pace_.tokens + earned);
    pace_.last_ns = now;
}

size_t PacedWriter::allowance(size_t len) {
    size_t free_bytes = sent_ < after_ ? static_cast<size_t>(after_ - sent_) : 0;
    if (free_bytes >= len)
        return len;
    refill(monotonic_ns());
    const size_t paced = len - free_bytes;
    // Wait for a useful slice rather than trickle a few bytes per wake-up.
    const int64_t want = std::min<int64_t>(static_cast<int64_t>(paced), burst_);
    if (pace_.tokens >= want)
        return free_bytes + std::min<size_t>(paced, static_cast<size_t>(pace_.tokens));
    if (free_bytes == 0)
        wait_for(want - pace_.tokens);
    return free_bytes;
}

void PacedWriter::charge(size_t n) {
    size_t free_bytes = sent_ < after_ ? std::min<size_t>(n, after_ - sent_) : 0;
    sent_ += n;
    if (n > free_bytes) {
        refill(monotonic_ns());
        pace_.tokens -= static_cast<int64_t>(n - free_bytes);
    }
}

void PacedWriter::wait_for(int64_t owed) {
    if (ev_is_active(&timer_) || owed <= 0)
        return;
    double seconds = std::max(0.001, static_cast<double>(owed) / static_cast<double>(rate_));
    ev_timer_set(&timer_, seconds, 0.);
    ev_timer_start(loop_, &timer_);
}

ResponseWriter::Result PacedWriter::after_send(Result r, bool end_stream) {
    if (r == Result::closed || end_stream)
        return r;
    if (r == Result::blocked && !next_blocked_) {
        next_blocked_ = true;
        next_.on_writable([this] {
            next_blocked_ = false;
            resume();
        });
    }
    if (pace_.tokens < 0)
        wait_for(-pace_.tokens);
    return waiting() ? Result::blocked : Result::ok;
}

ResponseWriter::Result PacedWriter::send_body(std::string_view data, bool end_stream) {
    Result r = next_.send_body(data, end_stream);
    charge(data.size());
    return after_send(r, end_stream);
}

ResponseWriter::Result PacedWriter::send_shared_body(std::string_view data, bool end_stream) {
    Result r = next_.send_shared_body(data, end_stream);
    charge(data.size());
    return after_send(r, end_stream);
}

ResponseWriter::Result PacedWriter::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    file_.fd = fd;
    file_.offset = offset;
    file_.len = len;
    file_.end = end_stream;
    if (len == 0) {
        file_.len = 0;
        return after_send(next_.send_file(fd, offset, 0, end_stream), end_stream);
    }
    Result r = pump();
    // A response whose last bytes wait for the allowance is the writer's to finish: the
    // handler is done with it.
    return end_stream && r == Result::blocked ? Result::ok : r;
}

ResponseWriter::Result PacedWriter::pump() {
    while (file_.len > 0 && !next_blocked_) {
        size_t n = allowance(file_.len);
        if (n == 0)
            return Result::blocked;
        const bool last = n == file_.len;
        Result r = next_.send_file(file_.fd, file_.offset, n, last && file_.end);
        charge(n);
        file_.offset += static_cast<off_t>(n);
        file_.len -= n;
        if (r == Result::closed) {
            file_.len = 0;
            return r;
        }
        if (last && file_.end)
            return r;
        after_send(r, false);
    }
    return waiting() || file_.len > 0 ? Result::blocked : Result::ok;
}

ResponseWriter::Result PacedWriter::send_trailers(const Headers& trailers) {
    // A handler ends with trailers only after its body went out (it waited for on_writable),
    // so nothing of a file is pending here; if something is, it goes unpaced now.
    if (file_.len > 0) {
        next_.send_file(file_.fd, file_.offset, file_.len, false);
        file_.len = 0;
    }
    ev_timer_stop(loop_, &timer_);
    return next_.send_trailers(trailers);
}

void PacedWriter::on_abort(Callback cb) {
    abort_cb_ = std::move(cb);
}

void PacedWriter::reset() {
    aborted_ = true;
    ev_timer_stop(loop_, &timer_);
    file_.len = 0;
    next_.reset();
}

void PacedWriter::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<PacedWriter*>(w->data)->resume();
}

void PacedWriter::resume() {
    if (aborted_)
        return;
    if (file_.len > 0) {
        Result r = pump();
        if (r != Result::ok)
            return; // closed, or waiting again (the timer or the next writer calls back)
    }
    if (!waiting() && handler_writable_) {
        Callback cb = std::move(handler_writable_);
        handler_writable_ = nullptr;
        cb();
    }
}

} // namespace wraith::limit
