// One HTTP/2 stream (RFC 9113 §5.1) carrying one exchange (worker/exchange.h does the
// protocol-independent part): the request from the session's checked fields, its body over
// stream flow control, and its response: the head encoded straight into the connection's
// output, the body queued as bytes and file ranges that the session pulls as DATA frames.
// The session (worker/http2/session.h) calls the StreamState hooks; none of them runs handler
// code: handler callbacks run from the connection's deferred work.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "worker/exchange.h"
#include "worker/http2/session.h"
#include "worker/output_segment.h"

namespace wraith::http2 {

class Connection;

class Stream final : public StreamExchange, public StreamState {
public:
    Stream(Connection& conn, int32_t id);
    ~Stream() override;

    bool closed() const { return closed_; }
    bool started() const { return started_; }

    // ---- StreamState hooks (called by the session; no handler code runs here)
    bool on_field(std::string_view name, std::string_view value, bool trailer) override;
    void on_field_oversized() override { on_request_field_too_large(); }
    void on_head(bool end_stream) override { on_head_complete(end_stream); }
    void on_data(const uint8_t* data, size_t len) override { on_body(data, len); }
    void on_data_end() override { on_body_end(); }
    void on_end_stream_sent() override;
    void on_closed(uint32_t error_code) override;
    size_t body_available() const override { return seg_bytes_; }
    bool body_ended() const override { return response_ == Response::ended; }
    size_t body_copy(uint8_t* dst, size_t len) override;
    std::span<const Header> trailers() const override { return {trailers_, trailer_count_}; }

    // The connection's list of streams.
    Stream* prev_ = nullptr;
    Stream* next_ = nullptr;

private:
    static constexpr size_t kHighWatermark = 64 * 1024; // queued memory above: writer blocked
    static constexpr size_t kLowWatermark = 16 * 1024;  // drained below: on_writable fires
    static constexpr size_t kMaxQueuedFiles = 8;
    static constexpr uint64_t kMaxDiscard = 1 << 20; // unread body worth reading, not resetting

    // One queued piece of response body: bytes of mem_ or a file range.
    using Segment = OutputSegment; // memory: a range of mem_

    // Exchange hooks
    bool transport_gone() const override { return closed_ || reset_sent_ || stream_reset(); }
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

    void submit_rst(uint32_t error_code);
    size_t queued_files() const;
    void reset_queue();

    Connection& conn_;

    // Response body: queued bytes (segments point into mem_) and file ranges.
    std::string mem_;
    size_t mem_queued_ = 0; // bytes of mem_ not yet copied out
    size_t seg_bytes_ = 0;  // bytes of all segments not yet copied out
    std::vector<Segment> segs_;
    size_t seg_head_ = 0;
    const Header* trailers_ = nullptr; // sent after the last DATA (arena), when given
    size_t trailer_count_ = 0;
    bool end_stream_sent_ = false; // our END_STREAM went out
    bool reset_sent_ = false;
    uint32_t close_code_ = 0;
};

} // namespace wraith::http2
