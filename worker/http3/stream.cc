// One HTTP/3 exchange's protocol part: request fields from QPACK tokens, 0-RTT's 425, QUIC
// flow-control credit and resets, the response fields for nghttp3, and the response bytes in a
// chain of pooled blocks that nghttp3 sends from and the peer's ACKs release.
#include "worker/http3/stream.h"

#include <charconv>
#include <cstring>

#include "common/kept_memory.h"
#include "common/log.h"
#include "common/strings.h"
#include "worker/exchange_util.h"
#include "worker/http3/session.h"
#include "worker/worker.h"

namespace wraith::http3 {

namespace {

// A field nghttp3 does not copy: it holds the pointers until it encodes the header block, in
// a later write pass. Names must be lower case (RFC 9114 §4.2), and both must outlive the
// stream's queued frames: constants, or bytes in a FieldBlock.
nghttp3_nv ref_nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP3_NV_FLAG_NO_COPY_NAME | NGHTTP3_NV_FLAG_NO_COPY_VALUE};
}

// A header block for nghttp3 in one allocation from the stream's arena: the field array and
// every byte it points at that is not a constant. Handler fields are copied in with their
// names lower-cased on the way: one pass of ours instead of nghttp3's copy and its
// byte-by-byte downcase.
class FieldBlock {
public:
    // Room for `fields` fields and `bytes` bytes: bytes_of() the handler fields copied in,
    // plus whatever the caller writes with room() or keep().
    FieldBlock(Arena& arena, size_t fields, size_t bytes)
        : nva_(static_cast<nghttp3_nv*>(
              arena.alloc(fields * sizeof(nghttp3_nv) + bytes, alignof(nghttp3_nv)))),
          p_(reinterpret_cast<char*>(nva_ + fields)) {}

    static size_t bytes_of(const Headers& headers) {
        size_t n = 0;
        for (const Header& h : headers)
            n += h.name.size() + h.value.size();
        return n;
    }

    // `n` bytes for the caller to fill (used only as far as it writes).
    char* room(size_t n) {
        char* at = p_;
        p_ += n;
        return at;
    }
    std::string_view keep(std::string_view s, bool lower = false) {
        char* at = room(s.size());
        if (lower)
            copy_ascii_lower(at, s.data(), s.size());
        else
            copy_short(at, s.data(), s.size());
        return {at, s.size()};
    }
    // The :status field, its three digits in the block.
    void add_status(int status) {
        unsigned code = static_cast<unsigned>(status) % 1000;
        char* d = room(3);
        d[0] = static_cast<char>('0' + code / 100);
        d[1] = static_cast<char>('0' + code / 10 % 10);
        d[2] = static_cast<char>('0' + code % 10);
        add(":status", {d, 3});
    }
    // `name` and `value` are constants or already in the block.
    void add(std::string_view name, std::string_view value) { nva_[n_++] = ref_nv(name, value); }
    // Inlined: it runs for every field of every response.
    [[gnu::always_inline]] void add_copy(const Header& h) {
        add(keep(h.name, true), keep(h.value));
    }

    nghttp3_nv* fields() const { return nva_; }
    size_t size() const { return n_; }

private:
    nghttp3_nv* nva_;
    char* p_;
    size_t n_ = 0;
};

nghttp3_ssize read_callback(nghttp3_conn*, int64_t, nghttp3_vec* vec, size_t veccnt,
                            uint32_t* flags, void*, void* stream_user_data) {
    return static_cast<Stream*>(stream_user_data)->read_data(vec, veccnt, flags);
}

// RFC 9110 §9.2.1: what may be served from replayable early data (RFC 8470).
bool safe_method(Method m) {
    return m == Method::get || m == Method::head || m == Method::options;
}

} // namespace

// Freed streams' memory is reused by the next ones.
using KeptStreams = KeptMemory<Stream, 128>;

void* Stream::operator new(size_t size) {
    return KeptStreams::take(size);
}

void Stream::operator delete(void* p, size_t size) {
    KeptStreams::give(p, size);
}

Stream::Stream(Session& session, int64_t id)
    : StreamExchange(session.worker(), session.info(), &session.worker().arena_blocks()),
      session_(session), id_(id) {}

Stream::~Stream() {
    BufferPool& pool = worker_.read_buffers();
    for (size_t i = 0; i < blocks_.size(); ++i)
        pool.put(blocks_[i]);
}

void Stream::schedule() {
    if (!closed_ && !aborted_)
        session_.schedule(this);
}

void Stream::credit(size_t n) {
    session_.consumed(id_, n);
}

void Stream::reset_with(uint64_t app_error_code) {
    if (closed_ || sending_ == Sending::reset)
        return;
    sending_ = Sending::reset;
    session_.reset_stream(id_, app_error_code);
}

// ---- request head --------------------------------------------------------------------------

