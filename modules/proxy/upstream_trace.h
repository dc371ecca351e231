// What one proxied request did upstream, recorded as it happens: its tries (which server, when
// the connection was ready, when the response head came and the response ended, why a try
// failed) go into the request's UpstreamReport (common/http.h: the access log's $upstream_*
// and JSON fields, the log hooks of metrics modules) and into the upstream metrics
// (upstream_metrics.h). The HTTP/1.1, HTTP/2 and HTTP/3 exchanges each hold one and call it at
// the same points of their lifecycle.
//
// A try is one server, or one more connection to the same server (a pooled connection the
// server had closed, a stream it refused): it is in flight from start_try() until the next
// try or finish(), and counts once in wraith_upstream_requests_total when it ends.
#pragma once

#include <cstdint>

#include "common/http.h"
#include "modules/proxy/upstream_metrics.h"

namespace wraith::proxy {

class UpstreamTrace {
public:
    // The proxy starts on `req` for `up`: the clock starts and req.upstream gets its report
    // (in the request arena).
    void begin(Request& req, UpstreamMetrics& metrics, const UpstreamConfig& up);
    // A try starts on server `server` of the upstream; the previous one, if any, ends.
    void start_try(size_t server);
    // The try's connection is ready to carry the request: `fresh` when it was made for it
    // (timed into wraith_upstream_connect_seconds), else a kept-alive one or a shared session.
    void connected(bool fresh);
    // The try's final response head came (a 101 included; 1xx interim ones are not).
    void response_head(int status);
    // The try failed. Its first failure is the one counted.
    void failed(Failure kind);
    // The response came whole. Called before its last bytes go to the client: the log phase
    // may run inside that call.
    void response_end();
    // The request is done with the upstream (answered, failed, or the client left): the
    // current try ends. Safe to call again.
    void finish();
    // An HTTP/3 request that falls back to HTTP/2 hands its trace to the HTTP/2 exchange;
    // this one records nothing more.
    void hand_over(UpstreamTrace& to);

private:
    uint64_t since_start() const;
    void end_try();

    UpstreamMetrics* metrics_ = nullptr; // null: begin() not called, or handed over
    const UpstreamConfig* up_ = nullptr;
    const UpstreamMetrics::Slots* slots_ = nullptr;
    UpstreamReport* report_ = nullptr;
    uint64_t start_us_ = 0;     // monotonic, when the proxy started on the request
    uint64_t try_start_us_ = 0; // when the current try started
    int server_slot_ = -1;      // the current try's server in the metrics zone
    bool in_try_ = false;
    bool try_failed_ = false;
};

} // namespace wraith::proxy
