// `protocols = ["dot", "doq"]` on a TLS [[listen]]: DNS over QUIC (RFC 9250), a QUIC
// application (common/quic_application.h) for ALPN "doq" on the listener's UDP port, beside
// HTTP/3 if the listener also carries "h3" (the same endpoint, connection IDs and steering).
//
// One query per client-initiated bidirectional stream (§4.2): a 2-octet length, the message
// (ID 0), then the client's FIN. The query is answered once the FIN came, from the same block
// lists, cache and upstreams as DoH and DoT (resolve.h), and the answer goes back on the stream
// with our FIN. What §4.3.3 calls a protocol error (a non-zero ID, a FIN before the whole
// message, bytes after it, a second message, a unidirectional stream, a message that does not
// parse as a query, edns-tcp-keepalive in a query) closes the connection with
// DOQ_PROTOCOL_ERROR; a client that resets a stream (DOQ_REQUEST_CANCELLED) cancels its
// query; a worker without [dns] state (not a configuration `wraith check` accepts) resets
// streams with DOQ_INTERNAL_ERROR. 0-RTT
// (§4.5): DoQ carries only queries (check_query refuses other opcodes), which may be replayed,
// so they are answered at once when the site enables `tls.early_data` (the only case in which
// the TLS layer accepts early data for it); otherwise they wait for the handshake.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/module.h"
#include "common/quic_application.h"
#include "modules/dns/dns.h"
#include "modules/dns/dns_config.h"
#include "modules/dns/forwarder.h"
#include "modules/dns/resolve.h"

namespace wraith {
const ModuleSpec& dns_module();
}

namespace wraith::dns {

namespace {

// RFC 9250 §4.3.
constexpr uint64_t kDoqNoError = 0x0, kDoqInternalError = 0x1, kDoqProtocolError = 0x2,
                   kDoqRequestCancelled = 0x3;

// One client-initiated bidirectional stream: its query, then our answer.
struct DoqStream {
    std::string in; // the client's bytes: the length, the message (then the message alone)
    Message question;
    std::unique_ptr<Forward> forward;
    std::string out; // the framed answer, once there is one
    size_t sent = 0;
    bool queued = false;   // in pending_ or held_
    bool answered = false; // `out` is complete
    bool blocked = false;  // by the client's flow control
    bool done = false;     // FIN sent, or our side is shut
};

class DoqApplication final : public quic::Application {
public:
    DoqApplication(quic::AppConnection& conn, DnsWorker* worker) : conn_(conn), worker_(worker) {}
    ~DoqApplication() override { abort(); }

    bool start() override { return true; }

    int recv_stream_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin,
                         size_t* credit) override {
        *credit = len; // at most one message per stream is kept (checked below)
        // §4.2: only the client opens streams, and only bidirectional ones.
        if (!ngtcp2_is_bidi_stream(stream_id) || (stream_id & 1))
            return protocol_error("a unidirectional or server-initiated stream");
        auto& slot = streams_[stream_id];
        if (!slot)
            slot = std::make_unique<DoqStream>();
        DoqStream& s = *slot;
        if (s.queued || s.answered)
            return protocol_error("data after the query's FIN");
        s.in.append(reinterpret_cast<const char*>(data), len);
        const size_t want = s.in.size() >= 2 ? 2 + size_t(read_u16(s.in.data())) : 2 + kMaxMessage;
        if (s.in.size() > want)
            return protocol_error("more than one message on a stream");
        if (!fin)
            return 0;
        if (s.in.size() != want)
            return protocol_error("FIN before the whole message");
        s.queued = true;
        pending_.push_back(stream_id);
        conn_.wake();
        return 0;
    }

    int acked_stream_data(int64_t, uint64_t) override { return 0; }

