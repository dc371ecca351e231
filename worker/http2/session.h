// The server side of the HTTP/2 protocol (RFC 9113), without I/O: the connection preface,
// frame parsing and validation, CONTINUATION assembly, HPACK, the stream state machine, flow
// control in both directions, SETTINGS, PING, GOAWAY and the flood limits of [http2]. Bytes go
// in through receive(); frames come out into an OutputBuffer. The connection
// (worker/http2/connection.h) does the I/O and timers; streams (worker/http2/stream.h) derive
// from StreamState and hear about their requests through its hooks. Keeping the protocol apart
// from the worker is what lets tests and the fuzzer (tests/fuzz/fuzz_http2.cc) drive it alone.
//
// What an idle connection holds here: this object and the HPACK decoder's table. The partial
// frame and header block buffers and the stream index are freed by release_idle().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/http.h"
#include "worker/http2/frame.h"
#include "worker/http2/hpack.h"
#include "worker/http2/output_buffer.h"

namespace wraith::http2 {

class Session;

// Our side's limits and SETTINGS.
struct SessionLimits {
    uint32_t max_concurrent_streams = 128;
    uint32_t initial_window_size = 1 << 20;
    uint32_t connection_window_size = 16 << 20;
    uint32_t max_frame_size = 16384;
    uint32_t max_header_list_size = 32768;
    uint32_t max_continuations = 8;
    uint32_t rapid_reset_limit = 100;   // RST_STREAM per second...
    uint32_t rapid_reset_burst = 1000;  // ...with this many at once
    uint32_t control_frame_limit = 100; // PING, SETTINGS, PRIORITY, empty DATA per second
    uint32_t max_settings = 16;         // entries in one SETTINGS frame
};

// The protocol state of one stream (RFC 9113 §5.1) and the hooks through which the session
// hands it the request and takes its response. Hooks never run handler code: they queue.
class StreamState {
public:
    explicit StreamState(int32_t id) : id_(id) {}
    virtual ~StreamState() = default;
    int32_t id() const { return id_; }
    // RST_STREAM was sent or received: nothing more goes out on the stream.
    bool stream_reset() const { return reset_ || gone_; }

    // ---- request
    // A decoded request (or trailer) field, after the RFC 9113 §8.2 checks. False: the field
    // list is abusive (far past the limits): the stream is reset with INTERNAL_ERROR.
    virtual bool on_field(std::string_view name, std::string_view value, bool trailer) = 0;
    // A field longer than the decoder keeps: the request is answered 431.
    virtual void on_field_oversized() = 0;
    // The request head is complete and well-formed.
    virtual void on_head(bool end_stream) = 0;
    // Body bytes; the stream gives flow-control credit back with Session::consume().
    virtual void on_data(const uint8_t* data, size_t len) = 0;
    // The request ended (END_STREAM on DATA or on trailers).
    virtual void on_data_end() = 0;
    // Our END_STREAM went out.
    virtual void on_end_stream_sent() = 0;
    // The stream closed (both ends done, or a reset either way); the session forgets it.
    virtual void on_closed(uint32_t error_code) = 0;

    // ---- response body, pulled as DATA frames
    virtual size_t body_available() const = 0;
    // No more body will be queued (trailers, if any, are ready).
    virtual bool body_ended() const = 0;
    // Copies `len` (≤ body_available()) bytes into `dst`: how many it copied; fewer means a
    // failure (a file read error): the stream is reset.
    virtual size_t body_copy(uint8_t* dst, size_t len) = 0;
    // Trailer fields to end the body with (none: the last DATA ends the stream).
    virtual std::span<const Header> trailers() const { return {}; }

private:
    friend class Session;
    // Where the request head is (RFC 9113 §8.3): which pseudo-fields came, whether a regular
    // one did (no pseudo-field may follow), whether something made it malformed.
    static constexpr uint8_t kMethod = 1, kScheme = 2, kAuthority = 4, kPath = 8, kProtocol = 16,
                             kConnect = 32;

