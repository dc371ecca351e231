#include "worker/http3/stream.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <unistd.h>

#include "common/log.h"
#include "common/strings.h"
#include "worker/pipeline.h"
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

namespace {
// Freed streams' memory, reused by the next ones (a worker is one thread).
constexpr size_t kKeptStreams = 128;
void* g_kept_streams[kKeptStreams];
size_t g_kept_count = 0;
} // namespace

void* Stream::operator new(size_t size) {
    if (size == sizeof(Stream) && g_kept_count > 0)
        return g_kept_streams[--g_kept_count];
    return ::operator new(size);
}

void Stream::operator delete(void* p, size_t size) {
    if (size == sizeof(Stream) && g_kept_count < kKeptStreams) {
        g_kept_streams[g_kept_count++] = p;
        return;
    }
    ::operator delete(p);
}

Stream::Stream(Session& session, int64_t id)
    : session_(session), id_(id), arena_(&session.worker().arena_blocks()) {}

Stream::~Stream() {
    BufferPool& pool = session_.worker().read_buffers();
    for (size_t i = 0; i < blocks_.size(); ++i)
        pool.put(blocks_[i]);
}

void Stream::schedule() {
    if (!closed_ && !aborted_)
        session_.schedule(this);
}

// ---- request head --------------------------------------------------------------------------

void Stream::on_header(int32_t token, std::string_view name, std::string_view value,
                       bool static_name) {
    const HttpConfig& http = session_.worker().config().http;
    header_bytes_ += name.size() + value.size() + 32;
    ++header_count_;
    if (head_error_)
        return;
    if (header_bytes_ > http.max_header_size || header_count_ > http.max_headers + 4) {
        head_error_ = 431;
        return;
    }
    // nghttp3 checked pseudo-field presence, order and syntax (RFC 9114 §4.3.1).
    switch (token) {
    case NGHTTP3_QPACK_TOKEN__METHOD:
        req_.method = arena_.copy(value);
        req_.method_id = method_from(value);
        return;
    case NGHTTP3_QPACK_TOKEN__SCHEME:
        req_.scheme = arena_.copy(value);
        return;
    case NGHTTP3_QPACK_TOKEN__AUTHORITY:
        req_.authority = arena_.copy(value);
        return;
    case NGHTTP3_QPACK_TOKEN__PATH: {
        if (value.size() > http.max_request_target) {
            head_error_ = 414;
            return;
        }
        req_.target = arena_.copy(value);
        size_t q = req_.target.find('?');
        req_.path = req_.target.substr(0, q);
        req_.query = q == std::string_view::npos ? std::string_view{} : req_.target.substr(q + 1);
        return;
    }
    case NGHTTP3_QPACK_TOKEN__PROTOCOL:
        // nghttp3 accepts it only on a CONNECT, and only because our SETTINGS enabled it
        // (RFC 9220 §3).
        req_.upgrade = arena_.copy(value);
        return;
    default:
        break;
    }
    if (token == NGHTTP3_QPACK_TOKEN_COOKIE) {
        // RFC 9114 §4.2.1: crumbs may come as separate fields; handlers see one.
        if (const Header* h = req_.headers.find("cookie")) {
            size_t n = h->value.size() + 2 + value.size();
            char* joined = static_cast<char*>(arena_.alloc(n, 1));
            std::memcpy(joined, h->value.data(), h->value.size());
            std::memcpy(joined + h->value.size(), "; ", 2);
            std::memcpy(joined + h->value.size() + 2, value.data(), value.size());
            req_.headers.set("cookie", {joined, n});
            return;
        }
    } else if (token == NGHTTP3_QPACK_TOKEN_HOST) {
        host_field_ = arena_.copy(value);
    } else if (token == NGHTTP3_QPACK_TOKEN_CONTENT_LENGTH) {
        uint64_t v = 0;
        auto r = std::from_chars(value.data(), value.data() + value.size(), v);
        if (r.ec == std::errc{} && r.ptr == value.data() + value.size())
            req_.content_length = static_cast<int64_t>(v);
    }
    // A name from QPACK's static table is nghttp3's constant: no copy.
    req_.headers.add(static_name ? name : arena_.copy(name), arena_.copy(value));
}

