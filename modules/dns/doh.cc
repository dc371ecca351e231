// `dns = {}` on a route: DNS over HTTPS (RFC 8484). GET with `?dns=` (base64url, no padding)
// or POST of application/dns-message, over HTTP/1.1, HTTP/2 and HTTP/3 alike (the handler
// sees only the exchange). A query is answered from the block list, from the shared cache, or
// by forwarding it (forwarder.h); the answer is application/dns-message with Cache-Control
// max-age of its smallest TTL (RFC 8484 §5.1). Malformed queries get 400, other media types
// 415, other methods 405. The access log line gets dns_name, dns_type, dns_rcode, dns_cache
// (hit, miss, blocked), and for forwarded queries dns_upstream and dns_transport notes.
#include <charconv>
#include <cstring>

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/log.h"
#include "modules/dns/dns.h"
#include "modules/dns/forwarder.h"
#include "modules/dns/resolve.h"

namespace wraith::dns {

namespace {

// The longest `dns` parameter a 65535-byte message can have.
constexpr size_t kMaxEncoded = (kMaxMessage * 4 + 2) / 3;

bool is_dns_message_type(std::string_view v) {
    constexpr std::string_view want = "application/dns-message";
    if (size_t semi = v.find(';'); semi != std::string_view::npos)
        v = v.substr(0, semi);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t'))
        v.remove_suffix(1);
    if (v.size() != want.size())
        return false;
    for (size_t i = 0; i < v.size(); ++i)
        if ((v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]) != want[i])
            return false;
    return true;
}

// The value of `name` in a query string ("dns=...&x=y"), or nullopt.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        if (pair.size() >= name.size() && pair.substr(0, name.size()) == name &&
            (pair.size() == name.size() || pair[name.size()] == '='))
            return pair.size() == name.size() ? std::string_view{} : pair.substr(name.size() + 1);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    }
    return std::nullopt;
}

// One DoH exchange; lives in the request's arena.
class DohCall {
public:
    DohCall(DnsWorker& worker, Request& req, BodyReader& body, ResponseWriter& out)
        : worker_(worker), req_(req), body_(body), out_(out) {
        // The client left (while its body arrives or its query is upstream): nothing more
        // may touch the writer or the body.
        out_.on_abort([this] {
            aborted_ = true;
            if (forward_)
                forward_->cancel();
        });
    }

    void read_body();
    void answer_query(std::string_view message);

private:
    void refuse(int status, std::string_view why);
    void forwarded();
    void send(std::string& message, std::string_view cache_note);
    void add_notes(std::string_view rcode, std::string_view cache_note);

    DnsWorker& worker_;
    Request& req_;
    BodyReader& body_;
    ResponseWriter& out_;
    std::string body_bytes_;
    std::string_view query_; // the client's message (body_bytes_, arena or stripped_)
    std::string stripped_;   // the query without its hop-by-hop EDNS options
    Message question_;
    Forward* forward_ = nullptr;
    bool aborted_ = false;
};

void DohCall::refuse(int status, std::string_view why) {
    worker_.cache.counters().malformed.fetch_add(1, std::memory_order_relaxed);
    add_log_note(req_, "dns_error", req_.arena->copy(why));
    send_error(req_, out_, status, {});
}

void DohCall::read_body() {
    while (!aborted_) {
        const std::string_view data = body_.peek();
        if (!data.empty()) {
            if (body_bytes_.size() + data.size() > kMaxMessage) {
                body_.on_data(nullptr);
                body_.discard();
                return refuse(400, "too_long");
            }
            body_bytes_.append(data);
            body_.consume(data.size());
            continue;
        }
        if (body_.failed()) {
            body_.on_data(nullptr);
            return; // the exchange is ending
        }
        if (body_.finished()) {
            body_.on_data(nullptr);
            return answer_query(body_bytes_);
        }
        body_.on_data([this] { read_body(); });
        return;
    }
}

// The access log's notes, added in reverse so that the line reads name, type, upstream,
// transport, rcode, cache (notes print newest first).
void DohCall::add_notes(std::string_view rcode, std::string_view cache_note) {
    Arena& arena = *req_.arena;
    add_log_note(req_, "dns_cache", cache_note);
    if (!rcode.empty())
        add_log_note(req_, "dns_rcode", arena.copy(rcode));
    if (forward_) {
        add_log_note(req_, "dns_transport", forward_->used_tcp() ? "tcp" : "udp");
        add_log_note(req_, "dns_upstream", arena.copy(forward_->upstream()));
    }
    add_log_note(req_, "dns_type", arena.copy(type_text(question_.qtype)));
    add_log_note(req_, "dns_name", arena.copy(name_text(question_.qname, question_.qname_len)));
}

