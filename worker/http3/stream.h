// One HTTP/3 request stream (RFC 9114 §4.1) carrying one exchange: the request assembled from
// the HEADERS nghttp3 decoded, its body as a BodyReader over QUIC stream flow control, and the
// response as a ResponseWriter whose bytes nghttp3 pulls. QUIC keeps sent data until the peer
// acknowledges it, so response bytes live in a chain of pooled blocks until then; files are
// read into it a little ahead of the sender, never whole. Like HTTP/2 streams, a stream only
// submits to nghttp3: the session (worker/http3/session.h) runs every handler callback from
// its connection's deferred work, never inside ngtcp2 or nghttp3.
#pragma once

#include <nghttp3/nghttp3.h>

#include <cstdint>
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "common/arena.h"
#include "common/http.h"

namespace wraith::http3 {

class Session;

class Stream final : public BodyReader, public ResponseWriter {
public:
    Stream(Session& session, int64_t id);
    ~Stream() override;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    // A stream per request: their memory is recycled within the worker, not malloc'd each time.
    static void* operator new(size_t size);
    static void operator delete(void* p, size_t size);

    int64_t id() const { return id_; }
    bool closed() const { return closed_; }

    // ---- fed by the session's nghttp3 callbacks (no handler code runs here)
    // `static_name`: the name is nghttp3's own constant (QPACK's static table), kept as is.
    void on_header(int32_t token, std::string_view name, std::string_view value,
                   bool static_name);
    void on_head_complete(bool fin, bool early);
    void on_body(const uint8_t* data, size_t len);
    void on_body_end();
    // The protocol resets the stream with `app_error_code` (the peer stopped reading, or
    // the request was malformed): the response, if any, is abandoned.
    void reset_with(uint64_t app_error_code);
    void on_closed(uint64_t app_error_code);
    // nghttp3 pulls response bytes: vectors into the block chain, EOF, or WOULDBLOCK.
    nghttp3_ssize read_data(nghttp3_vec* vec, size_t veccnt, uint32_t* flags);
    void on_acked(uint64_t n);

    // ---- run by the session outside library and handler stacks
    void run_pending();
    // The stream is gone: abort callbacks, log. The session deletes it after.
    void finish();

    // BodyReader
    std::string_view peek() override;
    void consume(size_t n) override;
    bool finished() const override { return body_done_ && body_off_ == body_.size(); }
    bool failed() const override { return body_failed_; }
    void on_data(Callback cb) override;
    void pause() override { body_paused_ = true; }
    void resume() override;
    void discard() override;

    // ResponseWriter
    void send_informational(int status, const Headers& headers) override;
    void send_headers(ResponseHead& head, bool end_stream) override;
    Result send_body(std::string_view data, bool end_stream) override;
    Result send_shared_body(std::string_view data, bool end_stream) override;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override;
    Result send_trailers(const Headers& trailers) override;
    void on_writable(Callback cb) override { writable_cb_ = std::move(cb); }
    void on_abort(Callback cb) override { abort_cb_ = std::move(cb); }
    void reset() override;
    bool headers_sent() const override { return headers_sent_; }
    uint64_t body_bytes_sent() const override { return body_bytes_; }

    Stream* prev_ = nullptr; // the session's list
    Stream* next_ = nullptr;
    bool queued_ = false;    // in the session's pending list

private:
    static constexpr size_t kBlockSize = 16384;
    static constexpr size_t kHighWatermark = 64 * 1024; // unsent bytes above: writer blocked
    static constexpr size_t kLowWatermark = 16 * 1024;
    static constexpr size_t kReadAhead = 64 * 1024; // file bytes read before they are sent
    static constexpr size_t kMaxQueuedFiles = 8;

