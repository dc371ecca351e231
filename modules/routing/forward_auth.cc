// `forward_auth = { pass = "http://127.0.0.1:9091", uri = "/verify", copy_headers = [...] }`
// (or `upstream = "NAME"`, and the proxy's connection options): before the handler, a
// sub-request asks an auth service about the request, as NGINX's auth_request, Caddy's
// forward_auth and Traefik's ForwardAuth do. The sub-request is a GET of `uri` carrying the
// client's fields (its body stays behind) and X-Forwarded-Method / X-Forwarded-Uri (plus
// NGINX's X-Original-Method / X-Original-URI). Its answer decides:
//   2xx: the request goes on; the `copy_headers` fields of the answer replace the client's
//        own fields of those names (a client cannot forge them: they are removed first);
//   401, 403, and redirects (301, 302, 303, 307, 308): passed to the client as they are;
//   anything else, or no answer: 500, and the error log says why.
// The exchange pauses meanwhile (the asynchronous access phase); a client that leaves cancels
// the sub-request.
#include <ev.h>

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/log.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/subrequest.h"
#include "modules/routing/routing.h"

namespace wraith {
const ModuleSpec& proxy_module();
}

namespace wraith::routing {

namespace {

constexpr size_t kMaxAnswerBody = 64 * 1024;

class ForwardAuth;

// One call to the auth service: lives in the client's arena while its exchange waits.
class AuthCall {
public:
    AuthCall(const ForwardAuth& filter, Request& req, ResponseWriter& out, AccessResume& resume);
    ~AuthCall() { ev_timer_stop(loop_, &decide_); }
    void start();

private:
    static void on_decide(struct ev_loop*, ev_timer* w, int);
    void decide();
    void pass_answer();

    const ForwardAuth& filter_;
    struct ev_loop* loop_; // kept: the request may be gone when the arena ends this object
    Request& req_;
    ResponseWriter& out_;
    AccessResume& resume_;
    Request sub_;
    EmptyBody body_;
    proxy::CaptureWriter answer_;
    ev_timer decide_{}; // the answer is in: decide on the loop, outside the sub-exchange
};

class ForwardAuth final : public Filter {
public:
    ForwardAuth(std::unique_ptr<Handler> service, std::string uri,
                std::vector<std::string> copy_headers)
        : service_(std::move(service)), uri_(std::move(uri)),
          copy_headers_(std::move(copy_headers)) {}

    unsigned phases() const override { return phase_bit(Phase::access); }

    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume& resume) const override {
        if (!req.loop) {
            send_error(req, out, 500, "forward_auth: not running in a worker");
            return AccessVerdict::answered;
        }
        req.arena->make<AuthCall>(*this, req, out, resume)->start();
        return AccessVerdict::paused;
    }

