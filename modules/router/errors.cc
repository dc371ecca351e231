// Error responses (common/module.h send_error): a site's custom error page served as a
// sub-request of the same exchange, or a small built-in page.
#include <cstdio>

#include "common/log.h"
#include "common/module.h"
#include "modules/router/router.h"

namespace wraith {

namespace {

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
            // Serve the page as a sub-request of the same exchange.
            Request* sub = req.arena->make<Request>(req);
            sub->path = sub->decoded_path = sub->target = it->second;
            sub->query = {};
            sub->override_status = status;
            if (sub->method_id != Method::head) {
                sub->method = "GET";
                sub->method_id = Method::get;
            }
            const Route* route = Router::route_for(*req.site, *sub);
            if (route && route->handler) {
                sub->route = route;
                static EmptyBody no_body;
                route->handler->handle(*sub, no_body, out);
                return;
            }
        }
    }
    send_builtin_error(req, out, status);
}

} // namespace wraith