    int32_t id_;
    int32_t recv_window_ = 0;     // bytes the client may still send
    int64_t send_window_ = 0;     // bytes we may still send (may go negative, §6.9.2)
    uint32_t credit_ = 0;         // consumed bytes not yet returned in a WINDOW_UPDATE
    int64_t content_length_ = -1; // the request's, checked against its DATA (§8.1.1)
    uint64_t data_received_ = 0;
    StreamState* ready_next_ = nullptr; // the session's list of streams with output
    StreamState* ready_prev_ = nullptr;
    uint8_t pseudo_ = 0;
    bool in_ready_ = false;
    bool regular_seen_ = false;
    bool malformed_ = false;
    bool abusive_ = false;
    bool head_done_ = false;    // the request head came; a later HEADERS is trailers
    bool remote_ended_ = false; // the client's END_STREAM came
    bool local_end_ = false;    // our END_STREAM is queued (HEADERS) or to be sent (DATA)
    bool end_sent_ = false;     // our END_STREAM went out
    bool reset_ = false;        // RST_STREAM sent or received: closed as far as frames go
    bool gone_ = false;         // closed: the session forgot it
};

// The connection's side of the session: streams come from it and it hears what only the
// connection can act on.
class SessionOwner {
public:
    virtual ~SessionOwner() = default;
    // A new request stream. Null: refused (REFUSED_STREAM).
    virtual StreamState* open_stream(int32_t id) = 0;
    // The stream closed and the session forgot it (after StreamState::on_closed).
    virtual void stream_closed(StreamState* s) = 0;
    virtual void ping_acked(const uint8_t opaque[8]) = 0;
    // The session ended the connection with GOAWAY(error): why, for the log.
    virtual void connection_error(uint32_t error, const char* why) = 0;
};

class Session {
public:
    Session(SessionOwner& owner, OutputBuffer& out, const SessionLimits& limits);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Our SETTINGS and the connection window's first WINDOW_UPDATE: the first bytes we send.
    void start();
    // Feeds received bytes at loop time `now` (seconds, for the flood limits). False: the
    // connection is ending (a connection error was queued as GOAWAY): read no more.
    bool receive(const uint8_t* data, size_t len, double now);
    // Serialises DATA (and trailers) of ready streams while less than `high` bytes are queued,
    // and runs the deferred stream closes.
    void produce(size_t high);
    // Frees the buffers an idle connection needs not keep.
    void release_idle();
    // The connection is deleting every stream: the session must not touch them again.
    void forget_streams();

    // ---- connection control
    // GOAWAY(last stream, error) and no more reading (a connection error or close).
    void terminate(uint32_t error, const char* why = nullptr);
    // RFC 9113 §6.8 graceful shutdown, first step: GOAWAY with the largest id and a PING.
    void shutdown_notice(const uint8_t ping_opaque[8]);
    // Second step: GOAWAY naming the last stream served; later streams are ignored.
    void final_goaway();

    bool terminated() const { return terminated_; }
    bool final_goaway_sent() const { return final_goaway_; }
    // Nothing more will be read or sent: every stream is done after a GOAWAY (either way),
    // or the connection was terminated.
    bool finished() const {
        return terminated_ || ((final_goaway_ || goaway_received_) && streams_.empty());
    }
    bool has_ready() const { return ready_head_ != nullptr; }
    size_t open_streams() const { return streams_.size(); }
    int32_t last_stream_id() const { return last_stream_id_; }
    const HpackDecoder& decoder() const { return decoder_; }

    // ---- for streams
    // Room for a header block of up to `bound` encoded bytes: where to encode it.
    uint8_t* begin_headers(size_t bound);
    // Frames the block ending at `end` as HEADERS (+ CONTINUATION) on `s`.
    void end_headers(StreamState& s, uint8_t* end, bool end_stream);
    // More body (or its end) is queued.
    void resume(StreamState& s);
    // RST_STREAM(error); the stream closes from produce() (never inside a handler's call).
    void reset(StreamState& s, uint32_t error);
    // `len` request body bytes were consumed (or dropped): flow-control credit. `s` null:
    // the stream is gone, the connection window only.
    void consume(StreamState* s, size_t len);

private:
    class FieldSink;