void Stream::on_head_complete(bool fin, bool early) {
    body_done_ = fin;
    early_ = early;
    start_pending_ = true;
    schedule();
}

void Stream::start() {
    started_ = true;
    Worker& worker = session_.worker();
    const HttpConfig& http = worker.config().http;
    req_.version = 30;
    req_.conn = &session_.info();
    req_.arena = &arena_;
    req_.loop = worker.loop();
    if (req_.scheme.empty())
        req_.scheme = "https";
    if (req_.authority.empty())
        req_.authority = host_field_;
    else if (!host_field_.empty() && !iequals(host_field_, req_.authority) && !head_error_)
        head_error_ = 400; // RFC 9114 §4.3.1: Host must agree with :authority
    req_.host = host_of(req_.authority, arena_);
    req_.has_body = !body_done_ && req_.content_length != 0;
    tunnel_ = req_.extended_connect();
    head_request_ = req_.method_id == Method::head;
    stamp_start(req_.start, req_.start_mono_us);

    if (head_error_) {
        const char* why = head_error_ == 431   ? "request header fields too large"
                          : head_error_ == 414 ? "request target too long"
                                               : "Host differs from :authority";
        return send_error(req_, *this, head_error_, why);
    }
    if (early_ && (!safe_method(req_.method_id) || !session_.early_data_allowed())) {
        // RFC 8470 §5.2: the client repeats it after the handshake.
        return send_error(req_, *this, 425, "unsafe request in 0-RTT early data");
    }
    if (req_.content_length > 0 &&
        static_cast<uint64_t>(req_.content_length) > http.client_max_body_size)
        return send_error(req_, *this, 413, "request body larger than client_max_body_size");
    run_exchange(worker, req_, *this, *this);
}

// ---- request body --------------------------------------------------------------------------

void Stream::on_body(const uint8_t* data, size_t len) {
    body_received_ += len;
    if (body_discarding_ || closed_ || aborted_) {
        session_.consumed(id_, len);
        return;
    }
    if (body_received_ > session_.worker().config().http.client_max_body_size && !tunnel_) {
        body_too_large_ = true;
        body_failed_ = true;
        session_.consumed(id_, len);
        data_pending_ = true;
        schedule();
        return;
    }
    if (body_off_ > 0 && body_off_ == body_.size()) {
        body_.clear();
        body_off_ = 0;
    }
    body_.append(reinterpret_cast<const char*>(data), len);
    data_pending_ = true;
    schedule();
}

void Stream::on_body_end() {
    body_done_ = true;
    data_pending_ = true;
    schedule();
}

std::string_view Stream::peek() {
    return {body_.data() + body_off_, body_.size() - body_off_};
}

void Stream::consume(size_t n) {
    n = std::min(n, body_.size() - body_off_);
    if (n == 0)
        return;
    body_off_ += n;
    if (body_off_ == body_.size()) {
        body_.clear();
        body_off_ = 0;
    }
    if (!closed_)
        session_.consumed(id_, n); // flow-control credit returns only now
}

void Stream::on_data(Callback cb) {
    data_cb_ = std::move(cb);
}

void Stream::resume() {
    body_paused_ = false;
    if (body_off_ < body_.size() || body_done_) {
        data_pending_ = true;
        schedule();
    }
}

void Stream::discard() {
    data_cb_ = nullptr;
    body_discarding_ = true;
    size_t buffered = body_.size() - body_off_;
    body_.clear();
    body_off_ = 0;
    if (buffered && !closed_)
        session_.consumed(id_, buffered);
}

// ---- pending work --------------------------------------------------------------------------

void Stream::run_pending() {
    if (closed_ || aborted_)
        return;
    if (start_pending_) {
        start_pending_ = false;
        start();
        if (closed_ || aborted_)
            return;
    }
    if (data_pending_ && started_) {
        data_pending_ = false;
        if (body_too_large_) {
            ErrorLog::limited(LogLevel::info,
                              "413 body larger than client_max_body_size, client: %.*s",
                              (int)session_.info().peer_text.size(), session_.info().peer_text.data());
            body_discarding_ = true;
            Callback cb = std::move(data_cb_);
            if (cb)
                cb();
            if (!headers_sent_ && !aborted_)
                send_error(req_, *this, 413, {});
            else if (!response_ended_)
                reset();
        } else if (data_cb_ && !body_paused_ && !body_discarding_) {
            Callback cb = data_cb_;
            cb();
        }
    }
    if (writable_pending_ && !aborted_) {
        writable_pending_ = false;
        if (writable_cb_ && !response_ended_) {
            Callback cb = writable_cb_;
            cb();
        }
    }
}

