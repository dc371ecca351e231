#include "modules/waf/waf_filter.h"

#include <arpa/inet.h>

#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_message.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

#include "common/log.h"

namespace wraith::waf {

namespace {

constexpr std::string_view kNoteName = "waf";

// A NUL-terminated copy in the arena (ModSecurity's URI and connection calls take C strings).
const char* c_string(Arena& arena, std::string_view s) {
    char* p = static_cast<char*>(arena.alloc(s.size() + 1, 1));
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

const char* address_text(Arena& arena, const SocketAddress& a, int& port) {
    char* text = static_cast<char*>(arena.alloc(INET6_ADDRSTRLEN, 1));
    text[0] = '\0';
    port = 0;
    if (a.family() == AF_INET) {
        inet_ntop(AF_INET, &a.v4.sin_addr, text, INET6_ADDRSTRLEN);
        port = ntohs(a.v4.sin_port);
    } else if (a.family() == AF_INET6) {
        inet_ntop(AF_INET6, &a.v6.sin6_addr, text, INET6_ADDRSTRLEN);
        port = ntohs(a.v6.sin6_port);
    }
    return text;
}

const char* http_version(int version) {
    switch (version) {
    case 10:
        return "1.0";
    case 20:
        return "2.0";
    case 30:
        return "3.0";
    default:
        return "1.1";
    }
}

// The request body as the handler reads it after the verdict: the bytes the inspection held,
// then whatever the protocol still has (only past the limit, in "partial" mode).
class ReplayBody final : public BodyReader {
public:
    ReplayBody(std::string_view held, BodyReader& rest) : held_(held), rest_(rest) {}
    std::string_view peek() override { return held_.empty() ? rest_.peek() : held_; }
    void consume(size_t n) override {
        if (held_.empty())
            return rest_.consume(n);
        held_.remove_prefix(std::min(n, held_.size()));
    }
    bool finished() const override { return held_.empty() && rest_.finished(); }
    bool failed() const override { return rest_.failed(); }
    void on_data(Callback cb) override { rest_.on_data(std::move(cb)); }
    void pause() override { rest_.pause(); }
    void resume() override { rest_.resume(); }
    void discard() override {
        held_ = {};
        rest_.discard();
    }

private:
    std::string_view held_;
    BodyReader& rest_;
};

} // namespace

// One exchange under inspection, in its arena: ModSecurity's transaction, the request body
// held until the verdict, and the access-log note naming the rules that matched.
struct Inspection {
    Inspection(Request& r, const Engine& e, WafWorker* w)
        : req(r), engine(e), worker(w), tx(&e.modsec(), &e.rules(), nullptr) {}
    ~Inspection() {
        // Phase 5 and the audit log, with the status the client got.
        if (status)
            tx.updateStatusCode(status);
        tx.processLogging();
        if (worker && worker->handoff == this) {
            worker->handoff = nullptr;
            worker->handoff_request = nullptr;
        }
    }

    // Adds the IDs of rules that matched since the last call to the note (linked on the first).
    void collect_rule_ids() {
        for (const modsecurity::RuleMessage& m : tx.m_rulesMessages) {
            if (m.m_ruleId <= 0)
                continue;
            char id[16];
            int n = std::snprintf(id, sizeof id, "%d", m.m_ruleId);
            std::string_view idv(id, static_cast<size_t>(n));
            bool seen = false;
            for (size_t at = 0; at < ids.size() && !seen;) {
                size_t comma = ids.find(',', at);
                if (comma == std::string::npos)
                    comma = ids.size();
                seen = std::string_view(ids).substr(at, comma - at) == idv;
                at = comma + 1;
            }
            if (seen)
                continue;
            if (!ids.empty())
                ids += ',';
            ids += idv;
        }
        if (ids.empty())
            return;
        note.value = ids; // ids only grows, but may move: the view is renewed each time
        if (!note_linked) {
            note.name = kNoteName;
            note.next = req.log_notes;
            req.log_notes = &note;
            note_linked = true;
        }
    }

