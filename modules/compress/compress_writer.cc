#include "modules/compress/compress_writer.h"
#include "common/strings.h"

#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "modules/compress/compress.h"
#include "modules/compress/compress_stats.h"

namespace wraith {

namespace {

using Result = ResponseWriter::Result;

Result worse(Result a, Result b) {
    if (a == Result::closed || b == Result::closed)
        return Result::closed;
    if (a == Result::blocked || b == Result::blocked)
        return Result::blocked;
    return Result::ok;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// Whether a comma-separated field value lists `token` (case-insensitive), ignoring any
// "=value" of the element: for Cache-Control directives and Vary names.
bool list_has(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view element = value.substr(0, comma);
        value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
        size_t eq = element.find('=');
        if (iequals(trim(element.substr(0, eq)), token))
            return true;
    }
    return false;
}

bool any_field_lists(const Headers& headers, std::string_view name, std::string_view token) {
    for (const Header& h : headers)
        if (h.name == name && list_has(h.value, token))
            return true;
    return false;
}

// `"abc"` -> `"abc-gzip"`, `W/"abc"` -> `W/"abc-gzip"`: the compressed representation must not
// share a strong validator with the identity one (RFC 9110 §8.8.3). Empty if not an entity-tag.
std::string_view suffixed_etag(Arena& arena, std::string_view etag, std::string_view coding) {
    etag = trim(etag);
    size_t open = etag.starts_with("W/") ? 2 : 0;
    if (etag.size() < open + 2 || etag[open] != '"' || etag.back() != '"')
        return {};
    size_t n = etag.size() + 1 + coding.size();
    char* p = static_cast<char*>(arena.alloc(n, 1));
    size_t body = etag.size() - 1;
    std::memcpy(p, etag.data(), body);
    p[body] = '-';
    std::memcpy(p + body + 1, coding.data(), coding.size());
    p[n - 1] = '"';
    return {p, n};
}

bool is_text_type(std::string_view type) {
    return type.starts_with("text/") || type.find("json") != std::string_view::npos ||
           type.find("xml") != std::string_view::npos ||
           type.find("javascript") != std::string_view::npos;
}

bool is_font_type(std::string_view type) {
    return type.starts_with("font/") || type == "application/vnd.ms-fontobject" ||
           type == "application/x-font-ttf";
}

} // namespace

CompressWriter::CompressWriter(const CompressFilter& filter, Request& req, ResponseWriter& next,
                               Coding coding, CompressShard* shard)
    : filter_(filter), req_(req), next_(next), coding_(coding), shard_(shard) {}

void CompressWriter::send_informational(int status, const Headers& headers) {
    next_.send_informational(status, headers);
}

bool CompressWriter::should_compress(const ResponseHead& head, bool end_stream) const {
    const bool is_head = req_.method_id == Method::head;
    if (head.status != 200)
        return false;
    if (end_stream && !is_head)
        return false; // no body to compress
    if (head.content_length == 0)
        return false;
    if (head.content_length > 0 && uint64_t(head.content_length) < filter_.options().min_size)
        return false;
    if (head.headers.find("content-encoding"))
        return false;
    const Header* type = head.headers.find("content-type");
    if (!type || !filter_.type_matches(type->value))
        return false;
    // RFC 9111 §5.2.2.6: no-transform forbids changing the content coding.
    if (any_field_lists(head.headers, "cache-control", "no-transform"))
        return false;
    return true;
}

void CompressWriter::rewrite_headers(ResponseHead& head) {
    Arena& arena = *req_.arena;
    const std::string_view name = coding_name(coding_);
    head.content_length = -1;
    head.headers.remove("content-length");
    head.headers.set("content-encoding", name);
    // Ranges of the identity body would not address this one.
    head.headers.remove("accept-ranges");

    if (!any_field_lists(head.headers, "vary", "accept-encoding") &&
        !any_field_lists(head.headers, "vary", "*")) {
        if (head.headers.count("vary") == 1) {
            std::string_view old = trim(head.headers.get("vary"));
            if (old.empty()) {
                head.headers.set("vary", "accept-encoding");
            } else {
                constexpr std::string_view tail = ", accept-encoding";
                char* p = static_cast<char*>(arena.alloc(old.size() + tail.size(), 1));
                std::memcpy(p, old.data(), old.size());
                std::memcpy(p + old.size(), tail.data(), tail.size());
                head.headers.set("vary", {p, old.size() + tail.size()});
            }
        } else {
            head.headers.add("vary", "accept-encoding");
        }
    }

    if (const Header* etag = head.headers.find("etag")) {
        std::string_view tagged = suffixed_etag(arena, etag->value, name);
        if (tagged.empty())
            head.headers.remove("etag"); // not an entity-tag: do not pass it on unchanged
        else
            head.headers.set("etag", tagged);
    }
}

void CompressWriter::send_headers(ResponseHead& head, bool end_stream) {
    if (mode_ != Mode::undecided) { // a second send_headers is the caller's bug; pass it on
        next_.send_headers(head, end_stream);
        return;
    }
    if (head.status == 304) {
        // The client revalidated a copy we compressed (its tag carries our coding's suffix;
        // the handler matched it against the identity tag): a 304 carries the tag of the
        // representation being validated (RFC 9110 §15.4.5).
        if (const Header* etag = head.headers.find("etag")) {
            std::string_view tagged = suffixed_etag(*req_.arena, etag->value, coding_name(coding_));
            std::string_view opaque = tagged.starts_with("W/") ? tagged.substr(2) : tagged;
            bool held = false;
            for (const Header& h : req_.headers)
                held |= h.name == "if-none-match" && !opaque.empty() &&
                        h.value.find(opaque) != std::string_view::npos;
            if (held) {
                head.headers.set("etag", tagged);
                if (!any_field_lists(head.headers, "vary", "accept-encoding"))
                    head.headers.add("vary", "accept-encoding");
            }
        }
    }
    if (!should_compress(head, end_stream)) {
        mode_ = Mode::pass;
        next_.send_headers(head, end_stream);
        return;
    }
    if (req_.method_id == Method::head) {
        // RFC 9110 §9.3.2: HEAD gets the fields a GET would, so negotiate the same way.
        mode_ = Mode::head;
        rewrite_headers(head);
        ended_ = end_stream;
        next_.send_headers(head, end_stream);
        return;
    }

    std::string_view type = trim(head.headers.get("content-type"));
    type = trim(type.substr(0, type.find(';')));
    EncoderParams params;
    params.level = filter_.level(coding_);
    params.size_hint = head.content_length;
    params.text = is_text_type(type);
    params.font = is_font_type(type);
    encoder_ = make_encoder(*req_.arena, coding_, params);
    if (!encoder_) { // the library could not allocate its state: send identity
        mode_ = Mode::pass;
        next_.send_headers(head, end_stream);
        return;
    }
    out_buf_ = static_cast<uint8_t*>(req_.arena->alloc(out_chunk, 16));
    mode_ = Mode::compress;
    if (shard_)
        compress_count(shard_->responses[static_cast<int>(coding_)], 1);
    rewrite_headers(head);
    next_.send_headers(head, false);
}

Result CompressWriter::fail() {
    dead_ = true;
    file_pending_ = chunk_pending_ = false;
    next_.reset();
    return Result::closed;
}

void CompressWriter::note_blocked() {
    if (next_blocked_)
        return;
    next_blocked_ = true;
    next_.on_writable([this] { next_writable(); });
}

Result CompressWriter::to_caller(Result r) {
    if (r == Result::blocked)
        caller_waits_ = true;
    return r;
}

Result CompressWriter::encode(std::string_view data, bool end, bool pausable) {
    const auto* in = reinterpret_cast<const uint8_t*>(data.data());
    size_t in_len = data.size();
    Result acc = Result::ok;
    for (;;) {
        uint8_t* out = out_buf_;
        size_t out_len = out_chunk;
        const size_t in_before = in_len;
        Encoder::Status st = encoder_->run(in, in_len, out, out_len, end);
        if (st == Encoder::Status::error)
            return fail();
        const size_t produced = out_chunk - out_len;
        if (shard_) {
            compress_count(shard_->bytes_in[static_cast<int>(coding_)], in_before - in_len);
            compress_count(shard_->bytes_out[static_cast<int>(coding_)], produced);
        }
        const bool last = end && st == Encoder::Status::done;
        if (produced > 0 || last) {
            std::string_view bytes(reinterpret_cast<const char*>(out_buf_), produced);
            Result r;
            if (last && trailers_) {
                // The compressed body ends, then the trailers end the stream.
                r = next_.send_body(bytes, false);
                if (r != Result::closed)
                    r = worse(r, next_.send_trailers(*trailers_));
            } else {
                r = next_.send_body(bytes, last);
            }
            if (r == Result::closed) {
                dead_ = true;
                file_pending_ = chunk_pending_ = false;
                return Result::closed;
            }
            if (r == Result::blocked)
                note_blocked();
            acc = worse(acc, r);
        }
        if (last) {
            ended_ = true;
            return acc;
        }
        // All input taken and the output buffer not filled: nothing more until the next call.
        if (!end && in_len == 0 && out_len > 0)
            return acc;
        if (pausable && acc == Result::blocked) {
            chunk_ = in;
            chunk_len_ = in_len;
            chunk_end_ = end;
            chunk_pending_ = true;
            return acc;
        }
    }
}

Result CompressWriter::send_shared_body(std::string_view data, bool end_stream) {
    if (mode_ == Mode::pass)
        return next_.send_shared_body(data, end_stream);
    return send_body(data, end_stream);
}

Result CompressWriter::send_body(std::string_view data, bool end_stream) {
    switch (mode_) {
    case Mode::undecided: // body before headers is the caller's bug; let next judge it
    case Mode::pass:
        return next_.send_body(data, end_stream);
    case Mode::head:
        if (end_stream && !ended_) {
            ended_ = true;
            return next_.send_body({}, true);
        }
        return Result::ok;
    case Mode::compress:
        break;
    }
    if (dead_ || ended_)
        return Result::closed;
    // A caller that ignored `blocked` still gets its bytes in order.
    if (work_pending() && (pump_file(false) == Result::closed || ended_))
        return Result::closed;
    if (data.empty() && !end_stream)
        return to_caller(next_blocked_ ? Result::blocked : Result::ok);
    return to_caller(encode(data, end_stream, false));
}

Result CompressWriter::send_trailers(const Headers& trailers) {
    switch (mode_) {
    case Mode::undecided:
    case Mode::pass:
        return next_.send_trailers(trailers);
    case Mode::head:
        return send_body({}, true);
    case Mode::compress:
        break;
    }
    if (dead_ || ended_)
        return Result::closed;
    if (work_pending() && (pump_file(false) == Result::closed || ended_))
        return Result::closed;
    trailers_ = &trailers;
    Result r = to_caller(encode({}, true, false));
    trailers_ = nullptr;
    return r;
}

Result CompressWriter::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    switch (mode_) {
    case Mode::undecided:
    case Mode::pass:
        return next_.send_file(fd, offset, len, end_stream);
    case Mode::head:
        return send_body({}, end_stream);
    case Mode::compress:
        break;
    }
    if (dead_ || ended_)
        return Result::closed;
    if (work_pending() && (pump_file(false) == Result::closed || ended_))
        return Result::closed;
    if (!in_buf_)
        in_buf_ = static_cast<uint8_t*>(req_.arena->alloc(file_chunk, 16));
    file_fd_ = fd;
    file_offset_ = offset;
    file_left_ = len;
    file_end_ = end_stream;
    file_pending_ = true;
    return to_caller(pump_file(true));
}