StreamExchange::Field Stream::field_of(int32_t token, std::string_view name) {
    switch (token) {
    case NGHTTP3_QPACK_TOKEN__METHOD:
        return Field::method;
    case NGHTTP3_QPACK_TOKEN__SCHEME:
        return Field::scheme;
    case NGHTTP3_QPACK_TOKEN__AUTHORITY:
        return Field::authority;
    case NGHTTP3_QPACK_TOKEN__PATH:
        return Field::path;
    case NGHTTP3_QPACK_TOKEN__PROTOCOL:
        return Field::protocol;
    case NGHTTP3_QPACK_TOKEN_COOKIE:
        return Field::cookie;
    case NGHTTP3_QPACK_TOKEN_HOST:
        return Field::host;
    case NGHTTP3_QPACK_TOKEN_CONTENT_LENGTH:
        return Field::content_length;
    default:
        return name == "expect" ? Field::expect : Field::other;
    }
}

uint64_t Stream::max_field_bytes() const {
    return worker_.config().http.max_header_size;
}

void Stream::on_header(int32_t token, std::string_view name, std::string_view value,
                       bool static_name) {
    // nghttp3 checked pseudo-field presence, order and syntax (RFC 9114 §4.3.1). A name from
    // QPACK's static table is nghttp3's constant: no copy.
    if (!on_request_field(field_of(token, name), name, value, static_name))
        reset_with(NGHTTP3_H3_EXCESSIVE_LOAD); // a QPACK bomb
}

void Stream::on_head_complete(bool fin, bool early) {
    early_ = early;
    StreamExchange::on_head_complete(fin);
}

int Stream::protocol_check(const char** why) {
    if (early_ && (!safe_method(req_.method_id) || !session_.early_data_allowed())) {
        // RFC 8470 §5.2: the client repeats it after the handshake.
        *why = "unsafe request in 0-RTT early data";
        return 425;
    }
    return 0;
}

// ---- response head -------------------------------------------------------------------------

void Stream::submit_informational(int status, const Headers& headers) {
    FieldBlock block(arena_, 1 + headers.size(), 3 + FieldBlock::bytes_of(headers));
    block.add_status(status);
    for (const Header& h : headers)
        if (!connection_specific(h.name))
            block.add_copy(h);
    nghttp3_conn_submit_info(session_.http(), id_, block.fields(), block.size());
    session_.want_write();
}

bool Stream::submit_head(ResponseHead& head, bool end_stream) {
    const std::string& server = worker_.config().http.server_header;
    const std::string_view date = worker_.http_date();
    // The date is rewritten every second, so it is copied too; 24 bytes for content-length.
    FieldBlock block(arena_, 4 + head.headers.size(),
                     3 + date.size() + 24 + FieldBlock::bytes_of(head.headers));
    block.add_status(head.status);
    if (!server.empty())
        block.add("server", server); // the worker's configuration outlives its streams
    block.add("date", block.keep(date));
    for (const Header& h : head.headers)
        if (!connection_specific(h.name) && h.name != "content-length")
            block.add_copy(h); // framing is ours (RFC 9114 §4.2)
    if (status_has_body(head.status) && head.content_length >= 0 && tunnel_ != Tunnel::open) {
        char* digits = block.room(24);
        auto w = std::to_chars(digits, digits + 24, head.content_length);
        block.add("content-length", {digits, static_cast<size_t>(w.ptr - digits)});
    }
    nghttp3_data_reader reader{read_callback};
    int rv = nghttp3_conn_submit_response(session_.http(), id_, block.fields(), block.size(),
                                          end_stream ? nullptr : &reader);
    if (rv != 0) {
        WLOG_ERROR("http3: cannot submit a response on stream %lld: %s", (long long)id_,
                   nghttp3_strerror(rv));
        reset_with(NGHTTP3_H3_INTERNAL_ERROR);
        return false;
    }
    if (end_stream)
        sending_ = Sending::fin; // HEADERS carries the end of the stream
    session_.want_write();
    return true;
}

void Stream::queue_trailers(const Headers& trailers) {
    // Sent by read_data() once the body is out (RFC 9114 §4.1: a HEADERS frame last).
    FieldBlock block(arena_, trailers.size(), FieldBlock::bytes_of(trailers));
    for (const Header& h : trailers)
        if (!connection_specific(h.name))
            block.add_copy(h);
    trailers_ = block.fields();
    trailer_count_ = static_cast<uint32_t>(block.size());
}

void Stream::response_ended(uint64_t short_by) {
    if (short_by) // RFC 9114 §4.1.2: the response would be malformed
        return reset_with(NGHTTP3_H3_INTERNAL_ERROR);
    if (body_state_ == Body::receiving && tunnel_ != Tunnel::open)
        discard();
}

// ---- response body -------------------------------------------------------------------------

bool Stream::congested() const {
    if (unsent() >= kHighWatermark)
        return true;
    size_t files = 0;
    for (size_t i = seg_head_; i < segs_.size(); ++i)
        files += segs_[i].fd >= 0;
    return files > kMaxQueuedFiles;
}

