// The per-response half of the compress filter: a ResponseWriter that sits in front of the
// next writer, decides at send_headers whether to compress, and if so streams the body through
// an encoder while keeping the next writer's backpressure.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/http.h"
#include "modules/compress/encoder.h"

namespace wraith {

class CompressFilter;
struct CompressShard;

class CompressWriter final : public ResponseWriter {
public:
    // Input chunk read from a file per step, and output chunk handed to `next`.
    static constexpr size_t file_chunk = 64 * 1024;
    static constexpr size_t out_chunk = 32 * 1024;

    // `shard`: where the worker counts compressed responses and bytes (null: not counted).
    CompressWriter(const CompressFilter& filter, Request& req, ResponseWriter& next, Coding coding,
                   CompressShard* shard);

    void send_informational(int status, const Headers& headers) override;
    void send_headers(ResponseHead& head, bool end_stream) override;
    Result send_body(std::string_view data, bool end_stream) override;
    Result send_shared_body(std::string_view data, bool end_stream) override;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override;
    Result send_trailers(const Headers& trailers) override;
    void on_writable(Callback cb) override;
    void on_abort(Callback cb) override;
    void reset() override;
    bool headers_sent() const override { return next_.headers_sent(); }
    uint64_t body_bytes_sent() const override { return next_.body_bytes_sent(); }

    // Whether this response was (or, before send_headers, would be) compressed: for tests.
    bool compressing() const { return mode_ == Mode::compress || mode_ == Mode::head; }

private:
    enum class Mode : uint8_t {
        undecided, // before send_headers
        pass,      // not compressed: every call goes straight to next
        compress,  // body goes through the encoder
        head,      // HEAD answered as if compressed: headers only
    };

    bool should_compress(const ResponseHead& head, bool end_stream) const;
    void rewrite_headers(ResponseHead& head);
    // Compresses `data` (the last input when `end`) and hands every output chunk to next.
    // With `pausable` (input in in_buf_, which we own) it stops at the first `blocked` and
    // keeps the unread rest as the pending chunk; otherwise it takes all of `data`.
    Result encode(std::string_view data, bool end, bool pausable);
    bool work_pending() const { return chunk_pending_ || file_pending_; }
    // Encodes the paused chunk, then reads and encodes the pending file range. With
    // `honour_backpressure` it stops at the first `blocked` from next and resumes from next's
    // on_writable; without, it drains all of it (used only to keep byte order when a caller
    // ignored `blocked`).
    Result pump_file(bool honour_backpressure);
    Result fail();              // resets the stream after an encoder or read error
    void note_blocked();        // next said blocked: be called back when it drains
    void next_writable();       // next drained: continue the file, then tell our caller
    Result to_caller(Result r); // remembers that our caller now waits for on_writable

    const CompressFilter& filter_;
    Request& req_;
    ResponseWriter& next_;
    Coding coding_;
    CompressShard* shard_;
    Mode mode_ = Mode::undecided;
    Encoder* encoder_ = nullptr;
    uint8_t* out_buf_ = nullptr; // out_chunk bytes, arena
    uint8_t* in_buf_ = nullptr;  // file_chunk bytes, arena, allocated by the first send_file

    // The file range still to read (send_file that met backpressure).
    int file_fd_ = -1;
    off_t file_offset_ = 0;
    size_t file_left_ = 0;
    bool file_end_ = false; // end_stream of that send_file
    bool file_pending_ = false;
    // Part of in_buf_ read from the file but not yet encoded (paused by backpressure).
    const uint8_t* chunk_ = nullptr;
    size_t chunk_len_ = 0;
    bool chunk_end_ = false; // the chunk ends the stream
    bool chunk_pending_ = false;

    bool next_blocked_ = false;         // next said blocked and its on_writable is armed
    bool caller_waits_ = false;         // we said blocked and owe our caller on_writable
    bool ended_ = false;                // end_stream went to next
    bool dead_ = false;                 // closed, reset or aborted: touch nothing more
    Callback writable_cb_;              // our caller's on_writable
    const Headers* trailers_ = nullptr; // set while send_trailers() finishes the encoder
};

} // namespace wraith
