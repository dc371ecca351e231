#include "worker/pipeline.h"

#include <cstdio>

#include "common/log.h"
#include "common/path.h"
#include "modules/router/router.h"
#include "worker/worker.h"

namespace wraith {

namespace {

// A body that is already over: error pages and sub-requests never read one.
class NoBody final : public BodyReader {
public:
    std::string_view peek() override { return {}; }
    void consume(size_t) override {}
    bool finished() const override { return true; }
    bool failed() const override { return false; }
    void on_data(Callback) override {}
    void pause() override {}
    void resume() override {}
    void discard() override {}
};

void send_builtin_error(Request& req, ResponseWriter& out, int status) {
    char body[512];
    const char* reason = status_reason(status);
    int n = snprintf(body, sizeof(body),
                     "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
                     "<body><h1>%d %s</h1><hr><p>wraith</p></body></html>\n",
                     status, reason, status, reason);
    ResponseHead head;
    head.status = status;
    head.headers.add("content-type", "text/html; charset=utf-8");
    if (status == 405)
        head.headers.add("allow", "GET, HEAD, OPTIONS");
    head.content_length = n;
    bool head_only = req.method_id == Method::head;
    out.send_headers(head, head_only);
    if (!head_only)
        out.send_body({body, static_cast<size_t>(n)}, true);
}

void log_client_error(const Request& req, int status, std::string_view reason) {
    ErrorLog::limited(
        LogLevel::info, "%d %.*s, client: %.*s, request: \"%.*s %.*s\"", status, (int)reason.size(),
        reason.data(), req.conn ? (int)req.conn->peer_text.size() : 0,
        req.conn ? req.conn->peer_text.data() : "", (int)req.method.size(), req.method.data(),
        (int)std::min<size_t>(req.target.size(), 256), req.target.data());
}

} // namespace

void send_error(Request& req, ResponseWriter& out, int status, std::string_view reason) {
    if (!reason.empty())
        log_client_error(req, status, reason);
    if (req.site && req.override_status == 0 && req.method_id != Method::other) {
        auto it = req.site->error_pages.find(status);
        if (it != req.site->error_pages.end()) {
            const Route* route = Router::route_for(*req.site, it->second);
            if (route && route->handler) {
                // Serve the page as a sub-request of the same exchange.
                Request* sub = req.arena->make<Request>(req);
                sub->path = sub->decoded_path = sub->target = it->second;
                sub->query = {};
                sub->route = route;
                sub->override_status = status;
                if (sub->method_id != Method::head) {
                    sub->method = "GET";
                    sub->method_id = Method::get;
                }
                static NoBody no_body;
                route->handler->handle(*sub, no_body, out);
                return;
            }
        }
    }
    send_builtin_error(req, out, status);
}

void run_exchange(Worker& worker, Request& req, BodyReader& body, ResponseWriter& out) {
    worker.count_request();
    req.site = worker.router().site_for(req.host);

    if (req.path == "*") {
        // RFC 9110 §9.3.7: OPTIONS * asks about the server as a whole.
        ResponseHead head;
        head.status = req.method_id == Method::options ? 200 : 400;
        if (head.status == 400)
            return send_error(req, out, 400, "asterisk-form target without OPTIONS");
        head.headers.add("allow", "GET, HEAD, OPTIONS");
        head.content_length = 0;
        out.send_headers(head, true);
        return;
    }
    if (!normalize_path(req.path, *req.arena, req.decoded_path))
        return send_error(req, out, 400, "bad path encoding or traversal");
    if (!req.site)
        return send_error(req, out, 404, "no site");
    req.route = Router::route_for(*req.site, req.decoded_path);
    if (!req.route || !req.route->handler)
        return send_error(req, out, 404, "no route");

    ResponseWriter* writer = &out;
    const auto& filters = req.route->filters;
    for (const auto& f : filters) {
        if (f->phase() == Phase::access && f->access(req, out) == Filter::Verdict::answered)
            return;
    }
    if (!req.upgrade.empty() && !req.route->handler->tunnels()) {
        // The resource exists but cannot be a tunnel: 405 with the methods it does take
        // (RFC 9110 §15.5.6). An HTTP/1.1 Upgrade is optional for the server: serve it plainly.
        if (req.extended_connect()) {
            if (req.has_body)
                body.discard();
            return send_error(req, out, 405, "extended CONNECT to a route that cannot tunnel");
        }
        req.upgrade = {};
    }
    for (auto it = filters.rbegin(); it != filters.rend(); ++it)
        if ((*it)->phase() == Phase::response)
            writer = (*it)->wrap(req, *writer);
    req.route->handler->handle(req, body, *writer);
}

void finish_exchange(Worker& worker, const Request& req, const ExchangeSummary& summary) {
    if (req.route)
        for (const auto& f : req.route->filters)
            if (f->phase() == Phase::log)
                f->log(req, summary);
    worker.access_logs().log(req, summary);
}

} // namespace wraith
