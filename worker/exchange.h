// One exchange, protocol-independent: the request and its arena, the response as the handler
// sees it (a ResponseWriter whose accounting — status, Content-Length promises, HEAD, tunnels,
// backpressure, the end — lives here once), and the lifecycle from start to the log phase.
// Each protocol derives from it and implements a few hooks that put bytes on its wire:
//
//   worker/http1/exchange.h   one request of an HTTP/1.1 connection
//   worker/http2/stream.h     an HTTP/2 stream (via StreamExchange, below)
//   worker/http3/stream.h     an HTTP/3 stream (via StreamExchange)
//
// StreamExchange adds what HTTP/2 and HTTP/3 share: the request head from decoded fields (the
// 431/414/Host checks, 100 Continue), the request body as a BodyReader over stream flow
// control, and the pending work a stream runs outside the protocol library's callbacks. What
// stays in the protocol's folder is its framing: which field a decoded name is (HTTP/2 by name,
// HTTP/3 by QPACK token), how a head, body bytes and a reset go out, and what "the whole
// response went out" means (HTTP/2: END_STREAM sent; HTTP/3: the end handed to QUIC and every
// byte acknowledged).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/arena.h"
#include "common/http.h"
#include "common/module.h"

namespace wraith {

class BufferPool;
class Worker;

class Exchange : public ResponseWriter {
public:
    ~Exchange() override;
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    Request& request() { return req_; }
    Worker& worker() const { return worker_; }

    // ResponseWriter: the shared accounting; the hooks below do the protocol's part.
    void send_informational(int status, const Headers& headers) final;
    void send_headers(ResponseHead& head, bool end_stream) final;
    Result send_body(std::string_view data, bool end_stream) final;
    Result send_shared_body(std::string_view data, bool end_stream) final;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) final;
    Result send_trailers(const Headers& trailers) final;
    void on_writable(Callback cb) final { writable_cb_ = std::move(cb); }
    void on_abort(Callback cb) final { abort_cb_ = std::move(cb); }
    void reset() final;
    bool headers_sent() const final { return response_ != Response::none; }
    uint64_t body_bytes_sent() const final { return body_sent_; }

protected:
    // Where the response is: nothing sent; the head went out (the body may follow); the
    // handler ended it (end_stream, trailers, or an end without a body).
    enum class Response : uint8_t { none, head_sent, ended };
    // A tunnel (RFC 9110 §7.8 Upgrade, RFC 8441 / RFC 9220 extended CONNECT): none asked for;
    // asked for by the request; open (its 101 or 2xx went out: both directions are byte
    // streams that end on their own).
    enum class Tunnel : uint8_t { none, requested, open };

    Exchange(Worker& worker, const ConnectionInfo& conn, BufferPool* arena_blocks);

    // ---- protocol hooks
    // The transport can no longer carry this response (stream reset or closed, connection
    // gone): every writer call answers `closed`.
    virtual bool transport_gone() const = 0;
    // 1xx fields (not 101), after the shared checks.
    virtual void submit_informational(int status, const Headers& headers) = 0;
    // The final head, accounted already (status_, body_expected_, body_allowed_, tunnel_). The
    // protocol adds date, server, framing. False: it could not (it reset or closed).
    virtual bool submit_head(ResponseHead& head, bool end_stream) = 0;
    // Body bytes the handler gave (already clamped to the Content-Length promise; never
    // called when the body is not allowed). `shared`: the caller keeps them alive until the
    // exchange ends (send_shared_body).
    virtual void queue_body(std::string_view data, bool shared) = 0;
    virtual void queue_file(int fd, off_t offset, size_t len) = 0;
    // Trailer fields to end the body with (queue them; `ended()` follows at once).
    virtual void queue_trailers(const Headers& trailers) = 0;
    // More was queued, or the response ended: get it moving.
    virtual void kick() = 0;
    // The protocol holds more queued response than the high watermark: the producer waits
    // for on_writable.
    virtual bool congested() const = 0;
    // The response ended (response_ == ended). `short_by`: bytes the Content-Length promised
    // that never came (the protocol must not let the client wait for them: reset or close).
    virtual void response_ended(uint64_t short_by) = 0;
    // Abort the response: HTTP/1 closes the connection, HTTP/2 and 3 reset the stream.
    virtual void submit_reset() = 0;

    // ---- for the protocol
    // The request head is complete: the shared checks, then the phases (worker/pipeline.h)
    // with `body` as the request body. `head_error`: a status the protocol already decided
    // (431, 414, 400, 425), with `why`.
    void start(BodyReader& body, int head_error, const char* why);
    // A blocked producer may go on: call from outside any handler's stack.
    void fire_writable();
    // The exchange is over; `complete`: the whole response went out. Runs the abort
    // callbacks if it was not, then the log phase and the access log. Call once.
    void finish(bool complete, uint64_t request_bytes);
    // The stamp and request fields every protocol sets before start().
    void begin_request(int version);
    bool aborted() const { return aborted_; }
    bool open() const { return !aborted_ && !transport_gone(); }
    // Marks the exchange aborted (no handler call may reach the writer any more) and runs
    // the handler's abort callback when the response was not over. `body_failed`: the request
    // body's reader, if the handler waits on it, hears first (the protocol's callback).
    void abort(Callback body_failed = nullptr);

