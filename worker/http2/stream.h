// One HTTP/2 stream (RFC 9113 §5.1) carrying one exchange (worker/exchange.h does the
// protocol-independent part): the request from decoded HEADERS, its body over stream flow
// control, and its response queued as bytes and file ranges that nghttp2 pulls as DATA frames.
// The connection (worker/http2/connection.h) owns the streams and is the only caller of
// nghttp2's send and receive functions: a stream only submits, so a handler's call never
// re-enters the session, and handler callbacks run from the connection's deferred work, never
// inside nghttp2.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/exchange.h"

namespace wraith::http2 {

class Connection;
class OutputBuffer;

class Stream final : public StreamExchange {
public:
    Stream(Connection& conn, int32_t id);
    ~Stream() override;

    int32_t id() const { return id_; }
    bool closed() const { return closed_; }
    bool started() const { return started_; }

    // ---- fed by the connection's nghttp2 callbacks (no handler code runs here)
    // False: the header block is abusive (far past the limits); nghttp2 resets the stream.
    bool on_header(std::string_view name, std::string_view value, bool trailer);
    void on_end_stream_sent();
    void on_closed(uint32_t error_code);
    // Data source: how many bytes the next DATA frame carries (NO_COPY), EOF, or DEFERRED.
    ssize_t read_data(size_t length, uint32_t* data_flags);
    // Copies the frame header and `length` payload bytes into `out` (RFC 9113 §6.1).
    int write_data(OutputBuffer& out, const uint8_t* framehd, size_t length);

    // The connection's list of streams.
    Stream* prev_ = nullptr;
    Stream* next_ = nullptr;

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

    // Exchange hooks
    bool transport_gone() const override { return closed_ || reset_sent_; }
    void submit_informational(int status, const Headers& headers) override;
    bool submit_head(ResponseHead& head, bool end_stream) override;
    void queue_body(std::string_view data, bool shared) override;
    void queue_file(int fd, off_t offset, size_t len) override;
    void queue_trailers(const Headers& trailers) override;
    void kick() override;
    bool congested() const override;
    void response_ended(uint64_t short_by) override;
    void submit_reset() override;
    // StreamExchange hooks
    void credit(size_t n) override;
    bool response_complete() const override { return end_stream_sent_; }
    void schedule() override;
    void send_continue() override;
    uint64_t max_field_bytes() const override;
    int version() const override { return 20; }

    void submit_trailers(uint32_t* data_flags);
    void submit_rst(uint32_t error_code);
    size_t queued_files() const;
    void reset_queue();

    Connection& conn_;
    int32_t id_;

    // Response body: queued bytes (segments point into mem_) and file ranges.
    std::string mem_;
    size_t mem_queued_ = 0; // bytes of mem_ not yet copied out
    std::vector<Segment> segs_;
    size_t seg_head_ = 0;
    nghttp2_nv* trailers_ = nullptr; // sent after the last DATA (arena), when given
    size_t trailer_count_ = 0;
    bool end_stream_sent_ = false; // nghttp2 sent our END_STREAM
    bool data_deferred_ = false;   // the data source said DEFERRED; resume_data on more
    bool reset_sent_ = false;
    uint32_t close_code_ = 0;
};

} // namespace wraith::http2