void Stream::reset_with(uint64_t app_error_code) {
    shutdown(app_error_code);
}

void Stream::on_closed(uint64_t app_error_code) {
    closed_ = true;
    size_t unconsumed = body_.size() - body_off_;
    if (unconsumed)
        session_.consumed(id_, unconsumed);
    body_.clear();
    body_off_ = 0;
}

void Stream::finish() {
    if (!started_)
        return; // cancelled before it ran: nothing served, nothing to log
    bool complete = response_ended_ && fin_sent_ && !reset_sent_ && acked_ == written_;
    if (!complete && !aborted_) {
        aborted_ = true;
        if (!body_done_) {
            body_failed_ = true;
            Callback dcb = std::move(data_cb_);
            if (dcb)
                dcb();
        }
        Callback cb = std::move(abort_cb_);
        if (cb && (!response_ended_ || tunnel_open_)) // a tunnel's handler reads on after its end
            cb();
    }
    aborted_ = true;
    data_cb_ = nullptr;
    writable_cb_ = nullptr;
    abort_cb_ = nullptr;
    ExchangeSummary s;
    s.status = status_ ? status_ : 499;
    s.body_bytes = body_bytes_;
    s.request_bytes = body_received_;
    s.duration_us = monotonic_us() - req_.start_mono_us;
    s.aborted = !complete;
    finish_exchange(session_.worker(), req_, s);
}

// ---- response ------------------------------------------------------------------------------

void Stream::send_informational(int status, const Headers& headers) {
    if (headers_sent_ || closed_ || aborted_ || status < 100 || status > 199 || status == 101)
        return;
    FieldBlock block(arena_, 1 + headers.size(), 3 + FieldBlock::bytes_of(headers));
    block.add_status(status);
    for (const Header& h : headers)
        if (!connection_specific(h.name))
            block.add_copy(h);
    nghttp3_conn_submit_info(session_.http(), id_, block.fields(), block.size());
    session_.want_write();
}

void Stream::send_headers(ResponseHead& head, bool end_stream) {
    if (headers_sent_ || closed_ || aborted_)
        return;
    headers_sent_ = true;
    status_ = head.status;
    const bool has_body = status_has_body(head.status);
    body_expected_ = has_body ? head.content_length : 0;
    body_allowed_ = has_body && !head_request_;
    // RFC 9220 §3 (RFC 8441 §5): a 2xx to an extended CONNECT opens the tunnel.
    tunnel_open_ = tunnel_ && head.status >= 200 && head.status < 300 && !end_stream;
    if (tunnel_open_)
        body_expected_ = -1;

    Worker& worker = session_.worker();
    const std::string& server = worker.config().http.server_header;
    const std::string_view date = worker.http_date();
    // The date is rewritten every second, so it is copied too; 24 bytes for content-length.
    FieldBlock block(arena_, 4 + head.headers.size(),
                     3 + date.size() + 24 + FieldBlock::bytes_of(head.headers));
    block.add_status(head.status);
    if (!server.empty())
        block.add("server", server); // the worker's configuration outlives its streams
    block.add("date", block.keep(date));
    for (const Header& h : head.headers) {
        if (connection_specific(h.name) || h.name == "content-length")
            continue; // framing is ours (RFC 9114 §4.2)
        block.add_copy(h);
    }
    if (has_body && head.status != 304 && head.content_length >= 0 && !tunnel_open_) {
        char* digits = block.room(24);
        auto w = std::to_chars(digits, digits + 24, head.content_length);
        block.add("content-length", {digits, static_cast<size_t>(w.ptr - digits)});
    }
    nghttp3_data_reader reader{read_callback};
    if (end_stream)
        response_ended_ = true;
    int rv = nghttp3_conn_submit_response(session_.http(), id_, block.fields(), block.size(),
                                          end_stream ? nullptr : &reader);
    if (rv != 0) {
        WLOG_ERROR("http3: cannot submit a response on stream %lld: %s", (long long)id_,
                   nghttp3_strerror(rv));
        shutdown(NGHTTP3_H3_INTERNAL_ERROR);
        return;
    }
    if (end_stream) {
        fin_sent_ = true; // HEADERS carries the end of the stream
        if (!body_done_)
            discard();
    }
    session_.want_write();
}