    // Asks ModSecurity for its decision after a phase; sends the refusal when it has one.
    bool intervene(ResponseWriter& out) {
        modsecurity::ModSecurityIntervention it;
        modsecurity::intervention::clean(&it);
        bool disruptive = tx.intervention(&it);
        collect_rule_ids();
        if (!disruptive) {
            modsecurity::intervention::free(&it);
            return false;
        }
        int code = it.status >= 400 && it.status <= 599 ? it.status : 403;
        if (it.log)
            ErrorLog::limited(LogLevel::warn, "waf: %s", it.log);
        modsecurity::intervention::free(&it);
        status = code;
        send_error(req, out, code, "waf: request refused by rule");
        return true;
    }

    // Reads the request body into `held` (and ModSecurity) until it ends or passes the limit.
    void pump() {
        if (cancelled || decided)
            return;
        const uint64_t limit = engine.options().body_limit;
        for (;;) {
            if (body->failed()) {
                decided = true;
                body->on_data(nullptr);
                status = 400;
                send_error(req, *out, 400, "waf: request body failed");
                return resume->resume(AccessVerdict::answered);
            }
            std::string_view data = body->peek();
            if (!data.empty() && held.size() >= limit)
                return over_limit();
            if (!data.empty()) {
                size_t n = std::min<uint64_t>(data.size(), limit - held.size());
                held.append(data.data(), n);
                tx.appendRequestBody(reinterpret_cast<const unsigned char*>(data.data()), n);
                body->consume(n);
                continue;
            }
            if (body->finished())
                return verdict();
            return; // on_data calls again
        }
    }

    void over_limit() {
        if (engine.options().reject_over_limit) {
            decided = true;
            body->on_data(nullptr);
            status = 413;
            add_log_note(req, kNoteName, "body_limit");
            send_error(req, *out, 413, "waf: request body over body_limit");
            return resume->resume(AccessVerdict::answered);
        }
        verdict(); // "partial": judge what was held; the rest goes to the handler unseen
    }

    void verdict() {
        decided = true;
        body->on_data(nullptr);
        tx.processRequestBody();
        if (intervene(*out))
            return resume->resume(AccessVerdict::answered);
        replay = req.arena->make<ReplayBody>(held, *body);
        resume->replace_body(*replay);
        hand_over();
        resume->resume(AccessVerdict::next);
    }

    void hand_over() {
        if (worker) {
            worker->handoff = this;
            worker->handoff_request = &req;
        }
    }

    Request& req;
    const Engine& engine;
    WafWorker* worker;
    modsecurity::Transaction tx;
    LogNote note;
    std::string ids; // "942100,949110"
    int status = 0;  // what the client was answered, for the audit log
    bool note_linked = false;
    // While the body is read (access phase, paused).
    ResponseWriter* out = nullptr;
    AccessResume* resume = nullptr;
    BodyReader* body = nullptr;
    ReplayBody* replay = nullptr;
    std::string held;
    bool cancelled = false;
    bool decided = false;
};

namespace {

// Phase 3: the response head is judged before it goes out; a refusal replaces it, and what the
// handler writes after that is dropped (its writes answer `closed`, so it stops).
class WafWriter final : public ResponseWriter {
public:
    WafWriter(Inspection& inspection, ResponseWriter& next) : s_(inspection), next_(next) {}