    int stream_close(int64_t stream_id, uint64_t) override {
        auto it = streams_.find(stream_id);
        if (it != streams_.end()) {
            if (it->second->forward)
                it->second->forward->cancel();
            streams_.erase(it);
        }
        if (ngtcp2_is_bidi_stream(stream_id) && !(stream_id & 1))
            conn_.extend_max_streams_bidi(1);
        return 0;
    }

    // DOQ_REQUEST_CANCELLED (or any reset): the client no longer wants the answer.
    int stream_reset(int64_t stream_id, uint64_t) override {
        cancel(stream_id, kDoqRequestCancelled);
        return 0;
    }
    int stream_stop_sending(int64_t stream_id, uint64_t) override {
        cancel(stream_id, kDoqRequestCancelled);
        return 0;
    }

    int extend_max_stream_data(int64_t stream_id) override {
        if (auto it = streams_.find(stream_id); it != streams_.end())
            it->second->blocked = false;
        conn_.want_write();
        return 0;
    }

    int next_data(int64_t* stream_id, bool* fin, ngtcp2_vec* vec, size_t) override {
        *stream_id = -1;
        for (auto& [id, s] : streams_) {
            if (!s->answered || s->blocked || s->done)
                continue;
            *stream_id = id;
            *fin = true;
            if (s->sent == s->out.size())
                return 0; // only the FIN is left
            vec[0].base = reinterpret_cast<uint8_t*>(s->out.data()) + s->sent;
            vec[0].len = s->out.size() - s->sent;
            return 1;
        }
        return 0;
    }

    int data_sent(int64_t stream_id, size_t n) override {
        auto it = streams_.find(stream_id);
        if (it == streams_.end())
            return 0;
        DoqStream& s = *it->second;
        s.sent += n;
        if (s.sent == s.out.size())
            s.done = true; // ngtcp2 took the FIN with the last byte
        return 0;
    }

    void stream_blocked(int64_t stream_id) override {
        if (auto it = streams_.find(stream_id); it != streams_.end())
            it->second->blocked = true;
    }
    void stream_write_shut(int64_t stream_id) override {
        if (auto it = streams_.find(stream_id); it != streams_.end())
            it->second->done = true;
    }

    void run_pending() override {
        std::vector<int64_t> ready;
        ready.swap(pending_);
        for (int64_t id : ready) {
            if (conn_.closing())
                return;
            auto it = streams_.find(id);
            if (it == streams_.end() || it->second->done)
                continue; // closed, or cancelled by the client meanwhile
            // 0-RTT queries wait for the handshake unless the site accepts early data.
            if (!conn_.handshake_done() && !conn_.early_data_allowed()) {
                held_.push_back(id);
                continue;
            }
            answer(id, *it->second);
        }
    }
    bool has_pending() const override { return !pending_.empty(); }

    void after_service() override {
        if (!held_.empty() && conn_.handshake_done()) {
            pending_.insert(pending_.end(), held_.begin(), held_.end());
            held_.clear();
            conn_.wake();
        }
        if (draining_ && !conn_.closing() && idle())
            conn_.close_application(kDoqNoError);
    }

    // The worker drains: answer what was asked, then close with DOQ_NO_ERROR (§4.3).
    void drain() override {
        draining_ = true;
        if (idle())
            conn_.close_application(kDoqNoError);
    }

    void abort() override {
        for (auto& [id, s] : streams_)
            if (s->forward)
                s->forward->cancel();
    }
    uint64_t no_error_code() const override { return kDoqNoError; }

private:
    bool idle() const {
        for (const auto& [id, s] : streams_)
            if (s->queued && !s->done)
                return false;
        return true;
    }

    int protocol_error(const char* what) {
        const ConnectionInfo& info = conn_.info();
        ErrorLog::limited(LogLevel::info, "doq: client %.*s: %s: DOQ_PROTOCOL_ERROR",
                          static_cast<int>(info.peer_text.size()), info.peer_text.data(), what);
        if (worker_)
            worker_->cache.counters().malformed.fetch_add(1, std::memory_order_relaxed);
        conn_.set_application_error(kDoqProtocolError);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }

    void cancel(int64_t stream_id, uint64_t code) {
        auto it = streams_.find(stream_id);
        if (it == streams_.end())
            return;
        DoqStream& s = *it->second;
        if (s.forward)
            s.forward->cancel();
        if (!s.done) {
            s.done = true;
            conn_.reset_stream(stream_id, code);
        }
    }

    // A whole query arrived on `s`: answer it now or start its Forward.
    void answer(int64_t id, DoqStream& s) {
        if (!worker_) {
            s.done = true;
            conn_.reset_stream(id, kDoqInternalError);
            return;
        }
        s.in.erase(0, 2); // the length: recv_stream_data checked it
        const char* bad = nullptr;
        if (ParseError e = parse(s.in, s.question); e != ParseError::none)
            bad = describe(e);
        else if (const char* c = check_query(s.question))
            bad = c;
        else if (s.question.id != 0)
            bad = "message ID is not 0"; // §4.2.1
        else if (s.question.keepalive >= 0)
            bad = "edns-tcp-keepalive in a query"; // §5.5.2
        if (bad) {
            protocol_error(bad);
            conn_.close_application(kDoqProtocolError);
            return;
        }
        worker_->cache.counters().queries.fetch_add(1, std::memory_order_relaxed);
        strip_hop_options(s.in, s.question);
        const std::string_view query(s.in); // s.in does not change while the Forward holds it
        std::string out;
        if (answer_locally(*worker_, query, s.question, out))
            return reply(s, out);
        s.forward = std::make_unique<Forward>(*worker_, query, s.question, [this, id] {
            auto it = streams_.find(id);
            if (it == streams_.end())
                return;
            DoqStream& st = *it->second;
            std::string answer;
            answer_forwarded(*worker_, st.in, st.question, *st.forward, answer);
            reply(st, answer);
        });
        s.forward->start();
    }

    // The answer, padded if the query was (RFC 9250 §5.4, RFC 8467), framed for the stream.
    void reply(DoqStream& s, std::string& answer) {
        finish_answer(answer, s.question);
        s.out.clear();
        s.out.reserve(2 + answer.size());
        s.out += static_cast<char>(answer.size() >> 8);
        s.out += static_cast<char>(answer.size() & 0xff);
        s.out.append(answer);
        s.answered = true;
        conn_.want_write();
    }

    quic::AppConnection& conn_;
    DnsWorker* worker_; // null in a worker without [dns] state
    std::map<int64_t, std::unique_ptr<DoqStream>> streams_;
    std::vector<int64_t> pending_; // streams whose query is whole, to answer in run_pending
    std::vector<int64_t> held_;    // 0-RTT queries waiting for the handshake
    bool draining_ = false;
};

std::unique_ptr<quic::Application> create_doq(quic::AppConnection& conn) {
    const ModuleRegistry& registry = ModuleRegistry::instance();
    static const size_t dns_index = registry.index_of(*registry.find(dns_module().key));
    ModuleWorkers* modules = conn.modules();
    return std::make_unique<DoqApplication>(conn,
                                            modules ? modules->get<DnsWorker>(dns_index) : nullptr);
}

const quic::ApplicationSpec kDoqApplication{"doq", create_doq, kDoqNoError};

std::string check_doq(const Config& config) {
    return dns_config(config) ? std::string()
                              : "DNS over QUIC needs a [dns] table with upstreams = "
                                "[\"ADDRESS:PORT\", ...]";
}

} // namespace

} // namespace wraith::dns

namespace wraith {

// DNS over QUIC on a TLS listener: `protocols = ["dot", "doq"]` (a QUIC application module:
// the listener's UDP port answers ALPN "doq").
const ModuleSpec& doq_module() {
    static const ModuleSpec spec{
        .key = "doq", .quic_application = &dns::kDoqApplication, .quic_check = dns::check_doq};
    return spec;
}

} // namespace wraith