ResponseWriter::Result Stream::writer_state() {
    if (closed_ || aborted_ || reset_sent_)
        return Result::closed;
    size_t files = 0;
    for (size_t i = seg_head_; i < segs_.size(); ++i)
        files += segs_[i].fd >= 0;
    if (!response_ended_ && (unsent() >= kHighWatermark || files > kMaxQueuedFiles)) {
        writable_wanted_ = true;
        return Result::blocked;
    }
    return Result::ok;
}

// A small file's cached content is the whole body, and stays alive until the stream is gone
// (the handler's reference to the open file is an arena cleanup of this stream): nghttp3 reads
// it in place. Anything else, or anything queued before it, takes the copying path.
ResponseWriter::Result Stream::send_shared_body(std::string_view data, bool end_stream) {
    if (!end_stream || data.empty() || closed_ || aborted_ || !headers_sent_ ||
        response_ended_ || !body_allowed_ || written_ != 0 || seg_head_ != segs_.size() ||
        (body_expected_ >= 0 && data.size() != static_cast<uint64_t>(body_expected_)))
        return send_body(data, end_stream);
    shared_ = data.data();
    written_ = data.size();
    body_queued_ = data.size();
    end_response();
    kick();
    return writer_state();
}

void Stream::append(const char* data, size_t len) {
    BufferPool& pool = session_.worker().read_buffers();
    while (len) {
        size_t used = static_cast<size_t>(written_ - chain_base_) % kBlockSize;
        if (used == 0 && written_ - chain_base_ == blocks_.size() * kBlockSize)
            blocks_.push_back(pool.get());
        char* block = blocks_.back();
        size_t take = std::min(len, kBlockSize - used);
        std::memcpy(block + used, data, take);
        data += take;
        len -= take;
        written_ += take;
    }
}

ResponseWriter::Result Stream::send_body(std::string_view data, bool end_stream) {
    if (closed_ || aborted_ || !headers_sent_ || response_ended_)
        return Result::closed;
    if (body_allowed_ && !data.empty()) {
        if (body_expected_ >= 0 &&
            body_queued_ + data.size() > static_cast<uint64_t>(body_expected_)) {
            WLOG_ERROR("handler sent more body than its content-length (%.*s)",
                       (int)session_.info().peer_text.size(), session_.info().peer_text.data());
            data = data.substr(0, body_expected_ - body_queued_);
        }
        if (seg_head_ == segs_.size()) {
            append(data.data(), data.size()); // nothing waits before it: straight in
        } else {
            if (staged_bytes_ == 0)
                staged_.clear();
            segs_.push_back({-1, static_cast<off_t>(staged_.size()), data.size()});
            staged_.append(data);
            staged_bytes_ += data.size();
        }
        body_queued_ += data.size();
    }
    if (end_stream)
        end_response();
    kick();
    return writer_state();
}

ResponseWriter::Result Stream::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    if (closed_ || aborted_ || !headers_sent_ || response_ended_)
        return Result::closed;
    if (body_allowed_ && len) {
        if (body_expected_ >= 0 && body_queued_ + len > static_cast<uint64_t>(body_expected_))
            len = body_expected_ - body_queued_;
        if (len) {
            segs_.push_back({fd, offset, len});
            body_queued_ += len;
        }
    }
    if (end_stream)
        end_response();
    kick();
    return writer_state();
}