void DohCall::answer_query(std::string_view message) {
    query_ = message;
    Counters& counters = worker_.cache.counters();
    if (ParseError e = parse(message, question_); e != ParseError::none)
        return refuse(400, describe(e));
    if (const char* bad = check_query(question_))
        return refuse(400, bad);
    // A query that could not go over UDP as it is (RFC 6891 §6.2.5: over its own payload size).
    if (message.size() > question_.udp_size)
        return refuse(400, "over_udp_size");
    counters.queries.fetch_add(1, std::memory_order_relaxed);
    if (question_.padded || question_.keepalive >= 0) {
        // RFC 8484 §5.3: keep-alive means nothing over HTTP (dropped); padding is answered.
        stripped_.assign(message);
        strip_hop_options(stripped_, question_);
        query_ = stripped_;
    }

    std::string answer;
    if (AnswerSource source = answer_locally(worker_, query_, question_, answer))
        return send(answer, source);
    forward_ = req_.arena->make<Forward>(worker_, query_, question_, [this] { forwarded(); });
    forward_->start();
}

void DohCall::forwarded() {
    if (aborted_)
        return;
    std::string answer;
    answer_forwarded(worker_, query_, question_, *forward_, answer);
    send(answer, "miss");
}

void DohCall::send(std::string& message, std::string_view cache_note) {
    finish_answer(message, question_);
    uint8_t rcode_value = 0xff;
    const uint32_t max_age = answer_lifetime(message, &rcode_value);
    const std::string rcode = rcode_value == 0xff ? std::string() : rcode_text(rcode_value);
    add_notes(rcode, cache_note);
    Arena& arena = *req_.arena;
    auto* head = arena.make<ResponseHead>();
    head->status = 200;
    head->headers.add("content-type", "application/dns-message");
    char num[16];
    auto [end, ec] = std::to_chars(num, num + sizeof num, max_age);
    (void)ec;
    head->headers.add("cache-control",
                      arena.copy("max-age=" + std::string(num, static_cast<size_t>(end - num))));
    head->content_length = static_cast<int64_t>(message.size());
    if (req_.method_id == Method::head) {
        out_.send_headers(*head, true);
        return;
    }
    out_.send_headers(*head, false);
    out_.send_body(message, true);
}

class DohHandler final : public Handler {
public:
    explicit DohHandler(size_t module_index) : module_index_(module_index) {}

    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override {
        DnsWorker* worker = req.modules ? req.modules->get<DnsWorker>(module_index_) : nullptr;
        if (!worker || !req.loop) {
            if (req.has_body)
                body.discard();
            send_error(req, out, 500, "dns: not running in a worker with [dns]");
            return;
        }
        auto* call = req.arena->make<DohCall>(*worker, req, body, out);
        if (req.method_id == Method::get || req.method_id == Method::head) {
            if (req.has_body)
                body.discard();
            const std::optional<std::string_view> param = query_param(req.query, "dns");
            std::string* decoded = req.arena->make<std::string>();
            if (!param || param->empty())
                return bad(req, out, *worker, "no_dns_parameter");
            if (param->size() > kMaxEncoded)
                return bad(req, out, *worker, "too_long");
            if (!base64url_decode(*param, *decoded))
                return bad(req, out, *worker, "not_base64url");
            return call->answer_query(*decoded);
        }
        if (req.method_id == Method::post) {
            if (!is_dns_message_type(req.headers.get("content-type"))) {
                body.discard();
                worker->cache.counters().malformed.fetch_add(1, std::memory_order_relaxed);
                add_log_note(req, "dns_error", "not_dns_message_type");
                return send_error(req, out, 415, {});
            }
            if (req.content_length > int64_t(kMaxMessage)) {
                body.discard();
                return bad(req, out, *worker, "too_long");
            }
            return call->read_body();
        }
        if (req.has_body)
            body.discard();
        auto* head = req.arena->make<ResponseHead>();
        head->status = 405;
        head->headers.add("allow", "GET, HEAD, POST");
        head->content_length = 0;
        out.send_headers(*head, true);
    }

private:
    static void bad(Request& req, ResponseWriter& out, DnsWorker& worker, std::string_view why) {
        worker.cache.counters().malformed.fetch_add(1, std::memory_order_relaxed);
        add_log_note(req, "dns_error", why);
        send_error(req, out, 400, {});
    }

    size_t module_index_;
};

} // namespace

std::unique_ptr<Handler> build_doh(TableReader& r, BuildContext& ctx) {
    if (!dns_config(ctx.config)) {
        r.diag().error(r.table_pos(), "dns: answering DNS over HTTPS needs a [dns] table with "
                                      "upstreams = [\"ADDRESS:PORT\", ...]");
        return nullptr;
    }
    r.finish();
    return std::make_unique<DohHandler>(ctx.module_index);
}

} // namespace wraith::dns