    bool process_frame(const FrameHeader& h, const uint8_t* payload);
    void on_data(const FrameHeader& h, const uint8_t* p);
    void on_headers(const FrameHeader& h, const uint8_t* p);
    void on_continuation(const FrameHeader& h, const uint8_t* p);
    void on_settings(const FrameHeader& h, const uint8_t* p);
    void on_window_update(const FrameHeader& h, const uint8_t* p);
    void on_rst_stream(const FrameHeader& h, const uint8_t* p);
    void on_priority(const FrameHeader& h, const uint8_t* p);
    void header_block(const uint8_t* block, size_t len);
    void end_of_head(StreamState& s);
    bool take_token(double& tokens, double& stamp, uint32_t rate, uint32_t burst);
    void flood(const char* what);

    StreamState* find(int32_t id) const;
    void close_stream(StreamState& s, uint32_t error);
    void end_sent(StreamState& s);
    bool send_data(StreamState& s);
    void ready_push(StreamState& s);
    void ready_remove(StreamState& s);
    void write_rst(int32_t id, uint32_t error);
    void remember_reset(int32_t id);
    bool recently_reset(int32_t id) const;
    uint8_t* room(size_t n) { return reinterpret_cast<uint8_t*>(out_.reserve(n)); }
    void commit(uint8_t* start, uint8_t* end) { out_.commit(static_cast<size_t>(end - start)); }

    SessionOwner& owner_;
    OutputBuffer& out_;
    SessionLimits limits_;
    HpackDecoder decoder_;
    OutputBuffer in_;                   // a frame split across reads
    OutputBuffer block_;                // a header block split across HEADERS and CONTINUATION
    std::vector<StreamState*> streams_; // open streams, by increasing id
    std::vector<StreamState*> closing_; // reset by us: closed from produce()
    StreamState* ready_head_ = nullptr; // streams with something to send, round robin
    StreamState* ready_tail_ = nullptr;
    double now_ = 0;

    int64_t send_window_ = kDefaultWindow; // connection window for our DATA
    int64_t recv_window_ = kDefaultWindow; // what the client may still send us
    uint32_t credit_ = 0;                  // consumed, not yet returned (connection)
    uint32_t peer_initial_window_ = kDefaultWindow;
    uint32_t peer_max_frame_size_ = kDefaultMaxFrameSize;
    int32_t last_stream_id_ = 0; // highest client stream id seen (§5.1.1)
    int32_t goaway_last_id_ = kMaxWindow;
    int32_t recent_resets_[4] = {}; // streams we reset lately: their frames are dropped (§5.4.2)
    uint8_t recent_reset_next_ = 0;
    uint8_t preface_left_ = kClientPrefaceSize;
    // The header block being assembled or decoded.
    struct Block {
        int32_t stream_id = 0; // CONTINUATION expected on it while non-zero
        int32_t id = 0;        // the stream the block belongs to
        uint8_t flags = 0;     // of its HEADERS
        uint8_t continuations = 0;
        bool trailer = false;
        bool refuse = false; // a new stream we refuse after decoding the block
        bool self_dependent = false;
        StreamState* stream = nullptr; // null: decode only (HPACK state), drop the fields
    } block_info_;
    bool settings_seen_ = false; // the client's first SETTINGS came
    bool first_block_ = true;    // no header block sent yet (size update to 0 goes first)
    bool terminated_ = false;
    bool goaway_received_ = false;
    bool final_goaway_ = false;
    bool in_produce_ = false;
    double reset_tokens_ = 0; // RST_STREAM (rapid reset, CVE-2023-44487)
    double reset_stamp_ = 0;
    double control_tokens_ = 0; // PING, SETTINGS, PRIORITY, empty DATA (CVE-2019-9512/9518)
    double control_stamp_ = 0;
};

} // namespace wraith::http2
