// Raw streams (see raw.h): what goes on the wire verbatim, and a small HTTP/3 response reader
// (frames, then QPACK with the static table only) for the raw request streams.
#include "tools/h3/raw.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>

#include "tools/h3/args.h"
#include "tools/h3/connection.h"

namespace h3 {

namespace {

constexpr uint64_t kFrameData = 0x00;
constexpr uint64_t kFrameHeaders = 0x01;
// A response header block larger than this is not what a test server sends.
constexpr size_t kMaxHeaderBlock = 256 * 1024;

size_t varint_size(uint8_t first) {
    return size_t{1} << (first >> 6);
}

uint64_t read_varint(const uint8_t* p, size_t n) {
    uint64_t v = p[0] & 0x3f;
    for (size_t i = 1; i < n; ++i) {
        v = (v << 8) | p[i];
    }
    return v;
}

void append_varint(std::vector<uint8_t>& out, uint64_t v) {
    if (v < (1u << 6)) {
        out.push_back(static_cast<uint8_t>(v));
        return;
    }
    size_t n = v < (1u << 14) ? 2 : v < (1u << 30) ? 4 : 8;
    uint8_t prefix = n == 2 ? 0x40 : n == 4 ? 0x80 : 0xc0;
    for (size_t i = 0; i < n; ++i) {
        auto byte = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
        out.push_back(i == 0 ? static_cast<uint8_t>(byte | prefix) : byte);
    }
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = static_cast<char>(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// A number in decimal or 0x-hex.
bool parse_number(std::string_view text, uint64_t& out) {
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    }
    if (text.empty() || text.size() > 16) {
        return false;
    }
    out = 0;
    for (char c : text) {
        int d = hex_digit(c);
        if (d < 0 || d >= base) {
            return false;
        }
        out = out * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    }
    return true;
}

} // namespace

bool parse_hex(std::string_view text, std::vector<uint8_t>& out) {
    out.clear();
    int high = -1;
    for (char c : text) {
        if (c == ' ' || c == '_' || c == ':' || c == '\t') {
            continue;
        }
        int d = hex_digit(c);
        if (d < 0) {
            return false;
        }
        if (high < 0) {
            high = d;
        } else {
            out.push_back(static_cast<uint8_t>(high << 4 | d));
            high = -1;
        }
    }
    return high < 0;
}

int read_raw_option(const std::string& arg, ArgReader& args, RawOptions& o, std::string& error) {
    if (arg.rfind("--raw-", 0) != 0) {
        return 0;
    }
    o.any = true;
    if (arg == "--raw-fin" || arg == "--raw-control-fin") {
        (arg == "--raw-fin" ? o.request_fin : o.plan.control_fin) = true;
        return 1;
    }
    std::vector<uint8_t>* target = nullptr;
    if (arg == "--raw-request") {
        target = &o.request;
        o.request_given = true;
    } else if (arg == "--raw-control") {
        target = &o.plan.control;
    } else if (arg == "--raw-control-stream") {
        target = &o.plan.control_stream;
        o.plan.replace_control = true;
    } else if (arg == "--raw-qpack-encoder") {
        target = &o.plan.qpack_encoder;
    } else if (arg == "--raw-crypto") {
        target = &o.plan.crypto;
    } else if (arg != "--raw-uni") {
        error = "unknown option " + arg;
        return -1;
    }
    std::string value;
    if (!args.value(value)) {
        error = arg + " needs a value";
        return -1;
    }
    if (target) {
        const std::string given = value.size() > 80 ? value.substr(0, 80) + "..." : value;
        if (!value.empty() && value[0] == '@') {
            // Hex too long for one argument (Linux caps each at 128 KiB): from a file.
            std::ifstream in(value.substr(1), std::ios::binary);
            std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            if (!in.good() && !in.eof()) {
                error = "cannot read " + value.substr(1) + " for " + arg;
                return -1;
            }
            std::erase_if(text, [](char c) { return c == '\n' || c == '\r'; });
            value = std::move(text);
        }
        if (!parse_hex(value, *target)) {
            error = "bad hex for " + arg + ": " + given;
            return -1;
        }
        return 1;
    }
    // --raw-uni TYPE:HEX
    RawPlan::UniStream uni;
    auto colon = value.find(':');
    if (colon == std::string::npos ||
        !parse_number(std::string_view(value).substr(0, colon), uni.type) ||
        uni.type >= (uint64_t{1} << 62) ||
        !parse_hex(std::string_view(value).substr(colon + 1), uni.bytes)) {
        error = "--raw-uni takes TYPE:HEX (TYPE decimal or 0x-hex): " + value;
        return -1;
    }
    o.plan.uni.push_back(std::move(uni));
    return 1;
}

bool check_raw_options(const RawOptions& o, std::string& error) {
    if (o.request_fin && !o.request_given) {
        error = "--raw-fin goes with --raw-request";
        return false;
    }
    if (o.plan.replace_control && !o.plan.control.empty()) {
        error = "--raw-control-stream is the whole control stream: put --raw-control's bytes "
                "in it";
        return false;
    }
    return true;
}

struct RawStreams::Response {
    int64_t id = -1;
    void* user = nullptr;  // `user` is the handler's pointer for this stream.
    uint8_t head[16] = {}; // `head` gathers a frame's type and length varints.
    size_t head_len = 0;
    bool in_payload = false; // `in_payload`: `type` and `left` are valid.
    uint64_t type = 0;
    uint64_t left = 0;          // `left` is the payload not yet read.
    std::vector<uint8_t> block; // `block` is a HEADERS payload being gathered.
    bool final_headers = false; // `final_headers`: a non-1xx HEADERS arrived.
    bool ended = false;
    nghttp3_qpack_stream_context* sctx = nullptr;
};

RawStreams::RawStreams(Connection& conn, const RawPlan& plan) : conn_(conn), plan_(plan) {
    nghttp3_qpack_decoder_new(&decoder_, 0, 0, nghttp3_mem_default());
}

RawStreams::~RawStreams() {
    for (auto& r : responses_) {
        nghttp3_qpack_stream_context_del(r->sctx);
    }
    if (decoder_) {
        nghttp3_qpack_decoder_del(decoder_);
    }
}

size_t RawStreams::own_uni_streams() const {
    return plan_.uni.size() + (plan_.replace_control ? 1 : 0);
}

bool RawStreams::open_uni(std::vector<uint8_t> bytes, int64_t* stream_id) {
    Out out;
    if (ngtcp2_conn_open_uni_stream(conn_.conn_, &out.id, nullptr) != 0) {
        return false;
    }
    out.bytes = std::move(bytes);
    if (stream_id) {
        *stream_id = out.id;
    }
    outs_.push_back(std::move(out));
    return true;
}

bool RawStreams::open_control(int64_t& stream_id) {
    std::vector<uint8_t> bytes{0x00}; // RFC 9114 §6.2.1: the control stream type
    bytes.insert(bytes.end(), plan_.control_stream.begin(), plan_.control_stream.end());
    if (!open_uni(std::move(bytes), &stream_id)) {
        return false;
    }
    outs_.back().fin = plan_.control_fin;
    return true;
}

bool RawStreams::open(int64_t control, int64_t encoder) {
    auto share = [&](int64_t id, const std::vector<uint8_t>& bytes, bool fin) {
        if (id < 0 || (bytes.empty() && !fin)) {
            return;
        }
        Out out;
        out.id = id;
        out.bytes = bytes;
        out.fin = fin;
        out.shared = true;
        outs_.push_back(std::move(out));
    };
    share(control, plan_.control, plan_.control_fin);
    share(encoder, plan_.qpack_encoder, false);
    for (const auto& uni : plan_.uni) {
        std::vector<uint8_t> bytes;
        append_varint(bytes, uni.type);
        bytes.insert(bytes.end(), uni.bytes.begin(), uni.bytes.end());
        if (!open_uni(std::move(bytes), nullptr)) {
            return false;
        }
    }
    return true;
}

bool RawStreams::send_crypto() {
    if (crypto_sent_ || plan_.crypto.empty()) {
        return true;
    }
    crypto_sent_ = true;
    return ngtcp2_conn_submit_crypto_data(conn_.conn_, NGTCP2_ENCRYPTION_LEVEL_1RTT,
                                          plan_.crypto.data(), plan_.crypto.size()) == 0;
}

bool RawStreams::add_request(int64_t stream_id, std::span<const uint8_t> bytes, bool fin,
                             void* user) {
    auto r = std::make_unique<Response>();
    if (nghttp3_qpack_stream_context_new(&r->sctx, stream_id, nghttp3_mem_default()) != 0) {
        return false;
    }
    r->id = stream_id;
    r->user = user;
    responses_.push_back(std::move(r));
    Out out;
    out.id = stream_id;
    out.bytes.assign(bytes.begin(), bytes.end());
    out.fin = fin;
    out.request = true;
    outs_.push_back(std::move(out));
    return true;
}

RawStreams::Out* RawStreams::find(int64_t stream_id) {
    for (auto& out : outs_) {
        if (out.id == stream_id) {
            return &out;
        }
    }
    return nullptr;
}

const RawStreams::Out* RawStreams::find(int64_t stream_id) const {
    return const_cast<RawStreams*>(this)->find(stream_id);
}

RawStreams::Response* RawStreams::find_response(int64_t stream_id) {
    for (auto& r : responses_) {
        if (r->id == stream_id) {
            return r.get();
        }
    }
    return nullptr;
}

// ---- sending

bool RawStreams::next(int64_t& stream_id, nghttp3_vec& vec, bool& fin) {
    for (auto& out : outs_) {
        if (out.stopped || out.blocked || out.closed) {
            continue;
        }
        bool bytes_left = out.sent < out.bytes.size();
        if (!bytes_left && !(out.fin && !out.fin_sent)) {
            continue;
        }
        stream_id = out.id;
        vec.base = out.bytes.data() + out.sent;
        vec.len = out.bytes.size() - out.sent;
        fin = out.fin;
        return true;
    }
    return false;
}

void RawStreams::add_run(Out& out, size_t n, bool raw) {
    out.offset += n;
    if (raw) {
        out.raw_end = out.offset;
    }
    if (!out.shared || n == 0) {
        return;
    }
    if (!out.runs.empty() && out.runs.back().second == raw) {
        out.runs.back().first = out.offset;
    } else {
        out.runs.emplace_back(out.offset, raw);
    }
}

void RawStreams::sent(int64_t stream_id, size_t n) {
    Out* out = find(stream_id);
    if (!out) {
        return;
    }
    out->sent += n;
    add_run(*out, n, true);
    if (out->fin && out->sent == out->bytes.size()) {
        out->fin_sent = true;
    }
}

void RawStreams::http_sent(int64_t stream_id, size_t n) {
    if (Out* out = find(stream_id); out && out->shared) {
        add_run(*out, n, false);
    }
}

void RawStreams::set_blocked(int64_t stream_id, bool blocked) {
    if (Out* out = find(stream_id)) {
        out->blocked = blocked;
    }
}

void RawStreams::stop(int64_t stream_id) {
    if (Out* out = find(stream_id)) {
        out->stopped = true;
    }
}

uint64_t RawStreams::acked(int64_t stream_id, uint64_t offset, uint64_t len) {
    Out* out = find(stream_id);
    if (!out) {
        return len; // all nghttp3's
    }
    out->acked = std::max(out->acked, offset + len);
    if (!out->shared) {
        return 0;
    }
    uint64_t http = 0, start = 0;
    for (auto [end, raw] : out->runs) {
        if (!raw) {
            uint64_t lo = std::max(start, offset), hi = std::min(end, offset + len);
            if (hi > lo) {
                http += hi - lo;
            }
        }
        start = end;
    }
    return http;
}

bool RawStreams::settled() const {
    for (const auto& out : outs_) {
        if (out.request || out.stopped || out.closed) {
            continue;
        }
        if (out.sent < out.bytes.size() || out.acked < out.raw_end) {
            return false;
        }
        if (out.fin) {
            return false; // the FIN counts once the stream closes (all acknowledged)
        }
    }
    return true;
}

// ---- receiving

bool RawStreams::is_request(int64_t stream_id) const {
    const Out* out = find(stream_id);
    return out && out->request;
}

int RawStreams::on_response_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin) {
    Response* r = find_response(stream_id);
    if (!r) {
        return 0;
    }
    const uint8_t* p = data;
    const uint8_t* end = data + len;
    size_t framing = 0; // bytes credited now; body bytes come back through consume()
    while (p < end) {
        if (!r->in_payload) {
            r->head[r->head_len++] = *p++;
            ++framing;
            size_t type_len = varint_size(r->head[0]);
            if (r->head_len < type_len + 1) {
                continue;
            }
            size_t length_len = varint_size(r->head[type_len]);
            if (r->head_len < type_len + length_len) {
                continue;
            }
            r->type = read_varint(r->head, type_len);
            r->left = read_varint(r->head + type_len, length_len);
            r->head_len = 0;
            r->in_payload = true;
            r->block.clear();
            if (r->type == kFrameData && !r->final_headers) {
                return NGHTTP3_ERR_H3_FRAME_UNEXPECTED; // RFC 9114 §4.1
            }
            if (r->type == kFrameHeaders && r->left > kMaxHeaderBlock) {
                return NGHTTP3_ERR_H3_GENERAL_PROTOCOL_ERROR; // too large to be a test response
            }
            if (r->left == 0) {
                if (int rv = finish_frame(*r); rv != 0) {
                    return rv;
                }
            }
            continue;
        }
        auto n = static_cast<size_t>(std::min<uint64_t>(r->left, static_cast<uint64_t>(end - p)));
        if (r->type == kFrameData) {
            conn_.counters_.body_bytes += n;
            conn_.handler_.on_body(conn_, stream_id, r->user, p, n);
        } else {
            if (r->type == kFrameHeaders) {
                r->block.insert(r->block.end(), p, p + n);
            }
            framing += n;
        }
        p += n;
        r->left -= n;
        if (r->left == 0) {
            if (int rv = finish_frame(*r); rv != 0) {
                return rv;
            }
        }
    }
    conn_.consume(stream_id, framing);
    if (fin && !r->ended) {
        if (r->in_payload || r->head_len > 0) {
            return NGHTTP3_ERR_H3_FRAME_ERROR; // RFC 9114 §7.1: a truncated last frame
        }
        if (r->final_headers) {
            r->ended = true;
            conn_.handler_.on_response_end(conn_, r->user);
        }
    }
    return 0;
}

int RawStreams::finish_frame(Response& r) {
    r.in_payload = false;
    if (r.type != kFrameHeaders) {
        return 0; // DATA went out as it came; unknown frames are skipped (RFC 9114 §9)
    }
    return decode_headers(r);
}

int RawStreams::decode_headers(Response& r) {
    if (!decoder_) {
        return NGHTTP3_ERR_NOMEM;
    }
    bool trailers = r.final_headers;
    bool interim = false;
    const uint8_t* p = r.block.data();
    size_t left = r.block.size();
    for (;;) {
        nghttp3_qpack_nv nv;
        uint8_t flags = NGHTTP3_QPACK_DECODE_FLAG_NONE;
        auto n = nghttp3_qpack_decoder_read_request(decoder_, r.sctx, &nv, &flags, p, left, 1);
        if (n < 0) {
            return NGHTTP3_ERR_QPACK_DECOMPRESSION_FAILED;
        }
        p += n;
        left -= static_cast<size_t>(n);
        if (flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) {
            auto name = nghttp3_rcbuf_get_buf(nv.name);
            auto value = nghttp3_rcbuf_get_buf(nv.value);
            if (nv.token == NGHTTP3_QPACK_TOKEN__STATUS && value.len == 3 && value.base[0] == '1') {
                interim = true;
            }
            if (!trailers) {
                conn_.counters_.header_bytes += name.len + value.len;
                conn_.handler_.on_header(conn_, r.user, nv.token,
                                         {reinterpret_cast<const char*>(name.base), name.len},
                                         {reinterpret_cast<const char*>(value.base), value.len});
            }
            nghttp3_rcbuf_decref(nv.name);
            nghttp3_rcbuf_decref(nv.value);
        }
        if (flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL) {
            break;
        }
        if (flags & NGHTTP3_QPACK_DECODE_FLAG_BLOCKED) {
            return NGHTTP3_ERR_QPACK_DECOMPRESSION_FAILED; // we offered no dynamic table
        }
        if (n == 0 && !(flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT)) {
            return NGHTTP3_ERR_QPACK_DECOMPRESSION_FAILED;
        }
    }
    nghttp3_qpack_stream_context_reset(r.sctx);
    r.block.clear();
    if (!trailers) {
        conn_.handler_.on_headers_end(conn_, r.user);
        r.final_headers = !interim;
    }
    return 0;
}

bool RawStreams::on_stream_close(int64_t stream_id, uint64_t app_error) {
    Out* out = find(stream_id);
    if (!out) {
        return false;
    }
    out->closed = true;
    if (out->shared) {
        return out->fin_sent; // nghttp3 would call our own FIN a closed critical stream
    }
    if (out->request) {
        auto it = std::find_if(responses_.begin(), responses_.end(),
                               [&](const auto& r) { return r->id == stream_id; });
        if (it != responses_.end()) {
            void* user = (*it)->user;
            nghttp3_qpack_stream_context_del((*it)->sctx);
            responses_.erase(it);
            conn_.handler_.on_stream_closed(conn_, user, app_error);
        }
    }
    return true;
}

// ---- the Connection side

bool Connection::setup_raw_streams() {
    raw_ = std::make_unique<RawStreams>(*this, *settings_.raw);
    bool own_control = !settings_.raw->replace_control;
    // nghttp3's control stream (unless replaced) and QPACK encoder stream, then ours.
    uint64_t needed = (own_control ? 1 : 0) + 1 + raw_->own_uni_streams();
    if (ngtcp2_conn_get_streams_uni_left(conn_) < needed) {
        fail("the server allows " + std::to_string(ngtcp2_conn_get_streams_uni_left(conn_)) +
             " unidirectional streams; the raw plan needs " + std::to_string(needed));
        return false;
    }
    int64_t control = -1, encoder = -1;
    if (!own_control && !raw_->open_control(control)) {
        fail("cannot open the raw control stream");
        return false;
    }
    if ((own_control && ngtcp2_conn_open_uni_stream(conn_, &control, nullptr) != 0) ||
        ngtcp2_conn_open_uni_stream(conn_, &encoder, nullptr) != 0) {
        fail("cannot open the HTTP/3 control streams");
        return false;
    }
    if ((own_control && nghttp3_conn_bind_control_stream(http_, control) != 0) ||
        nghttp3_conn_bind_qpack_streams(http_, encoder, RawStreams::kPhantomStream) != 0) {
        fail("cannot bind the HTTP/3 control streams");
        return false;
    }
    if (!raw_->open(own_control ? control : -1, encoder)) {
        fail("cannot open the raw unidirectional streams");
        return false;
    }
    return true;
}

bool Connection::swallow_phantom(const nghttp3_vec* vec, size_t count) {
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) {
        total += vec[i].len;
    }
    if (int rv = nghttp3_conn_add_write_offset(http_, RawStreams::kPhantomStream, total); rv != 0) {
        set_app_error(rv);
        fail(std::string("HTTP/3 error: ") + nghttp3_strerror(rv));
        return false;
    }
    if (int rv = nghttp3_conn_add_ack_offset(http_, RawStreams::kPhantomStream, total); rv != 0) {
        set_app_error(rv);
        fail(std::string("HTTP/3 error: ") + nghttp3_strerror(rv));
        return false;
    }
    return true;
}

int64_t Connection::submit_raw(std::span<const uint8_t> bytes, bool fin, void* stream) {
    if (!raw_ || !can_open_stream()) {
        return -1;
    }
    int64_t stream_id;
    if (ngtcp2_conn_open_bidi_stream(conn_, &stream_id, stream) != 0) {
        return -1;
    }
    if (!raw_->add_request(stream_id, bytes, fin, stream)) {
        fail("out of memory");
        schedule_write();
        return -1;
    }
    return stream_id;
}

} // namespace h3
