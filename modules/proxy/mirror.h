// Mirroring (`proxy = { ..., mirror = { upstream = "shadow", percent = 10 } }`): a copy of a
// request goes to a shadow upstream, detached from the client's exchange. Its answer is thrown
// away and its failures are only logged (at debug level): the client's response never waits
// for it or depends on it. Requests with a body are not mirrored (the body streams to the
// primary upstream once; keeping a copy would buffer every upload): they are counted as
// skipped. Each worker runs at most kMaxInFlight mirrors at once; beyond that, copies are
// skipped rather than queued.
#pragma once

#include <ev.h>

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "common/arena.h"
#include "common/http.h"
#include "modules/proxy/subrequest.h"

namespace wraith::proxy {

class ProxyHandler;
class ProxyWorker;

// One mirrored request: its own arena, connection record, request and writer.
class MirrorExchange {
public:
    MirrorExchange(ProxyWorker& worker, const Request& parent, const ProxyHandler& shadow);
    ~MirrorExchange();
    MirrorExchange(const MirrorExchange&) = delete;
    MirrorExchange& operator=(const MirrorExchange&) = delete;
    void start();

private:
    static void on_done(struct ev_loop* loop, ev_timer* w, int revents);
    ProxyWorker& worker_;
    const ProxyHandler& shadow_;
    Arena arena_;
    ConnectionInfo conn_;
    TlsInfo tls_; // conn_.tls: a copy of the client connection's, in the arena
    Request req_;
    EmptyBody body_;
    CaptureWriter out_;
    ev_timer done_timer_; // the answer is complete: delete outside the exchange's call stack
};

// A worker's mirrors in flight; deleting it ends them (worker exit).
class MirrorSet {
public:
    static constexpr size_t kMaxInFlight = 256;
    ~MirrorSet();
    bool full() const { return live_.size() >= kMaxInFlight; }
    MirrorExchange* add(std::unique_ptr<MirrorExchange> m);
    void remove(MirrorExchange* m);
    size_t size() const { return live_.size(); }

private:
    std::unordered_map<MirrorExchange*, std::unique_ptr<MirrorExchange>> live_;
};

// A route's mirror: the shadow's handler and the share of requests copied.
class Mirror {
public:
    Mirror(std::unique_ptr<ProxyHandler> shadow, uint32_t percent);
    ~Mirror();
    // Copies `req` to the shadow when it is picked and has no body.
    void send(const Request& req, ProxyWorker& worker) const;

private:
    std::unique_ptr<ProxyHandler> shadow_;
    uint32_t percent_;
};

} // namespace wraith::proxy