    Worker& worker_;
    Arena arena_;
    Request req_;
    Callback writable_cb_;
    Callback abort_cb_;
    int status_ = 0;
    int64_t body_expected_ = -1; // Content-Length promised, -1 none
    uint64_t body_queued_ = 0;   // body bytes the handler gave us
    uint64_t body_sent_ = 0;     // of them, handed to the transport (for logs)
    Response response_ = Response::none;
    Tunnel tunnel_ = Tunnel::none;
    bool head_request_ = false;
    bool body_allowed_ = true;    // status and method let the response carry bytes
    bool writable_wanted_ = false; // the producer was told `blocked`
    bool aborted_ = false;
    bool started_ = false;

private:
    void end_response();
    Result writer_state();
};

// HTTP/2 and HTTP/3: a request stream among many on a connection.
class StreamExchange : public Exchange, public BodyReader {
public:
    // What a decoded request field is. The protocols tell the pseudo-fields and the few
    // fields handled specially apart (HTTP/3 from QPACK tokens, HTTP/2 by name).
    enum class Field : uint8_t {
        method, scheme, authority, path, protocol, cookie, host, content_length, expect, other
    };
    static Field field_kind(std::string_view name);

    // ---- fed by the protocol's library callbacks (no handler code runs here)
    // False: the field list is abusive (far past the limits): the protocol resets the stream.
    bool on_request_field(Field kind, std::string_view name, std::string_view value,
                          bool keep_name);
    void on_head_complete(bool end_stream);
    // A field too long for the decoder to keep (it skipped it): the request is answered 431.
    void on_request_field_too_large() {
        if (!head_error_)
            head_error_ = 431;
    }
    void on_body(const uint8_t* data, size_t len);
    void on_body_end();

    // ---- run by the connection outside library and handler stacks
    // Pending work: start the exchange, deliver body data, tell a blocked writer to go on.
    void run_pending();
    // The exchange runs and wants request body bytes the client has not sent.
    bool waiting_for_body() const;
    // http.body_timeout passed without a byte: 408 (or a reset once the response started).
    void on_body_timeout();
    // The stream is gone: abort callbacks, log phase. The connection deletes it after.
    void finish_stream();

    // BodyReader
    std::string_view peek() override;
    void consume(size_t n) override;
    bool finished() const override {
        return body_state_ == Body::complete && body_off_ == body_.size();
    }
    bool failed() const override { return body_failed_; }
    void on_data(Callback cb) override;
    void pause() override;
    void resume() override;
    void discard() override;

    bool queued_ = false; // in the connection's pending list

protected:
    // The request body: still arriving; still arriving but dropped by the handler (what comes
    // is credited back at once); all of it arrived.
    enum class Body : uint8_t { receiving, discarding, complete };

    StreamExchange(Worker& worker, const ConnectionInfo& conn, BufferPool* arena_blocks);

    // ---- more hooks
    // Flow-control credit for `n` body bytes the handler consumed (or that were dropped);
    // after the stream closed, connection credit only.
    virtual void credit(size_t n) = 0;
    // The exchange completed: every response byte and the end of the stream went out
    // (HTTP/2: END_STREAM sent; HTTP/3: the end handed to QUIC, every byte acknowledged and
    // no reset). Asked once, when the stream is finished.
    virtual bool response_complete() const = 0;
    // Ask the connection to call run_pending() outside library and handler stacks.
    virtual void schedule() = 0;
    // 100 Continue (RFC 9110 §10.1.1) before the first body read.
    virtual void send_continue() = 0;
    // The limits of this protocol's field list: bytes (name + value + 32 each) and lines.
    virtual uint64_t max_field_bytes() const = 0;
    // Checks only this protocol makes before the phases (HTTP/3: 425 for unsafe 0-RTT); 0 or a
    // status to answer, with `why`.
    virtual int protocol_check(const char** why) { return 0; }
    // The version for Request::version (20 or 30) and the default scheme.
    virtual int version() const = 0;

    // ---- for the protocol
    // The transport closed the stream: what the client sent is all there is.
    void stream_closed();
    // Queued response data drained below the low watermark: a blocked producer may go on.
    void writable_drained();
    // Reads `len` bytes of a response file at `offset` into `dst` (retrying EINTR): how many it
    // read, or 0 after logging why there are none (a read error, a file that shrank): the
    // protocol resets the stream.
    size_t read_file(int fd, off_t offset, char* dst, size_t len) const;

    uint64_t body_received() const { return body_received_; }

    bool closed_ = false; // the protocol closed the stream; the connection reaps it
    Body body_state_ = Body::complete;
    bool body_timed_out_ = false; // http.body_timeout ended the wait for the body

private:
    // 100 Continue (RFC 9110 §10.1.1): not asked for; asked for and owed before the first body
    // read; sent.
    enum class Continue : uint8_t { none, expected, sent };

    void start_stream();
    void maybe_send_continue();

    // The fields are ordered so that none pads the next: a stream's size is paid per request.
    // (queued_, closed_, body_state_ and body_timed_out_ above come first.)
    Continue continue_ = Continue::none;
    bool body_failed_ = false;
    bool body_paused_ = false;
    bool body_too_large_ = false;
    // Work for run_pending(): bits of kPending*.
    static constexpr uint8_t kPendingStart = 1, kPendingData = 2, kPendingWritable = 4;
    uint8_t pending_ = 0;

    // Request head as it arrives.
    uint16_t head_error_ = 0; // status to answer instead of running the exchange
    uint32_t header_count_ = 0;
    uint64_t header_bytes_ = 0;   // RFC 9113 §6.5.2 accounting: name + value + 32 each
    std::string_view host_field_; // Host, used when :authority is absent

    // Request body, buffered up to the stream window until the handler consumes it.
    uint64_t body_received_ = 0;
    std::string body_;
    size_t body_off_ = 0;
    Callback data_cb_;
};

} // namespace wraith