ResponseWriter::Result Stream::send_trailers(const Headers& trailers) {
    if (closed_ || aborted_ || !headers_sent_ || response_ended_)
        return Result::closed;
    if (body_allowed_ && trailers.size() > 0) {
        FieldBlock block(arena_, trailers.size(), FieldBlock::bytes_of(trailers));
        for (const Header& h : trailers)
            if (!connection_specific(h.name))
                block.add_copy(h);
        trailers_ = block.fields();
        trailer_count_ = block.size();
    }
    end_response();
    kick();
    return writer_state();
}

void Stream::end_response() {
    response_ended_ = true;
    if (body_allowed_ && body_expected_ >= 0 &&
        body_queued_ < static_cast<uint64_t>(body_expected_)) {
        WLOG_ERROR("response to %.*s ended %llu bytes short of its content-length",
                   (int)session_.info().peer_text.size(), session_.info().peer_text.data(),
                   (unsigned long long)(body_expected_ - body_queued_));
        shutdown(NGHTTP3_H3_INTERNAL_ERROR);
        return;
    }
    if (!body_done_ && !tunnel_open_)
        discard();
}

void Stream::kick() {
    if (data_blocked_ && !closed_ && !reset_sent_) {
        data_blocked_ = false;
        nghttp3_conn_resume_stream(session_.http(), id_);
    }
    session_.want_write();
}

bool Stream::materialise() {
    bool progressed = false;
    while (seg_head_ < segs_.size() && written_ - handed_ < kReadAhead) {
        Segment& s = segs_[seg_head_];
        size_t take = std::min(s.len, kReadAhead - static_cast<size_t>(written_ - handed_));
        if (s.fd < 0) {
            append(staged_.data() + s.offset, take);
            staged_bytes_ -= take;
        } else {
            // Read straight into the tail block's free room, a block at a time.
            BufferPool& pool = session_.worker().read_buffers();
            size_t used = static_cast<size_t>(written_ - chain_base_) % kBlockSize;
            if (used == 0 && written_ - chain_base_ == blocks_.size() * kBlockSize)
                blocks_.push_back(pool.get());
            take = std::min(take, kBlockSize - used);
            ssize_t r = ::pread(s.fd, blocks_.back() + used, take, s.offset);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                WLOG_ERROR("http3: reading the response file for %.*s: %s",
                           (int)session_.info().peer_text.size(), session_.info().peer_text.data(),
                           r < 0 ? std::strerror(errno) : "file shrank");
                shutdown(NGHTTP3_H3_INTERNAL_ERROR);
                return false;
            }
            take = static_cast<size_t>(r);
            written_ += take;
        }
        s.offset += static_cast<off_t>(take);
        s.len -= take;
        progressed = true;
        if (s.len == 0)
            ++seg_head_;
    }
    if (seg_head_ == segs_.size()) {
        segs_.clear();
        seg_head_ = 0;
    }
    return progressed;
}

nghttp3_ssize Stream::read_data(nghttp3_vec* vec, size_t veccnt, uint32_t* flags) {
    if (reset_sent_)
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
    body_bytes_ += pos - handed_;
    handed_ = pos;
    if (response_ended_ && handed_ == written_ && seg_head_ == segs_.size()) {
        *flags |= NGHTTP3_DATA_FLAG_EOF;
        fin_sent_ = true;
        if (trailer_count_) {
            if (nghttp3_conn_submit_trailers(session_.http(), id_, trailers_, trailer_count_) == 0)
                *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
            trailer_count_ = 0;
        }
    } else if (n == 0) {
        data_blocked_ = true;
        return NGHTTP3_ERR_WOULDBLOCK;
    }
    maybe_writable();
    return static_cast<nghttp3_ssize>(n);
}

void Stream::on_acked(uint64_t n) {
    acked_ += n;
    BufferPool& pool = session_.worker().read_buffers();
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

void Stream::maybe_writable() {
    if (writable_wanted_ && unsent() < kLowWatermark) {
        writable_wanted_ = false;
        writable_pending_ = true;
        schedule();
    }
}

void Stream::shutdown(uint64_t app_error_code) {
    if (closed_ || reset_sent_)
        return;
    reset_sent_ = true;
    session_.reset_stream(id_, app_error_code);
}

void Stream::reset() {
    if (closed_ || aborted_)
        return;
    shutdown(NGHTTP3_H3_INTERNAL_ERROR);
}

} // namespace wraith::http3
