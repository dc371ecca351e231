// Bandwidth (`[limit.NAME] bandwidth = "500k"`): a response writer that lets a response's
// body go at most at the zone's rate, per connection (HTTP/2 and HTTP/3 streams of one
// connection share it), after `bandwidth_after` bytes of each response went unpaced, as NGINX's
// limit_rate and limit_rate_after. Bodies given as bytes pass at once and are paid for by
// waiting before the next (the handler waits for on_writable); a file range is handed on in
// slices as the allowance grows. The pacing never holds the loop: a timer wakes the writer.
#pragma once

#include <ev.h>

#include "common/http.h"
#include "modules/limit/limit_worker.h"

namespace wraith::limit {

class PacedWriter final : public ResponseWriter {
public:
    PacedWriter(ResponseWriter& next, LimitWorker& worker, Pace& pace, uint64_t rate,
                uint64_t after, struct ev_loop* loop);
    ~PacedWriter() override;

    void send_informational(int status, const Headers& headers) override {
        next_.send_informational(status, headers);
    }
    void send_headers(ResponseHead& head, bool end_stream) override {
        next_.send_headers(head, end_stream);
    }
    Result send_body(std::string_view data, bool end_stream) override;
    Result send_shared_body(std::string_view data, bool end_stream) override;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override;
    Result send_trailers(const Headers& trailers) override;
    void on_writable(Callback cb) override { handler_writable_ = std::move(cb); }
    void on_abort(Callback cb) override;
    void reset() override;
    bool headers_sent() const override { return next_.headers_sent(); }
    uint64_t body_bytes_sent() const override { return next_.body_bytes_sent(); }

private:
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    void refill(int64_t now);
    // Bytes of `len` that may go now (0: wait; the timer is armed).
    size_t allowance(size_t len);
    void charge(size_t n);
    void wait_for(int64_t owed);
    Result after_send(Result r, bool end_stream);
    Result pump(); // hands on what the pending file range may send now
    void resume(); // the timer fired or the next writer drained
    bool waiting() const { return next_blocked_ || ev_is_active(&timer_); }

    ResponseWriter& next_;
    LimitWorker& worker_;
    Pace& pace_;
    const int64_t rate_;  // bytes per second
    const int64_t burst_; // most bytes the allowance holds: a tenth of a second, 1-256 KiB
    const uint64_t after_;
    struct ev_loop* loop_;
    ev_timer timer_;
    uint64_t sent_ = 0; // this response's body bytes handed on
    struct {
        int fd = -1;
        off_t offset = 0;
        size_t len = 0;
        bool end = false;
    } file_;             // the part of a send_file not handed on yet (len 0: none)
    bool next_blocked_ = false;
    bool aborted_ = false;
    Callback handler_writable_;
    Callback abort_cb_;
};

} // namespace wraith::limit