    // The response's blocks in stream order. A response in flight rarely spans more than a
    // few 16 KiB blocks, so the first few slots are inline: no allocation per stream.
    class BlockQueue {
    public:
        bool empty() const { return size_ == 0; }
        size_t size() const { return size_; }
        char* operator[](size_t i) const { return data()[head_ + i]; }
        char* front() const { return data()[head_]; }
        char* back() const { return data()[head_ + size_ - 1]; }
        void push_back(char* block) {
            if (head_ + size_ == capacity())
                make_room();
            data()[head_ + size_++] = block;
        }
        void pop_front() {
            ++head_;
            if (--size_ == 0)
                head_ = 0;
        }
        void clear() { head_ = size_ = 0; }

    private:
        static constexpr size_t kInline = 4;
        char** data() { return heap_.empty() ? inline_ : heap_.data(); }
        char* const* data() const { return heap_.empty() ? inline_ : heap_.data(); }
        size_t capacity() const { return heap_.empty() ? kInline : heap_.size(); }
        void make_room() {
            if (head_ > 0) { // slide to the front
                std::copy(data() + head_, data() + head_ + size_, data());
                head_ = 0;
                return;
            }
            std::vector<char*> bigger(capacity() * 2);
            std::copy(data(), data() + size_, bigger.begin());
            heap_ = std::move(bigger);
        }
        char* inline_[kInline];
        std::vector<char*> heap_;
        size_t head_ = 0;
        size_t size_ = 0;
    };

    // A queued piece of body not yet in the block chain: a file range, or bytes that had to
    // wait behind one.
    struct Segment {
        int fd;        // -1: staged_ bytes
        off_t offset;  // file offset, or offset into staged_
        size_t len;
    };

    void start();
    void schedule();
    void kick();
    void end_response();
    void append(const char* data, size_t len);
    // Moves queued segments into the chain until kReadAhead bytes wait unsent.
    bool materialise();
    size_t unsent() const { return static_cast<size_t>(written_ - handed_) + staged_bytes_; }
    Result writer_state();
    void shutdown(uint64_t app_error_code);
    void maybe_writable();

    Session& session_; // the HTTP/3 session of the stream's connection
    int64_t id_;
    Arena arena_;
    Request req_;

    // Request head.
    uint64_t header_bytes_ = 0;
    uint32_t header_count_ = 0;
    int head_error_ = 0;
    std::string_view host_field_;
    bool early_ = false; // the head arrived in 0-RTT data

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

    // Response bytes: blocks cover stream body offsets [chain_base_, written_); nghttp3 holds
    // pointers to [acked_, handed_) until the peer acknowledges them.
    BlockQueue blocks_;
    // A whole body the handler keeps alive (send_shared_body): [0, written_) is shared_'s
    // bytes, handed to nghttp3 in place; blocks_ stays empty.
    const char* shared_ = nullptr;
    uint64_t chain_base_ = 0;
    uint64_t acked_ = 0;
    uint64_t handed_ = 0;
    uint64_t written_ = 0;
    std::vector<Segment> segs_;
    size_t seg_head_ = 0;
    std::string staged_;
    size_t staged_bytes_ = 0;
    Callback writable_cb_;
    Callback abort_cb_;
    int status_ = 0;
    int64_t body_expected_ = -1;
    uint64_t body_queued_ = 0;
    uint64_t body_bytes_ = 0;
    nghttp3_nv* trailers_ = nullptr;
    size_t trailer_count_ = 0;
    bool head_request_ = false;
    bool body_allowed_ = true;
    bool headers_sent_ = false;
    bool response_ended_ = false;
    bool data_blocked_ = false;   // read_data said WOULDBLOCK: resume on more
    bool writable_wanted_ = false;
    bool reset_sent_ = false;
    bool tunnel_ = false;      // an extended CONNECT (RFC 9220): DATA is a byte stream
    bool tunnel_open_ = false; // its 2xx went out: both directions run and end on their own

    // Lifecycle.
    bool started_ = false;
    bool start_pending_ = false;
    bool data_pending_ = false;
    bool writable_pending_ = false;
    bool closed_ = false;
    bool aborted_ = false;
    bool fin_sent_ = false; // every response byte was handed over with the end of stream
};

} // namespace wraith::http3
