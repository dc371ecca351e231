// Requests the server makes on its own behalf through a proxy handler: forward_auth's call to
// an auth service (modules/routing/forward_auth.cc) and mirrored copies of requests to a
// shadow upstream (mirror.h). A CaptureWriter stands in for the client: it keeps the answer
// (status, fields, some body) instead of sending it.
#pragma once

#include <string>
#include <string_view>

#include "common/http.h"

namespace wraith::proxy {

class CaptureWriter final : public ResponseWriter {
public:
    // `arena`: where the answer's fields are copied (they outlive the upstream's buffers).
    // `max_body`: body bytes kept; more sets `truncated`. `done` runs once, when the answer is
    // complete or was reset (from inside the handler's call stack: defer real work).
    CaptureWriter(Arena& arena, size_t max_body, Callback done)
        : arena_(arena), max_body_(max_body), done_(std::move(done)) {}

    // The caller no longer wants the answer (its own client left): the handler is told through
    // its abort callback and must stop.
    void abort();

    int status = 0;
    Headers headers;
    std::string body;
    bool truncated = false;
    bool complete = false; // the whole answer arrived
    bool failed = false;   // reset() by the handler: no complete answer

    void send_informational(int, const Headers&) override {}
    void send_headers(ResponseHead& head, bool end_stream) override;
    Result send_body(std::string_view data, bool end_stream) override;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override;
    Result send_trailers(const Headers&) override { return send_body({}, true); }
    void on_writable(Callback) override {}
    void on_abort(Callback cb) override { abort_cb_ = std::move(cb); }
    void reset() override;
    bool headers_sent() const override { return status != 0; }
    uint64_t body_bytes_sent() const override { return body_bytes_; }

private:
    void finish();
    Arena& arena_;
    size_t max_body_;
    Callback done_;
    Callback abort_cb_;
    uint64_t body_bytes_ = 0;
    bool ended_ = false;
};

// A request with no body for `path` (and `query`) that carries `parent`'s fields (but the
// body's framing ones), connection and per-worker state: what a sub-request sends upstream.
// Everything is copied into `arena` but `conn`, which a detached sub-request replaces.
void init_subrequest(Request& sub, const Request& parent, Arena& arena, std::string_view method,
                     std::string_view path, std::string_view query);

} // namespace wraith::proxy
