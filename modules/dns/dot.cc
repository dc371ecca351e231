// `protocols = ["dot"]` on a TLS [[listen]]: DNS over TLS (RFC 7858), a stream protocol (ALPN
// "dot"; a listener whose only protocol it is also takes clients that offer no ALPN). Each
// message is framed by a two-byte length (RFC 1035 §4.2.2); queries may be pipelined and are
// answered as their answers come, out of order (RFC 7766 §6.2.1.1), from the same block lists,
// cache and upstreams as DoH (resolve.h), at most `max_queries` at a time per connection (more
// waits in the socket). A message that is not a well-formed query closes the connection, as
// does `idle_timeout` without a query in flight.
//
//   [[listen]]
//   address = "[::]:853"
//   tls = true
//   protocols = ["dot"]
//   dot = { idle_timeout = "10s", max_queries = 64 }
#include <ev.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "common/config_reader.h"
#include "common/log.h"
#include "common/module.h"
#include "modules/dns/dns.h"
#include "modules/dns/forwarder.h"
#include "modules/dns/resolve.h"

namespace wraith {
const ModuleSpec& dns_module();
}

namespace wraith::dns {

namespace {

struct DotOptions {
    Duration idle_timeout{10000};
    size_t max_queries = 64;
};

// One query of a connection while it waits upstream.
struct DotQuery {
    std::string query;
    Message question;
    std::unique_ptr<Forward> forward;
    bool done = false;
};

// One DoT connection, in the connection's arena.
class DotConnection {
public:
    DotConnection(const DotOptions& opt, StreamSession& s, DnsWorker& worker)
        : opt_(opt), conn_(s.conn), in_(s.in), out_(s.out), loop_(s.loop), worker_(worker) {
        ev_init(&idle_, on_idle);
        idle_.data = this;
        ev_init(&sweep_, on_sweep);
        sweep_.data = this;
        out_.on_abort([this] {
            aborted_ = true;
            stop();
        });
    }
    ~DotConnection() { stop(); }
    DotConnection(const DotConnection&) = delete;
    DotConnection& operator=(const DotConnection&) = delete;

    void start() {
        touch();
        in_.on_data([this] { read(); });
        out_.on_writable([this] {
            blocked_ = false;
            read();
        });
        read();
    }

private:
    void stop() {
        ev_timer_stop(loop_, &idle_);
        ev_timer_stop(loop_, &sweep_);
        for (auto& q : queries_)
            if (q->forward)
                q->forward->cancel();
    }

    void touch() {
        idle_.repeat = static_cast<double>(opt_.idle_timeout.count()) / 1000.0;
        ev_timer_again(loop_, &idle_);
    }

    static void on_idle(struct ev_loop*, ev_timer* w, int) {
        auto* self = static_cast<DotConnection*>(w->data);
        if (!self->queries_.empty())
            return self->touch(); // idle means no query in flight either
        self->close();
    }

    // Queries whose answers went out are freed here, outside their Forward's call stack.
    static void on_sweep(struct ev_loop*, ev_timer* w, int) {
        auto* self = static_cast<DotConnection*>(w->data);
        std::erase_if(self->queries_, [](const std::unique_ptr<DotQuery>& q) { return q->done; });
        self->read();
    }

    void close() {
        stop();
        if (!aborted_) {
            aborted_ = true;
            out_.reset();
        }
    }

    size_t in_flight() const {
        size_t n = 0;
        for (const auto& q : queries_)
            n += !q->done;
        return n;
    }

    // Takes what the client sent and answers every whole message in it, while the client takes
    // our answers and fewer than max_queries wait.
    void read() {
        if (aborted_ || ended_)
            return;
        if (in_.failed())
            return close();
        const std::string_view data = in_.peek();
        if (!data.empty()) {
            pending_.append(data);
            in_.consume(data.size());
            touch();
        }
        size_t at = 0;
        while (!aborted_ && !blocked_ && queries_.size() < opt_.max_queries &&
               pending_.size() - at >= 2) {
            const size_t len = read_u16(pending_.data() + at);
            if (pending_.size() - at < 2 + len)
                break;
            const std::string_view message(pending_.data() + at + 2, len);
            at += 2 + len;
            handle(message);
        }
        pending_.erase(0, at);
        if (aborted_)
            return;
        // Reading stops while answers wait for the client or too many queries wait upstream;
        // what arrived meanwhile stays in pending_.
        if (blocked_ || queries_.size() >= opt_.max_queries || pending_.size() > 2 + kMaxMessage)
            in_.pause();
        else
            in_.resume();
        if (in_.finished() && pending_.size() < 2 && queries_.empty() && !ended_) {
            ended_ = true; // the client is done and has every answer: so are we
            out_.send_body({}, true);
        }
    }