    void send_informational(int status, const Headers& headers) override {
        if (!refused_)
            next_.send_informational(status, headers);
    }
    void send_headers(ResponseHead& head, bool end_stream) override {
        if (refused_)
            return;
        for (const Header& h : head.headers)
            s_.tx.addResponseHeader(
                reinterpret_cast<const unsigned char*>(h.name.data()), h.name.size(),
                reinterpret_cast<const unsigned char*>(h.value.data()), h.value.size());
        s_.tx.processResponseHeaders(head.status, s_.req.version >= 20 ? "HTTP/2.0" : "HTTP/1.1");
        s_.status = head.status;
        if (s_.intervene(next_)) {
            refused_ = true;
            return;
        }
        next_.send_headers(head, end_stream);
    }
    Result send_body(std::string_view data, bool end_stream) override {
        return refused_ ? Result::closed : next_.send_body(data, end_stream);
    }
    Result send_shared_body(std::string_view data, bool end_stream) override {
        return refused_ ? Result::closed : next_.send_shared_body(data, end_stream);
    }
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override {
        return refused_ ? Result::closed : next_.send_file(fd, offset, len, end_stream);
    }
    Result send_trailers(const Headers& trailers) override {
        return refused_ ? Result::closed : next_.send_trailers(trailers);
    }
    void on_writable(Callback cb) override { next_.on_writable(std::move(cb)); }
    void on_abort(Callback cb) override { next_.on_abort(std::move(cb)); }
    void reset() override {
        if (!refused_) // the refusal is complete: nothing of the handler's is left to reset
            next_.reset();
    }
    bool headers_sent() const override { return refused_ || next_.headers_sent(); }
    uint64_t body_bytes_sent() const override { return next_.body_bytes_sent(); }

private:
    Inspection& s_;
    ResponseWriter& next_;
    bool refused_ = false;
};

} // namespace

AccessVerdict WafFilter::access(Request& req, ResponseWriter& out, AccessResume& resume) const {
    WafWorker* worker = req.modules ? req.modules->get<WafWorker>(module_index_) : nullptr;
    Inspection* s = req.arena->make<Inspection>(req, *engine_, worker);
    modsecurity::Transaction& tx = s->tx;

    // Phase 0 and 1: the connection, the request line and the head.
    int peer_port = 0, local_port = 0;
    const char* peer = req.conn ? address_text(*req.arena, req.conn->peer, peer_port) : "";
    const char* local = req.conn ? address_text(*req.arena, req.conn->local, local_port) : "";
    const char* client = req.client_ip.empty() ? peer : c_string(*req.arena, req.client_ip);
    tx.processConnection(client, peer_port, local, local_port);
    tx.processURI(c_string(*req.arena, req.target), c_string(*req.arena, req.method),
                  http_version(req.version));
    bool host = false;
    for (const Header& h : req.headers) {
        host = host || h.name == "host";
        tx.addRequestHeader(reinterpret_cast<const unsigned char*>(h.name.data()), h.name.size(),
                            reinterpret_cast<const unsigned char*>(h.value.data()), h.value.size());
    }
    if (!host && !req.authority.empty()) // HTTP/2 and 3 carry it as :authority
        tx.addRequestHeader(reinterpret_cast<const unsigned char*>("host"), 4,
                            reinterpret_cast<const unsigned char*>(req.authority.data()),
                            req.authority.size());
    tx.processRequestHeaders();
    if (s->intervene(out))
        return AccessVerdict::answered;

    // Phase 2. Without a body it runs at once; with one, the exchange waits for the body (up to
    // body_limit), which ModSecurity needs whole before its verdict.
    if (!req.has_body || !req.upgrade.empty()) {
        tx.processRequestBody();
        if (s->intervene(out))
            return AccessVerdict::answered;
        s->hand_over();
        return AccessVerdict::next;
    }
    s->out = &out;
    s->resume = &resume;
    s->body = &resume.body();
    resume.on_cancel([s] { s->cancelled = true; });
    const uint64_t limit = engine_->options().body_limit;
    if (req.content_length > 0 && static_cast<uint64_t>(req.content_length) > limit &&
        engine_->options().reject_over_limit) {
        // Known too large before a byte is read: refuse without reading.
        s->decided = true;
        s->status = 413;
        add_log_note(req, kNoteName, "body_limit");
        send_error(req, out, 413, "waf: request body over body_limit");
        return AccessVerdict::answered;
    }
    if (req.content_length > 0)
        s->held.reserve(std::min<uint64_t>(static_cast<uint64_t>(req.content_length), limit));
    s->body->on_data([s] { s->pump(); });
    s->pump(); // a body already complete resumes at once (taken as the answer)
    return AccessVerdict::paused;
}

ResponseWriter* WafFilter::wrap(Request& req, ResponseWriter& next) const {
    WafWorker* worker = req.modules ? req.modules->get<WafWorker>(module_index_) : nullptr;
    if (!worker || worker->handoff_request != &req || !worker->handoff)
        return &next;
    Inspection* s = worker->handoff;
    worker->handoff = nullptr;
    worker->handoff_request = nullptr;
    return req.arena->make<WafWriter>(*s, next);
}

} // namespace wraith::waf
