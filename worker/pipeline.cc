#include "worker/pipeline.h"

#include "common/log.h"
#include "common/path.h"
#include "modules/router/router.h"
#include "worker/access_log.h"

namespace wraith {

namespace {

bool runs_in(const Filter* f, Phase p) {
    return (f->phases() & phase_bit(p)) != 0;
}

// One exchange's walk from the access phase to its handler. It lives in the request's arena,
// so it outlives a pause: a paused filter resumes it from a loop callback, or the client goes
// away first and the filter is told through its cancel callback.
class PhaseRun final : public AccessResume {
public:
    PhaseRun(Request& req, BodyReader& body, ResponseWriter& out, const Handler* handler,
             const char* missing)
        : req_(req), body_(&body), out_(out), handler_(handler), missing_(missing) {}

    void run_access() {
        const std::vector<const Filter*>& chain = req_.filters->chain;
        while (next_ < chain.size()) {
            const Filter* f = chain[next_];
            if (!runs_in(f, Phase::access)) {
                ++next_;
                continue;
            }
            in_access_ = true;
            AccessVerdict v = f->access(req_, out_, *this);
            in_access_ = false;
            if (v == AccessVerdict::paused) {
                if (!resumed_inside_) {
                    // Wait for resume(); a client that leaves first cancels the wait.
                    state_ = State::paused;
                    out_.on_abort([this] { cancel(); });
                    return;
                }
                // The filter resumed before it returned (an answer it had at hand).
                resumed_inside_ = false;
                v = verdict_inside_;
            }
            if (v == AccessVerdict::answered) {
                state_ = State::done;
                return;
            }
            ++next_;
        }
        run_handler();
    }

    void resume(AccessVerdict verdict) override {
        if (in_access_) {
            resumed_inside_ = true;
            verdict_inside_ = verdict;
            return;
        }
        if (state_ != State::paused)
            return; // cancelled, or resumed twice: nothing waits any more
        state_ = State::running;
        cancel_cb_ = nullptr;
        out_.on_abort(nullptr);
        if (verdict == AccessVerdict::answered) {
            state_ = State::done;
            return;
        }
        ++next_;
        run_access();
    }

    void on_cancel(Callback cb) override { cancel_cb_ = std::move(cb); }
    BodyReader& body() override { return *body_; }
    void replace_body(BodyReader& body) override { body_ = &body; }

private:
    enum class State : uint8_t { running, paused, done };

    void cancel() {
        state_ = State::done;
        Callback cb = std::move(cancel_cb_);
        if (cb)
            cb();
    }

    void run_handler() {
        state_ = State::done;
        if (!handler_)
            return send_error(req_, out_, 404, missing_);
        if (!req_.upgrade.empty() && !handler_->tunnels()) {
            // The resource exists but cannot be a tunnel: 405 with the methods it does take
            // (RFC 9110 §15.5.6). An HTTP/1.1 Upgrade is optional for the server: serve it
            // plainly.
            if (req_.extended_connect()) {
                if (req_.has_body)
                    body_->discard();
                return send_error(req_, out_, 405,
                                  "extended CONNECT to a route that cannot tunnel");
            }
            req_.upgrade = {};
        }
        const std::vector<const Filter*>& chain = req_.filters->chain;
        // The first filter in order reads the request body nearest the client, and its
        // response writer is the outermost: the handler writes into it first.
        BodyReader* body = body_;
        for (const Filter* f : chain)
            if (runs_in(f, Phase::request_body))
                body = f->wrap_body(req_, *body);
        ResponseWriter* writer = &out_;
        for (auto it = chain.rbegin(); it != chain.rend(); ++it)
            if (runs_in(*it, Phase::response))
                writer = (*it)->wrap(req_, *writer);
        handler_->handle(req_, *body, *writer);
    }