Result CompressWriter::pump_file(bool honour_backpressure) {
    Result acc = Result::ok;
    while (work_pending()) {
        if (honour_backpressure && next_blocked_)
            return Result::blocked; // next_writable() continues from here
        Result r;
        if (chunk_pending_) {
            chunk_pending_ = false;
            r = encode({reinterpret_cast<const char*>(chunk_), chunk_len_}, chunk_end_,
                       honour_backpressure);
        } else {
            const size_t want = file_left_ < file_chunk ? file_left_ : file_chunk;
            ssize_t got = 0;
            if (want > 0) {
                do
                    got = ::pread(file_fd_, in_buf_, want, file_offset_);
                while (got < 0 && errno == EINTR);
                if (got <= 0) // read error, or the file shrank under us: cannot complete
                    return fail();
            }
            file_offset_ += got;
            file_left_ -= size_t(got);
            const bool last_piece = file_left_ == 0;
            if (last_piece)
                file_pending_ = false;
            if (got == 0 && !file_end_)
                break; // an empty range that does not end the stream
            r = encode({reinterpret_cast<const char*>(in_buf_), size_t(got)},
                       last_piece && file_end_, honour_backpressure);
        }
        if (r == Result::closed)
            return Result::closed;
        acc = worse(acc, r);
    }
    return acc;
}

void CompressWriter::next_writable() {
    next_blocked_ = false;
    if (dead_)
        return;
    if (work_pending() && pump_file(true) != Result::ok)
        return; // blocked again (re-armed) or closed
    if (!caller_waits_)
        return;
    caller_waits_ = false;
    if (writable_cb_) {
        Callback cb = std::move(writable_cb_);
        writable_cb_ = nullptr;
        cb();
    }
}

void CompressWriter::on_writable(Callback cb) {
    if (mode_ == Mode::compress)
        writable_cb_ = std::move(cb);
    else
        next_.on_writable(std::move(cb));
}

void CompressWriter::on_abort(Callback cb) {
    next_.on_abort([this, cb = std::move(cb)] {
        dead_ = true;
        file_pending_ = chunk_pending_ = false;
        if (cb)
            cb();
    });
}

void CompressWriter::reset() {
    dead_ = true;
    file_pending_ = chunk_pending_ = false;
    next_.reset();
}

} // namespace wraith
