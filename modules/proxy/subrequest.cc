#include "modules/proxy/subrequest.h"

#include <unistd.h>

namespace wraith::proxy {

void CaptureWriter::send_headers(ResponseHead& head, bool end_stream) {
    status = head.status;
    for (const Header& h : head.headers)
        headers.add(arena_.copy(h.name), arena_.copy(h.value));
    if (end_stream)
        finish();
}

ResponseWriter::Result CaptureWriter::send_body(std::string_view data, bool end_stream) {
    body_bytes_ += data.size();
    size_t room = max_body_ > body.size() ? max_body_ - body.size() : 0;
    if (data.size() > room)
        truncated = true;
    body.append(data.substr(0, room));
    if (end_stream)
        finish();
    return Result::ok;
}

ResponseWriter::Result CaptureWriter::send_file(int fd, off_t offset, size_t len, bool end_stream) {
    // Proxied answers never come as files; read what fits for completeness.
    size_t want = std::min(len, max_body_ > body.size() ? max_body_ - body.size() : 0);
    std::string chunk(want, '\0');
    ssize_t n = want ? ::pread(fd, chunk.data(), want, offset) : 0;
    chunk.resize(n > 0 ? static_cast<size_t>(n) : 0);
    truncated = truncated || chunk.size() < len;
    body_bytes_ += len;
    body += chunk;
    if (end_stream)
        finish();
    return Result::ok;
}

void CaptureWriter::reset() {
    failed = true;
    finish();
}

void CaptureWriter::finish() {
    if (ended_)
        return;
    ended_ = true;
    complete = !failed;
    abort_cb_ = nullptr;
    if (Callback cb = std::move(done_))
        cb();
}

void CaptureWriter::abort() {
    if (ended_)
        return;
    ended_ = true;
    failed = true;
    done_ = nullptr;
    if (Callback cb = std::move(abort_cb_))
        cb();
}

void init_subrequest(Request& sub, const Request& parent, Arena& arena, std::string_view method,
                     std::string_view path, std::string_view query) {
    // Copies, not views: a mirrored request outlives its parent's buffers.
    sub.method = arena.copy(method);
    sub.method_id = method_from(method);
    sub.scheme = arena.copy(parent.scheme);
    sub.authority = arena.copy(parent.authority);
    sub.host = arena.copy(parent.host);
    sub.path = arena.copy(path);
    sub.decoded_path = sub.path;
    sub.query = arena.copy(query);
    sub.target =
        query.empty() ? sub.path : arena.copy(std::string(path) + "?" + std::string(query));
    sub.version = 11;
    for (const Header& h : parent.headers)
        if (h.name != "content-length" && h.name != "transfer-encoding" && h.name != "expect")
            sub.headers.add(arena.copy(h.name), arena.copy(h.value));
    sub.content_length = -1;
    sub.has_body = false;
    sub.conn = parent.conn;
    sub.arena = &arena;
    sub.loop = parent.loop;
    sub.start = parent.start;
    sub.start_mono_us = parent.start_mono_us;
    sub.modules = parent.modules;
    sub.client_ip = arena.copy(parent.client_ip);
    sub.request_id = arena.copy(parent.request_id);
}

} // namespace wraith::proxy
