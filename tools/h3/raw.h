// Raw HTTP/3 for protocol tests (h3get --raw-*): bytes put on QUIC streams verbatim, next to
// or instead of what nghttp3 writes, and the responses on raw request streams read here
// (nghttp3 never sees those streams). Nothing here is on h3load's path.
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace h3 {

class Connection;

// What a connection sends raw, besides raw requests (Connection::submit_raw).
struct RawPlan {
    // An extra unidirectional stream: the type (as a varint), then `bytes`.
    struct UniStream {
        uint64_t type = 0;
        std::vector<uint8_t> bytes;
    };
    std::vector<uint8_t> control; // `control` follows nghttp3's SETTINGS on our control stream.
    bool control_fin = false;     // `control_fin` ends the control stream after `control`.
    bool replace_control = false; // `replace_control`: nghttp3 opens no control stream; ours
                                  // is the type byte 0x00 and then `control_stream`.
    std::vector<uint8_t> control_stream;
    std::vector<uint8_t> qpack_encoder; // `qpack_encoder` follows on our QPACK encoder stream.
    std::vector<UniStream> uni;         // `uni` are opened after the HTTP/3 streams.
    std::vector<uint8_t> crypto; // `crypto` goes in 1-RTT CRYPTO frames once the handshake is
                                 // confirmed (a TLS message no client may send then).
};

// h3get's --raw-* options.
struct RawOptions {
    RawPlan plan;
    bool request_given = false;   // `request_given`: --raw-request replaces the request.
    std::vector<uint8_t> request; // `request` goes on the request stream instead of HEADERS.
    bool request_fin = false;     // `request_fin`: FIN after `request` (--raw-fin).
    bool any = false;             // `any`: some --raw-* option was given (raw mode).
};

class ArgReader;

// Reads one --raw-* option named `arg` (its value from `args`): 1 if it was one, 0 if `arg`
// is some other option, -1 with `error` set if its value is bad.
int read_raw_option(const std::string& arg, ArgReader& args, RawOptions& o, std::string& error);
// Checks the --raw-* options against each other; false with `error` set.
bool check_raw_options(const RawOptions& o, std::string& error);
// "01 02", "0102", "01_02" (case-insensitive); false on odd digits or other characters.
bool parse_hex(std::string_view text, std::vector<uint8_t>& out);

// The raw streams of one connection: what is left to send on each, which acknowledged bytes
// belong to nghttp3, and the response parser of each raw request stream.
//
// In raw mode our QPACK decoder announces no dynamic table, so the server's responses are
// decodable without its encoder stream, and our decoder stream is left out (RFC 9204 §4.2
// allows that): nghttp3 writes it to kPhantomStream, which never reaches the wire. That
// leaves a unidirectional stream for --raw-uni when the server allows only three.
class RawStreams {
public:
    // A client unidirectional stream ID no real stream gets (ID & 3 == 2).
    static constexpr int64_t kPhantomStream = (int64_t{1} << 60) + 2;

    RawStreams(Connection& conn, const RawPlan& plan);
    RawStreams(const RawStreams&) = delete;
    RawStreams& operator=(const RawStreams&) = delete;
    ~RawStreams();

    // How many unidirectional streams the plan opens itself, on top of nghttp3's.
    size_t own_uni_streams() const;
    // Opens the raw control stream that replaces nghttp3's (replace_control); returns its ID.
    bool open_control(int64_t& stream_id);
    // Attaches the appends to nghttp3's control (-1 if replaced) and encoder streams, then
    // opens the extra unidirectional streams.
    bool open(int64_t control, int64_t encoder);
    // Submits plan.crypto as 1-RTT CRYPTO data, once; false if ngtcp2 refused it.
    bool send_crypto();
    // Opens nothing: `stream_id` (just opened) becomes a raw request stream.
    bool add_request(int64_t stream_id, std::span<const uint8_t> bytes, bool fin, void* user);

    // ---- sending

    // The next raw bytes to send; false if none can go now.
    bool next(int64_t& stream_id, nghttp3_vec& vec, bool& fin);
    // ngtcp2 took `n` bytes of the chunk from next() (and its FIN, if all of it).
    void sent(int64_t stream_id, size_t n);
    // nghttp3 wrote `n` bytes on `stream_id` (matters on streams raw bytes share).
    void http_sent(int64_t stream_id, size_t n);
    void set_blocked(int64_t stream_id, bool blocked);
    // The stream can take no more (STOP_SENDING, or ngtcp2 says it is shut).
    void stop(int64_t stream_id);
    // `len` more bytes from `offset` are acknowledged; returns how many of them are nghttp3's.
    uint64_t acked(int64_t stream_id, uint64_t offset, uint64_t len);
    // Every raw byte (and FIN) on the non-request streams is acknowledged, or its stream
    // was stopped: the server has read them and said nothing (or it would have closed).
    bool settled() const;

    // ---- receiving

    bool is_request(int64_t stream_id) const;
    // Response bytes on a raw request stream; 0, or the nghttp3 error to close with.
    int on_response_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin);
    // The stream closed; true if it was a raw stream (nghttp3 must not hear of it).
    bool on_stream_close(int64_t stream_id, uint64_t app_error);

private:
    // Raw bytes to send on one stream.
    struct Out {
        int64_t id = -1;
        std::vector<uint8_t> bytes;
        size_t sent = 0;
        bool fin = false; // `fin`: FIN after `bytes`.
        bool fin_sent = false;
        bool blocked = false; // `blocked` by stream flow control.
        bool stopped = false; // `stopped`: nothing more can go (STOP_SENDING, shut).
        bool closed = false;
        bool request = false; // `request` streams do not hold back settled().
        bool shared = false;  // `shared` with nghttp3 (control, encoder): `runs` say whose.
        uint64_t offset = 0;  // `offset` is the stream offset written so far (all owners).
        uint64_t acked = 0;   // `acked` is the acknowledged prefix.
        uint64_t raw_end = 0; // `raw_end` is the end offset of the last raw byte sent.
        std::vector<std::pair<uint64_t, bool>> runs; // `runs`: (end offset, raw?) in order.
    };
    // A response being read on a raw request stream.
    struct Response;

    Out* find(int64_t stream_id);
    const Out* find(int64_t stream_id) const;
    Response* find_response(int64_t stream_id);
    void add_run(Out& out, size_t n, bool raw);
    bool open_uni(std::vector<uint8_t> bytes, int64_t* stream_id);
    int finish_frame(Response& r);
    int decode_headers(Response& r);

    Connection& conn_;
    const RawPlan& plan_;
    bool crypto_sent_ = false;
    std::vector<Out> outs_; // `outs_` in the order they go out.
    std::vector<std::unique_ptr<Response>> responses_;
    nghttp3_qpack_decoder* decoder_ = nullptr; // `decoder_` has no dynamic table.
};

} // namespace h3
