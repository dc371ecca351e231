// One HTTP/2 stream (RFC 9113 §5.1) carrying one exchange: the request assembled from HEADERS,
// its body as a BodyReader over stream flow control, and its response as a ResponseWriter that
// queues bytes and file ranges for nghttp2 to pull as DATA frames. The connection
// (worker/http2/connection.h) owns the streams and is the only caller of nghttp2's send and
// receive functions: a stream only submits, so a handler's call never re-enters the session,
// and handler callbacks run from the connection's deferred work, never inside nghttp2.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/arena.h"
#include "common/http.h"

namespace wraith::http2 {

class Connection;
class OutputBuffer;

class Stream final : public BodyReader, public ResponseWriter {
public:
    Stream(Connection& conn, int32_t id);
    ~Stream() override;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    int32_t id() const { return id_; }
    bool closed() const { return closed_; }
    bool started() const { return started_; }

    // ---- fed by the connection's nghttp2 callbacks (no handler code runs here)
    // False: the header block is abusive (far past the limits); nghttp2 resets the stream.
    bool on_header(std::string_view name, std::string_view value, bool trailer);
    void on_head_complete(bool end_stream);
    void on_body_chunk(const uint8_t* data, size_t len);
    void on_body_end();
    void on_end_stream_sent();
    void on_closed(uint32_t error_code);
    // Data source: how many bytes the next DATA frame carries (NO_COPY), EOF, or DEFERRED.
    ssize_t read_data(size_t length, uint32_t* data_flags);
    void submit_trailers(uint32_t* data_flags);
    // Copies the frame header and `length` payload bytes into `out` (RFC 9113 §6.1).
    int write_data(OutputBuffer& out, const uint8_t* framehd, size_t length);

    // ---- run by the connection outside nghttp2 and handler stacks
    // Pending work: start the exchange, deliver body data, tell a blocked writer to go on.
    void run_pending();
    // The stream is gone: abort callbacks, log phase. The connection deletes it after.
    void finish();
    // The exchange runs and wants request body bytes the client has not sent.
    bool waiting_for_body() const {
        return started_ && !closed_ && !aborted_ && !body_done_ && !body_discarding_ &&
               !body_paused_ && !tunnel_;
    }
    // http.body_timeout passed without a byte: 408 (or a reset once the response started).
    void on_body_timeout();

    // BodyReader
    std::string_view peek() override;
    void consume(size_t n) override;
    bool finished() const override { return body_done_ && body_off_ == body_.size(); }
    bool failed() const override { return body_failed_; }
    void on_data(Callback cb) override;
    void pause() override;
    void resume() override;
    void discard() override;

    // ResponseWriter
    void send_informational(int status, const Headers& headers) override;
    void send_headers(ResponseHead& head, bool end_stream) override;
    Result send_body(std::string_view data, bool end_stream) override;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override;
    Result send_trailers(const Headers& trailers) override;
    void on_writable(Callback cb) override { writable_cb_ = std::move(cb); }
    void on_abort(Callback cb) override { abort_cb_ = std::move(cb); }
    void reset() override;
    bool headers_sent() const override { return headers_sent_; }
    uint64_t body_bytes_sent() const override { return body_bytes_; }

    // The connection's list of streams and its pending-work queue.
    Stream* prev_ = nullptr;
    Stream* next_ = nullptr;
    bool queued_ = false;

private:
    static constexpr size_t kHighWatermark = 64 * 1024; // queued memory above: writer blocked
    static constexpr size_t kLowWatermark = 16 * 1024;  // drained below: on_writable fires
    static constexpr size_t kMaxQueuedFiles = 8;
    static constexpr uint64_t kMaxDiscard = 1 << 20; // unread body worth reading, not resetting

    // One queued piece of response body: bytes of mem_ or a file range.
    struct Segment {
        int fd;       // -1: memory
        off_t offset; // file offset, or offset into mem_
        size_t len;
    };

    void start();
    void schedule();
    void kick(); // more body queued (or the end): wake nghttp2's data source
    void end_response();
    void maybe_send_continue();
    void submit_rst(uint32_t error_code);
    Result writer_state();
    size_t queued_files() const;
    nghttp2_nv make_nv(std::string_view name, std::string_view value);

    Connection& conn_;
    int32_t id_;
    Arena arena_;
    Request req_;

    // Request head as it arrives.
    uint64_t header_bytes_ = 0; // RFC 9113 §6.5.2 accounting: name + value + 32 each
    uint32_t header_count_ = 0;
    int head_error_ = 0;          // status to answer instead of running the exchange
    std::string_view host_field_; // Host, used when :authority is absent
    bool expect_continue_ = false;

    // Request body, buffered up to the stream window until the handler consumes it.
    std::string body_;
    size_t body_off_ = 0;
    uint64_t body_received_ = 0;
    Callback data_cb_;
    bool body_done_ = true;
    bool body_failed_ = false;
    bool body_paused_ = false;
    bool body_discarding_ = false;
    bool body_too_large_ = false;
    bool body_timed_out_ = false;
    bool continue_sent_ = false;

    // Response.
    std::string mem_;       // queued body bytes; segments point into it
    size_t mem_queued_ = 0; // bytes of mem_ not yet copied out
    std::vector<Segment> segs_;
    size_t seg_head_ = 0;
    Callback writable_cb_;
    Callback abort_cb_;
    int status_ = 0;
    int64_t body_expected_ = -1; // Content-Length promised, -1 none
    uint64_t body_queued_ = 0;   // body bytes the handler gave us
    uint64_t body_bytes_ = 0;    // of them, copied into DATA frames (for logs)
    bool head_request_ = false;
    bool body_allowed_ = true; // status and method let DATA carry bytes
    bool headers_sent_ = false;
    bool response_ended_ = false;    // the handler gave end_stream
    nghttp2_nv* trailers_ = nullptr; // sent after the last DATA (arena), when given
    size_t trailer_count_ = 0;
    bool end_stream_sent_ = false; // nghttp2 sent our END_STREAM
    bool data_deferred_ = false;   // the data source said DEFERRED; resume_data on more
    bool writable_wanted_ = false; // the producer was told `blocked`
    bool reset_sent_ = false;
    bool tunnel_ = false;      // an extended CONNECT (RFC 8441): DATA is a byte stream
    bool tunnel_open_ = false; // its 2xx went out: both directions run and end on their own

    // Lifecycle.
    bool head_complete_ = false;
    bool started_ = false;
    bool start_pending_ = false;
    bool data_pending_ = false;
    bool writable_pending_ = false;
    bool closed_ = false;  // nghttp2 closed the stream; the connection reaps it
    bool aborted_ = false; // no handler call may reach the writer any more
    uint32_t close_code_ = 0;
};

} // namespace wraith::http2