    Request& req_;
    BodyReader* body_; // the protocol's reader, or an access filter's replacement
    ResponseWriter& out_;
    const Handler* handler_; // null: answer 404 with `missing_` after the access phase
    const char* missing_;
    Callback cancel_cb_;
    size_t next_ = 0; // the access filter to run next
    State state_ = State::running;
    bool in_access_ = false;
    bool resumed_inside_ = false;
    AccessVerdict verdict_inside_ = AccessVerdict::next;
};

} // namespace

Pipeline::Pipeline(const Config& config, const Router& router, AccessLogs* logs,
                   ModuleWorkers* modules)
    : config_(config), router_(router), logs_(logs), modules_(modules) {
    for (const Filter* f : config.filters.chain)
        has_accept_ = has_accept_ || runs_in(f, Phase::accept);
}

void Pipeline::run(Request& req, BodyReader& body, ResponseWriter& out) {
    req.modules = modules_;
    req.filters = &config_.filters;
    // Per-exchange state starts fresh: a connection reuses its Request for the next exchange,
    // and views from the last one point into an arena that was reset.
    req.client_ip = req.conn ? req.conn->peer_ip : std::string_view{};
    req.request_id = {};
    req.captures = nullptr;
    req.geo = nullptr;
    req.rewrites = 0;
    for (const Filter* f : config_.filters.chain)
        if (runs_in(f, Phase::request_head) && f->request_head(req, out) != AccessVerdict::next)
            return; // answered
    req.site = req.conn && req.conn->site ? req.conn->site : router_.site_for(req.host);

    if (req.path == "*") {
        // RFC 9110 §9.3.7: OPTIONS * asks about the server as a whole.
        if (req.method_id != Method::options)
            return send_error(req, out, 400, "asterisk-form target without OPTIONS");
        ResponseHead head;
        head.headers.add("allow", "GET, HEAD, OPTIONS");
        head.content_length = 0;
        out.send_headers(head, true);
        return;
    }
    if (!normalize_path(req.path, *req.arena, req.decoded_path))
        return send_error(req, out, 400, "bad path encoding or traversal");

    // Server, site and route filters run as one chain: the route's when a route matched, else
    // the site's (then 404), else the server's (then 404).
    const char* missing = "no site";
    if (req.site) {
        req.filters = &req.site->filters;
        missing = "no route";
        std::string error;
        std::string trace;
        const bool debug = ErrorLog::enabled(LogLevel::debug);
        if (debug)
            router_.explain_site(req.host, trace);
        // Internal rewrites may send the request through routing again (Router::resolve).
        bool routed = Router::resolve(*req.site, req, error, debug ? &trace : nullptr);
        if (debug)
            WLOG_DEBUG("route %.*s %.*s:\n%s", static_cast<int>(req.method.size()),
                       req.method.data(), static_cast<int>(req.target.size()), req.target.data(),
                       trace.c_str());
        if (!routed) {
            req.route = nullptr;
            // A client can repeat the request at will: rate-limited like other client errors.
            ErrorLog::limited(LogLevel::error, "%s, request %.*s, client: %.*s", error.c_str(),
                              static_cast<int>(req.target.size()), req.target.data(),
                              static_cast<int>(req.client_ip.size()), req.client_ip.data());
            return send_error(req, out, 500, {});
        }
        if (req.route)
            req.filters = &req.route->filters;
    }
    const Handler* handler = req.route ? req.route->handler.get() : nullptr;
    req.arena->make<PhaseRun>(req, body, out, handler, missing)->run_access();
}

void Pipeline::finish(const Request& req, const ExchangeSummary& summary) {
    if (req.filters)
        for (const Filter* f : req.filters->chain)
            if (runs_in(f, Phase::log))
                f->log(req, summary);
    if (logs_)
        logs_->log(req, summary);
}

bool Pipeline::accept(AcceptContext& ctx) const {
    ctx.modules = modules_;
    const std::vector<const Filter*>& chain = config_.filters.chain;
    for (size_t i = 0; i < chain.size(); ++i) {
        if (!runs_in(chain[i], Phase::accept) || chain[i]->accept(ctx))
            continue;
        // Refused: the filters before it accepted and are told it is gone.
        for (size_t j = 0; j < i; ++j)
            if (runs_in(chain[j], Phase::accept))
                chain[j]->connection_closed(ctx.conn, modules_);
        return false;
    }
    return true;
}

void Pipeline::connection_closed(const ConnectionInfo& conn) const {
    for (const Filter* f : config_.filters.chain)
        if (runs_in(f, Phase::accept))
            f->connection_closed(conn, modules_);
}

} // namespace wraith