    void handle(std::string_view message) {
        auto q = std::make_unique<DotQuery>();
        q->query.assign(message);
        Counters& counters = worker_.cache.counters();
        const ParseError e = parse(q->query, q->question);
        const char* bad = e == ParseError::none ? check_query(q->question) : describe(e);
        if (!bad && q->query.size() > q->question.udp_size)
            bad = "over_udp_size";
        if (bad) {
            counters.malformed.fetch_add(1, std::memory_order_relaxed);
            ErrorLog::limited(LogLevel::info, "dot: client %.*s sent a malformed query (%s)",
                              static_cast<int>(conn_.peer_text.size()), conn_.peer_text.data(),
                              bad);
            return close();
        }
        counters.queries.fetch_add(1, std::memory_order_relaxed);
        std::string answer;
        // RFC 7828 §3.2.1: a query's edns-tcp-keepalive carries no timeout.
        if (q->question.keepalive > 0) {
            build_answer(q->query, q->question, kRcodeFormErr, answer);
            return reply(answer, q->question);
        }
        strip_hop_options(q->query, q->question);
        if (answer_locally(worker_, q->query, q->question, answer))
            return reply(answer, q->question);
        DotQuery* raw = q.get();
        queries_.push_back(std::move(q));
        raw->forward = std::make_unique<Forward>(worker_, raw->query, raw->question,
                                                 [this, raw] { forwarded(*raw); });
        raw->forward->start();
    }

    void forwarded(DotQuery& q) {
        q.done = true;
        ev_timer_set(&sweep_, 0., 0.);
        ev_timer_start(loop_, &sweep_);
        if (aborted_)
            return;
        std::string answer;
        answer_forwarded(worker_, q.query, q.question, *q.forward, answer);
        reply(answer, q.question);
    }

    // Sends `answer` to `question`: padded if the query was, with our idle timeout when it
    // asked (edns-tcp-keepalive, RFC 7828 §3.3.2: units of 100 ms).
    void reply(std::string& answer, const Message& question) {
        if (question.keepalive == 0) {
            const int64_t units = opt_.idle_timeout.count() / 100;
            finish_answer(answer, question, static_cast<int>(std::min<int64_t>(units, 0xffff)));
        } else {
            finish_answer(answer, question);
        }
        std::string framed;
        framed.reserve(2 + answer.size());
        framed += static_cast<char>(answer.size() >> 8);
        framed += static_cast<char>(answer.size() & 0xff);
        framed.append(answer);
        touch();
        const ResponseWriter::Result r = out_.send_body(framed, false);
        if (r == ResponseWriter::Result::blocked)
            blocked_ = true;
        else if (r == ResponseWriter::Result::closed)
            aborted_ = true;
    }

    const DotOptions& opt_;
    const ConnectionInfo& conn_;
    BodyReader& in_;
    ResponseWriter& out_;
    struct ev_loop* loop_;
    DnsWorker& worker_;
    std::vector<std::unique_ptr<DotQuery>> queries_; // waiting upstream, or done until the sweep
    std::string pending_;                            // bytes of messages not handled yet
    ev_timer idle_{};
    ev_timer sweep_{};
    bool blocked_ = false; // the client has not taken our answers: wait for on_writable
    bool aborted_ = false;
    bool ended_ = false; // our direction is over
};

class DotHandler final : public StreamHandler {
public:
    DotHandler(DotOptions options, size_t dns_index) : opt_(options), dns_index_(dns_index) {}
    void handle(StreamSession& s) const override {
        DnsWorker* worker = s.modules ? s.modules->get<DnsWorker>(dns_index_) : nullptr;
        if (!worker) {
            s.out.reset();
            return;
        }
        s.arena.make<DotConnection>(opt_, s, *worker)->start();
    }

private:
    DotOptions opt_;
    size_t dns_index_; // the dns module's: its DnsWorker holds the cache and upstreams
};

} // namespace

std::shared_ptr<const StreamHandler> build_dot(TableReader& r, BuildContext& ctx) {
    DotOptions o;
    read_positive(r, "idle_timeout", o.idle_timeout);
    o.max_queries = static_cast<size_t>(r.integer("max_queries", 64, 1, 1024));
    if (!dns_config(ctx.config)) {
        r.diag().error(r.table_pos(), "listen.dot: DNS over TLS needs a [dns] table with "
                                      "upstreams = [\"ADDRESS:PORT\", ...]");
        return nullptr;
    }
    const ModuleRegistry& registry = ModuleRegistry::instance();
    return std::make_shared<DotHandler>(o, registry.index_of(*registry.find(dns_module().key)));
}

} // namespace wraith::dns

namespace wraith {

// DNS over TLS on a listener: `protocols = ["dot"]`.
const ModuleSpec& dot_module() {
    static const ModuleSpec spec{
        .key = "dot", .build_stream = dns::build_dot, .stream_alpn = "dot"};
    return spec;
}

} // namespace wraith
