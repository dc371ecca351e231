// The `dashboard` handler: the live page (dashboard.html, embedded at build time) at the
// route's path, and the status object it polls at `status.json` beside it. Everything else
// under the route is 404, so a dashboard route exposes nothing but these two.
#include <string>

#include "common/config_reader.h"
#include "common/metrics_text.h"
#include "modules/metrics/metrics.h"

namespace wraith::metrics {

namespace {

constexpr std::string_view kStatusJson = "status.json";

class DashboardHandler final : public Handler {
public:
    DashboardHandler(size_t observe_index, std::string prefix)
        : observe_index_(observe_index), prefix_(std::move(prefix)) {}

    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override {
        if (req.has_body)
            body.discard();
        if (req.method_id != Method::get && req.method_id != Method::head)
            return send_error(req, out, 405, {});
        std::string_view path = req.decoded_path;
        if (!prefix_.empty() && !prefix_.ends_with('/') && path == prefix_)
            return redirect(req, out); // "/dash" → "/dash/": status.json resolves beside it
        // What follows the route's prefix (prefix routes), else the last segment.
        std::string_view rest;
        if (!prefix_.empty() && path.starts_with(prefix_)) {
            rest = path.substr(prefix_.size());
            if (!prefix_.ends_with('/') && rest.starts_with('/'))
                rest.remove_prefix(1);
        } else {
            rest = path.substr(path.rfind('/') + 1);
        }
        if (rest.empty())
            return send(req, out, "text/html; charset=utf-8",
                        std::string_view(kDashboardHtml, kDashboardHtmlSize), true);
        if (rest != kStatusJson)
            return send_error(req, out, 404, {});
        auto* w = req.modules ? req.modules->get<MetricsWorker>(observe_index_) : nullptr;
        if (!w)
            return send_error(req, out, 503, "dashboard: this worker has no metrics state");
        std::string json;
        json.reserve(8192);
        status_json(w->view(false), json);
        send(req, out, "application/json", req.arena->copy(json), false);
    }

private:
    static void send(Request& req, ResponseWriter& out, std::string_view type,
                     std::string_view body, bool page) {
        auto* head = req.arena->make<ResponseHead>();
        head->headers.add("content-type", type);
        head->headers.add("cache-control", "no-store");
        head->headers.add("x-content-type-options", "nosniff");
        if (page) {
            // The page loads nothing but itself and status.json.
            head->headers.add("content-security-policy",
                              "default-src 'none'; script-src 'unsafe-inline'; style-src "
                              "'unsafe-inline'; img-src data:; connect-src 'self'; "
                              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
            head->headers.add("referrer-policy", "no-referrer");
        }
        head->content_length = static_cast<int64_t>(body.size());
        if (req.method_id == Method::head)
            return out.send_headers(*head, true);
        out.send_headers(*head, false);
        out.send_body(body, true);
    }

    void redirect(Request& req, ResponseWriter& out) const {
        auto* head = req.arena->make<ResponseHead>();
        head->status = 301;
        std::string location = prefix_ + "/";
        if (!req.query.empty())
            location.append("?").append(req.query);
        head->headers.add("location", req.arena->copy(location));
        head->content_length = 0;
        out.send_headers(*head, true);
    }

    size_t observe_index_;
    std::string prefix_; // the route's path when it is a prefix route, else ""
};

} // namespace

std::unique_ptr<Handler> build_dashboard(TableReader&, BuildContext& ctx) {
    const ModuleRegistry& registry = ModuleRegistry::instance();
    std::string prefix;
    if (ctx.route && ctx.route->match.kind == PathMatch::Kind::prefix)
        prefix = ctx.route->match.text;
    return std::make_unique<DashboardHandler>(registry.index_of(*registry.find("observe")),
                                              std::move(prefix));
}

} // namespace wraith::metrics
