// One HTTP/3 request stream (RFC 9114 §4.1) carrying one exchange. worker/exchange.h does
// what every protocol shares: the request head and its checks, the request body as a
// BodyReader over stream flow control, the response writer's accounting and the lifecycle.
// What is HTTP/3's stays here: QPACK tokens mapped to the exchange's fields, 425 for a request
// in 0-RTT early data that is not safe to replay, the response fields as nghttp3 wants them,
// stream reset codes, and the response bytes nghttp3 pulls. QUIC keeps sent data until the
// peer acknowledges it, so response bytes live in a chain of pooled blocks until then, and the
// exchange is complete only when every byte was acknowledged; files are read into the chain a
// little ahead of the sender, never whole. Like HTTP/2 streams, a stream only submits to
// nghttp3: the session (worker/http3/session.h) runs every handler callback from its
// connection's deferred work, never inside ngtcp2 or nghttp3.
#pragma once

#include <nghttp3/nghttp3.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/exchange.h"
#include "worker/output_segment.h"

namespace wraith::http3 {

class Session;

class Stream final : public StreamExchange {
public:
    Stream(Session& session, int64_t id);
    ~Stream() override;
    // A stream per request: their memory is recycled within the worker, not malloc'd each time.
    static void* operator new(size_t size);
    static void operator delete(void* p, size_t size);

    int64_t id() const { return id_; }
    bool closed() const { return closed_; }

    // What the exchange makes of a decoded field: by its QPACK token (nghttp3's number for a
    // name it knows, -1 for others), by name only where QPACK has no token (Expect).
    static Field field_of(int32_t token, std::string_view name);

    // ---- fed by the session's nghttp3 callbacks (no handler code runs here), with the
    // exchange's on_body() and on_body_end()

    // `static_name`: the name is nghttp3's own constant (QPACK's static table), kept as is.
    void on_header(int32_t token, std::string_view name, std::string_view value, bool static_name);
    // `early`: the head arrived in 0-RTT data, before the handshake completed.
    void on_head_complete(bool fin, bool early);
    // The protocol resets the stream with `app_error_code` (the peer stopped reading, or
    // the request was malformed): the response, if any, is abandoned.
    void reset_with(uint64_t app_error_code);
    // Both directions are over (or the connection is): the session reaps the stream.
    void on_closed() { stream_closed(); }
    // nghttp3 pulls response bytes: vectors into the block chain, EOF, or WOULDBLOCK.
    nghttp3_ssize read_data(nghttp3_vec* vec, size_t veccnt, uint32_t* flags);
    void on_acked(uint64_t n);

    Stream* prev_ = nullptr; // the session's list
    Stream* next_ = nullptr;

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
    using Segment = OutputSegment; // memory: a range of staged_

    // The sending side of the QUIC stream (RFC 9000 §3.1): the response may still add bytes;
    // its end was handed to nghttp3 with the last of them (complete once the peer acknowledged
    // every byte); reset, whatever was sent abandoned.
    enum class Sending : uint8_t { data, fin, reset };

    // ---- Exchange hooks
    bool transport_gone() const override { return closed_ || sending_ == Sending::reset; }
    // Fields go to nghttp3 as one FieldBlock each (names lower-cased, nothing it must copy);
    // trailers wait for read_data() to end the body with them.
    void submit_informational(int status, const Headers& headers) override;
    bool submit_head(ResponseHead& head, bool end_stream) override;
    void queue_trailers(const Headers& trailers) override;
    // Bytes go into the block chain, or are staged behind a file range that comes first.
    void queue_body(std::string_view data, bool shared) override;
    void queue_file(int fd, off_t offset, size_t len) override;
    bool congested() const override;
    void kick() override;
    void response_ended(uint64_t short_by) override;
    void submit_reset() override { reset_with(NGHTTP3_H3_INTERNAL_ERROR); }

    // ---- StreamExchange hooks
    int version() const override { return 30; }
    uint64_t max_field_bytes() const override;     // http.max_header_size, as our SETTINGS say
    int protocol_check(const char** why) override; // 425 for unsafe 0-RTT (RFC 8470 §5.2)
    void schedule() override;
    void credit(size_t n) override;
    void send_continue() override { submit_informational(100, {}); }
    bool response_complete() const override {
        return sending_ == Sending::fin && acked_ == written_;
    }

    // Free room at the end of the chain (a fresh block when the last is full): `*room` bytes.
    char* tail(size_t* room);
    void append(const char* data, size_t len);
    // Moves queued segments into the chain until kReadAhead bytes wait unsent.
    void materialise();
    size_t unsent() const { return static_cast<size_t>(written_ - handed_) + staged_bytes_; }

    Session& session_; // the HTTP/3 session of the stream's connection
    int64_t id_;

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
    // Body queued behind a file range, in order; staged_ holds the bytes of memory segments.
    std::vector<Segment> segs_;
    size_t seg_head_ = 0;
    std::string staged_;
    size_t staged_bytes_ = 0;
    nghttp3_nv* trailers_ = nullptr; // sent after the last DATA (arena), when given
    uint32_t trailer_count_ = 0;
    Sending sending_ = Sending::data;
    bool data_blocked_ = false; // read_data said WOULDBLOCK: resume on more
    bool early_ = false;        // the head arrived in 0-RTT data
};

} // namespace wraith::http3
