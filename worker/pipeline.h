// The phase engine: one exchange's way from a complete request head to its handler, and the
// log phase at its end; plus the accept phase of a new connection. Read top to bottom in
// pipeline.cc: request-head filters ([server]: the client address) → site → path → route
// (the whole request: conditions) → access filters (may answer, or pause and resume) → tunnel
// checks → request-body filters → response filters wrapped around the writer → handler; at the end
// log filters and the access log. Filters of the server, the site and the route run as one chain
// (common/config.h, FilterScope).
//
// Protocols (worker/http1, worker/http2, worker/http3) call run() and finish() and nothing
// else of the module machinery. The engine needs no running worker: unit tests drive it with
// a config, a router and recording readers and writers.
#pragma once

#include <cstdint>

#include "common/http.h"
#include "common/module.h"

namespace wraith {

class AccessLogs;
class Router;

class Pipeline {
public:
    // `logs` may be null (no access log); `modules` may be null (no per-worker module state).
    Pipeline(const Config& config, const Router& router, AccessLogs* logs, ModuleWorkers* modules);

    // Starts an exchange whose head is complete. Every outcome, including errors, is a
    // response through `out`; a paused access filter or the handler may finish it later from
    // loop callbacks.
    void run(Request& req, BodyReader& body, ResponseWriter& out);

    // The exchange ended (response complete, or aborted): log phase and access log.
    void finish(const Request& req, const ExchangeSummary& summary);

    // Accept phase: the [server] filters decide about a new connection before any byte of it
    // is read. False: refuse it (ctx says how to tell the client). Each filter that accepted is
    // told when it is closed (connection_closed), so connection limits can count.
    bool accept(AcceptContext& ctx) const;
    void connection_closed(const ConnectionInfo& conn) const;
    // Whether any [server] filter runs in the accept phase (connections skip it otherwise).
    bool has_accept_filters() const { return has_accept_; }

private:
    const Config& config_;
    const Router& router_;
    AccessLogs* logs_;
    ModuleWorkers* modules_;
    bool has_accept_ = false;
};

} // namespace wraith