    const Handler& service() const { return *service_; }
    const std::string& uri() const { return uri_; }
    const std::vector<std::string>& copy_headers() const { return copy_headers_; }

private:
    std::unique_ptr<Handler> service_; // a proxy handler for the auth service
    std::string uri_;
    std::vector<std::string> copy_headers_; // lower-case
};

AuthCall::AuthCall(const ForwardAuth& filter, Request& req, ResponseWriter& out,
                   AccessResume& resume)
    : filter_(filter), loop_(req.loop), req_(req), out_(out), resume_(resume),
      answer_(*req.arena, kMaxAnswerBody, [this] {
          ev_timer_set(&decide_, 0., 0.);
          ev_timer_start(loop_, &decide_);
      }) {
    ev_init(&decide_, on_decide);
    decide_.data = this;
}

void AuthCall::start() {
    Arena& arena = *req_.arena;
    size_t q = filter_.uri().find('?');
    std::string_view uri = filter_.uri();
    proxy::init_subrequest(sub_, req_, arena, "GET", uri.substr(0, q),
                           q == std::string_view::npos ? std::string_view{} : uri.substr(q + 1));
    sub_.headers.set("x-forwarded-method", req_.method);
    sub_.headers.set("x-forwarded-uri", req_.target);
    sub_.headers.set("x-original-method", req_.method);
    sub_.headers.set("x-original-uri", req_.target);
    sub_.headers.remove("content-type");
    resume_.on_cancel([this] {
        ev_timer_stop(loop_, &decide_);
        answer_.abort(); // the client left: the sub-request stops too
    });
    filter_.service().handle(sub_, body_, answer_);
}

void AuthCall::on_decide(struct ev_loop*, ev_timer* w, int) {
    static_cast<AuthCall*>(w->data)->decide();
}

void AuthCall::decide() {
    resume_.on_cancel(nullptr);
    const int status = answer_.status;
    if (answer_.complete && status >= 200 && status < 300) {
        for (const std::string& name : filter_.copy_headers()) {
            req_.headers.remove(name); // never the client's own word
            for (const Header& h : answer_.headers)
                if (h.name == name)
                    req_.headers.add(name, h.value);
        }
        return resume_.resume(AccessVerdict::next);
    }
    const bool passed = status == 401 || status == 403 || status == 301 || status == 302 ||
                        status == 303 || status == 307 || status == 308;
    if (answer_.complete && passed && !answer_.truncated) {
        pass_answer();
        return resume_.resume(AccessVerdict::answered);
    }
    ErrorLog::limited(LogLevel::error, "forward_auth: %s, request %.*s, client: %.*s",
                      !answer_.complete   ? "no complete answer from the auth service"
                      : answer_.truncated ? "the auth service's answer is over 64 KiB"
                                          : ("the auth service answered " + std::to_string(status) +
                                             " (not 2xx, 401, 403 or a "
                                             "redirect)")
                                                .c_str(),
                      static_cast<int>(req_.target.size()), req_.target.data(),
                      static_cast<int>(client_ip_of(req_).size()), client_ip_of(req_).data());
    send_error(req_, out_, 500, {});
    resume_.resume(AccessVerdict::answered);
}

void AuthCall::pass_answer() {
    auto* head = req_.arena->make<ResponseHead>();
    head->status = answer_.status;
    for (const Header& h : answer_.headers)
        if (h.name != "content-length" && h.name != "transfer-encoding")
            head->headers.add(h.name, h.value);
    head->content_length = static_cast<int64_t>(answer_.body.size());
    if (answer_.body.empty() || req_.method_id == Method::head) {
        out_.send_headers(*head, true);
        return;
    }
    out_.send_headers(*head, false);
    out_.send_body(answer_.body, true);
}

} // namespace

std::unique_ptr<Filter> build_forward_auth(TableReader& r, BuildContext& ctx) {
    const size_t errors = r.diag().count();
    std::string uri = r.string("uri", "/");
    if (uri.empty() || uri.front() != '/' || uri.find_first_of(" \r\n#") != std::string::npos)
        r.error("uri", "expected the auth service's path, e.g. \"/verify\"");
    std::vector<std::string> copy;
    if (auto names = r.strings("copy_headers")) {
        for (std::string n : *names) {
            if (!is_token(n)) {
                r.error("copy_headers", "\"" + n + "\" is not a header name");
                continue;
            }
            for (char& c : n)
                c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
            copy.push_back(n);
        }
    }
    // The auth service is reached like a proxy route's upstream: the same keys (upstream or
    // pass, trusted_proxies, header rules ...) read by the proxy module itself.
    BuildContext proxy_ctx = ctx;
    // The registry keeps copies of the specs: the proxy's index is found by its key.
    proxy_ctx.module_index =
        ModuleRegistry::instance().index_of(*ModuleRegistry::instance().find(proxy_module().key));
    std::unique_ptr<Handler> service = proxy::build_proxy(r, proxy_ctx);
    if (!service || r.diag().count() != errors)
        return nullptr;
    return std::make_unique<ForwardAuth>(std::move(service), std::move(uri), std::move(copy));
}

} // namespace wraith::routing