// A small file's cached content given whole with send_shared_body stays alive until the stream
// is gone (the handler's reference to the open file is an arena cleanup of this stream):
// nghttp3 reads it in place. Anything else takes the copying path.
void Stream::queue_body(std::string_view data, bool shared) {
    if (shared) { // the exchange checked that nothing came before it
        shared_ = data.data();
        written_ = data.size();
        return;
    }
    if (seg_head_ == segs_.size())
        return append(data.data(), data.size()); // nothing waits before it: straight in
    if (staged_bytes_ == 0)
        staged_.clear();
    segs_.push_back({-1, static_cast<off_t>(staged_.size()), data.size()});
    staged_.append(data);
    staged_bytes_ += data.size();
}

void Stream::queue_file(int fd, off_t offset, size_t len) {
    segs_.push_back({fd, offset, len});
}

void Stream::kick() {
    if (data_blocked_ && !closed_ && sending_ != Sending::reset) {
        data_blocked_ = false;
        nghttp3_conn_resume_stream(session_.http(), id_);
    }
    session_.want_write();
}

char* Stream::tail(size_t* room) {
    size_t used = static_cast<size_t>(written_ - chain_base_) % kBlockSize;
    if (used == 0 && written_ - chain_base_ == blocks_.size() * kBlockSize)
        blocks_.push_back(worker_.read_buffers().get());
    *room = kBlockSize - used;
    return blocks_.back() + used;
}

void Stream::append(const char* data, size_t len) {
    while (len) {
        size_t room;
        char* at = tail(&room);
        size_t take = std::min(len, room);
        std::memcpy(at, data, take);
        data += take;
        len -= take;
        written_ += take;
    }
}

void Stream::materialise() {
    while (seg_head_ < segs_.size() && written_ - handed_ < kReadAhead) {
        Segment& s = segs_[seg_head_];
        size_t take = std::min(s.len, kReadAhead - static_cast<size_t>(written_ - handed_));
        if (s.fd < 0) {
            append(staged_.data() + s.offset, take);
            staged_bytes_ -= take;
        } else {
            // Read straight into the tail block's free room, a block at a time.
            size_t room;
            char* at = tail(&room);
            take = read_file(s.fd, s.offset, at, std::min(take, room));
            if (take == 0)
                return reset_with(NGHTTP3_H3_INTERNAL_ERROR);
            written_ += take;
        }
        s.offset += static_cast<off_t>(take);
        s.len -= take;
        if (s.len == 0)
            ++seg_head_;
    }
    if (seg_head_ == segs_.size()) {
        segs_.clear();
        seg_head_ = 0;
    }
}

nghttp3_ssize Stream::read_data(nghttp3_vec* vec, size_t veccnt, uint32_t* flags) {
    if (sending_ == Sending::reset)
        return NGHTTP3_ERR_WOULDBLOCK;
    if (written_ == handed_)
        materialise();
    size_t n = 0;
    uint64_t pos = handed_;
    if (shared_ && pos < written_ && veccnt > 0) {
        vec[n].base = reinterpret_cast<uint8_t*>(const_cast<char*>(shared_ + pos));
        vec[n].len = static_cast<size_t>(written_ - pos);
        ++n;
        pos = written_;
    }
    while (pos < written_ && n < veccnt) {
        size_t block = static_cast<size_t>((pos - chain_base_) / kBlockSize);
        size_t in = static_cast<size_t>((pos - chain_base_) % kBlockSize);
        size_t len = std::min<uint64_t>(kBlockSize - in, written_ - pos);
        vec[n].base = reinterpret_cast<uint8_t*>(blocks_[block] + in);
        vec[n].len = len;
        ++n;
        pos += len;
    }
    body_sent_ += pos - handed_;
    handed_ = pos;
    if (response_ == Response::ended && handed_ == written_ && seg_head_ == segs_.size()) {
        *flags |= NGHTTP3_DATA_FLAG_EOF;
        sending_ = Sending::fin;
        if (trailer_count_) {
            if (nghttp3_conn_submit_trailers(session_.http(), id_, trailers_, trailer_count_) == 0)
                *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
            trailer_count_ = 0;
        }
    } else if (n == 0) {
        data_blocked_ = true;
        return NGHTTP3_ERR_WOULDBLOCK;
    }
    if (unsent() < kLowWatermark)
        writable_drained();
    return static_cast<nghttp3_ssize>(n);
}

void Stream::on_acked(uint64_t n) {
    acked_ += n;
    BufferPool& pool = worker_.read_buffers();
    while (!blocks_.empty() && acked_ - chain_base_ >= kBlockSize) {
        pool.put(blocks_.front());
        blocks_.pop_front();
        chain_base_ += kBlockSize;
    }
    if (blocks_.empty() || (acked_ == written_ && acked_ == handed_)) {
        // Everything sent was acknowledged: start the next block from its beginning.
        for (size_t i = 0; i < blocks_.size(); ++i)
            pool.put(blocks_[i]);
        blocks_.clear();
        chain_base_ = written_;
    }
    // Room for more file data ahead of the sender.
    if (seg_head_ < segs_.size() && data_blocked_)
        kick();
}

} // namespace wraith::http3
