// The per-worker span queue and its OTLP/HTTP JSON export. Finished spans go into a ring of
// fixed-size entries (no allocation per request); a timer, or a full batch, sends up to
// `batch` of them in one POST over a non-blocking connection the loop drives like any other
// socket, one POST at a time. A collector that is slow, down or unreachable costs the failed
// attempt and a counter: spans wait in the ring, and those that do not fit are dropped and
// counted. Nothing blocks and nothing grows.
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/connector.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics_text.h"
#include "common/resolver.h"
#include "common/shm.h"
#include "modules/trace/trace.h"

namespace wraith::trace {

namespace {

void put(char* field, size_t size, std::string_view v) {
    v = v.substr(0, size - 1);
    if (!v.empty()) // an empty view may have no data() at all
        std::memcpy(field, v.data(), v.size());
    field[v.size()] = 0;
}

class Exporter final : public ModuleWorker {
public:
    Exporter(const WorkerContext& ctx, const TraceConfig& config)
        : config_(ctx.config), tc_(config), loop_(ctx.loop) {
        counters_ = ctx.zones ? ctx.zones->get<Counters>(kCountersZone) : nullptr;
        if (!counters_)
            counters_ = &private_counters_;
        ring_.resize(tc_.queue);
        ev_timer_init(&flush_timer_, on_flush_timer, tc_.interval, tc_.interval);
        flush_timer_.data = this;
        ev_timer_start(loop_, &flush_timer_);
        ev_unref(loop_); // the flush timer alone does not keep the worker alive
        ev_timer_init(&timeout_, on_timeout, tc_.timeout, 0.);
        timeout_.data = this;
        ev_io_init(&io_, on_io, -1, 0);
        io_.data = this;
        if (tc_.tls)
            make_tls_context();
    }

    ~Exporter() override {
        stop_timer();
        abandon("the worker is exiting");
        SSL_CTX_free(ssl_ctx_);
    }

    void drain() override {
        // One last POST of what is queued, if none is running; the worker does not wait for it
        // beyond its own drain.
        if (!busy() && count_)
            send_batch();
        stop_timer();
    }

    void push(const Request& req, const ExchangeSummary& s, const Span& span) {
        if (count_ == ring_.size()) {
            counters_->dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        FinishedSpan& f = ring_[(head_ + count_) % ring_.size()];
        ++count_;
        counters_->queued.fetch_add(1, std::memory_order_relaxed);
        f.span = span;
        f.start_ns = static_cast<int64_t>(req.start.tv_sec) * 1000000000 + req.start.tv_nsec;
        f.end_ns = f.start_ns + static_cast<int64_t>(s.duration_us) * 1000;
        f.status = s.status;
        f.version = req.version;
        put(f.method, sizeof(f.method), req.method);
        char name[sizeof(f.name)];
        int n = std::snprintf(name, sizeof(name), "%.*s %.*s", static_cast<int>(req.method.size()),
                              req.method.data(),
                              req.route ? static_cast<int>(req.route->match.text.size()) : 0,
                              req.route ? req.route->match.text.data() : "");
        put(f.name, sizeof(f.name),
            std::string_view(name,
                             n > 0 ? static_cast<size_t>(std::min<int>(n, sizeof(name) - 1)) : 0));
        put(f.target, sizeof(f.target), req.path);
        put(f.host, sizeof(f.host), req.host);
        put(f.client, sizeof(f.client), client_ip_of(req));
        if (count_ >= tc_.batch && !busy())
            send_batch();
    }

private:
    static void on_flush_timer(struct ev_loop*, ev_timer* w, int) {
        auto* self = static_cast<Exporter*>(w->data);
        if (!self->busy() && self->count_)
            self->send_batch();
    }
    static void on_timeout(struct ev_loop*, ev_timer* w, int) {
        static_cast<Exporter*>(w->data)->abandon("timed out");
    }
    static void on_io(struct ev_loop*, ev_io* w, int) { static_cast<Exporter*>(w->data)->step(); }

    void stop_timer() {
        if (ev_is_active(&flush_timer_)) {
            ev_ref(loop_);
            ev_timer_stop(loop_, &flush_timer_);
        }
    }

    // The OTLP/HTTP JSON body (opentelemetry-proto's JSON mapping: IDs in hex, times as
    // decimal strings) for the oldest `n` spans, and the request carrying it.
    void build(size_t n) {
        body_.clear();
        body_ += "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                 "\"value\":{\"stringValue\":";
        append_json_string(body_, tc_.service_name);
        body_ +=
            "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"wraith\",\"version\":\"" WRAITH_VERSION
            "\"},\"spans\":[";
        for (size_t i = 0; i < n; ++i) {
            const FinishedSpan& f = ring_[(head_ + i) % ring_.size()];
            char buf[512];
            int len = std::snprintf(
                buf, sizeof(buf),
                "%s{\"traceId\":\"%.32s\",\"spanId\":\"%.16s\"%s%.16s%s,\"kind\":2,"
                "\"startTimeUnixNano\":\"%" PRId64 "\",\"endTimeUnixNano\":\"%" PRId64 "\","
                "\"status\":{\"code\":%d},\"name\":",
                i ? "," : "", f.span.trace_id, f.span.span_id,
                f.span.has_parent ? ",\"parentSpanId\":\"" : "",
                f.span.has_parent ? f.span.parent_id : "", f.span.has_parent ? "\"" : "",
                f.start_ns, f.end_ns, f.status >= 500 ? 2 : 0);
            body_.append(buf, static_cast<size_t>(len));
            append_json_string(body_, f.name);
            body_ += ",\"attributes\":[";
            attr(body_, "http.request.method", f.method, true);
            attr(body_, "url.path", f.target);
            attr(body_, "server.address", f.host);
            attr(body_, "client.address", f.client);
            attr(body_, "network.protocol.version",
                 f.version == 30   ? "3"
                 : f.version == 20 ? "2"
                 : f.version == 10 ? "1.0"
                                   : "1.1");
            len = std::snprintf(buf, sizeof(buf),
                                ",{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":"
                                "\"%d\"}}]}",
                                f.status);
            body_.append(buf, static_cast<size_t>(len));
        }
        body_ += "]}]}]}";
        request_ = "POST " + tc_.path + " HTTP/1.1\r\nHost: " + tc_.host_header +
                   "\r\nContent-Type: application/json\r\nUser-Agent: wraith/" WRAITH_VERSION
                   "\r\nContent-Length: " +
                   std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n";
        request_ += body_;
        sent_ = 0;
    }

    static void attr(std::string& out, const char* key, std::string_view value,
                     bool first = false) {
        if (!first)
            out += ',';
        out += "{\"key\":\"";
        out += key;
        out += "\",\"value\":{\"stringValue\":";
        append_json_string(out, value);
        out += "}}";
    }

    // A POST is under way (resolving, connecting or talking to the collector).
    bool busy() const { return stage_ != Stage::idle; }

    void make_tls_context() {
        ssl_ctx_ = SSL_CTX_new(TLS_client_method());
        if (!ssl_ctx_)
            return;
        SSL_CTX_set_min_proto_version(ssl_ctx_, TLS1_2_VERSION);
        SSL_CTX_set_verify(ssl_ctx_, SSL_VERIFY_PEER, nullptr);
        const bool loaded =
            tc_.ca.empty() ? SSL_CTX_set_default_verify_paths(ssl_ctx_) == 1
                           : SSL_CTX_load_verify_locations(ssl_ctx_, tc_.ca.c_str(), nullptr) == 1;
        if (!loaded)
            ErrorLog::limited(LogLevel::warn, "trace: cannot load the CA bundle %s for %s",
                              tc_.ca.empty() ? "(system)" : tc_.ca.c_str(), tc_.endpoint.c_str());
        static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        SSL_CTX_set_alpn_protos(ssl_ctx_, alpn, sizeof alpn);
    }

    void send_batch() {
        batch_ = std::min(count_, tc_.batch);
        build(batch_);
        answer_.clear();
        ++attempt_;
        ev_timer_set(&timeout_, tc_.timeout, 0.);
        ev_timer_start(loop_, &timeout_);
        if (tc_.addr_len)
            return connect({tc_.addr});
        if (!addrs_.empty() && ev_now(loop_) < addrs_expire_)
            return connect(addrs_);
        stage_ = Stage::resolving;
        if (!resolver_)
            resolver_ = std::make_unique<Resolver>(loop_, "", static_cast<int>(tc_.timeout * 1000));
        const uint64_t attempt = attempt_;
        resolver_->resolve(tc_.host, tc_.port, [this, attempt](const Resolver::Result& r) {
            if (attempt != attempt_ || stage_ != Stage::resolving)
                return; // that POST was given up meanwhile
            if (!r.ok)
                return fail("cannot resolve " + tc_.host + ": " + r.error);
            addrs_ = r.addrs;
            addrs_expire_ =
                ev_now(loop_) + static_cast<double>(std::clamp<uint32_t>(r.ttl, 1, 3600));
            connect(addrs_);
        });
    }

    void connect(std::vector<sockaddr_storage> addrs) {
        stage_ = Stage::connecting;
        const uint64_t attempt = attempt_;
        connector_.start(std::move(addrs), tc_.timeout,
                         [this, attempt](int fd, const std::string& e) {
                             if (attempt != attempt_ || stage_ != Stage::connecting) {
                                 if (fd >= 0)
                                     ::close(fd);
                                 return;
                             }
                             if (fd < 0)
                                 return fail("connect: " + e);
                             fd_ = fd;
                             if (tc_.tls && !start_tls())
                                 return;
                             stage_ = tc_.tls ? Stage::handshake : Stage::writing;
                             step();
                         });
    }

    bool start_tls() {
        ssl_ = ssl_ctx_ ? SSL_new(ssl_ctx_) : nullptr;
        if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) {
            fail("TLS: cannot set up a connection");
            return false;
        }
        SSL_set_connect_state(ssl_);
        if (tc_.addr_len) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), tc_.host.c_str());
        } else {
            SSL_set_tlsext_host_name(ssl_, tc_.host.c_str());
            SSL_set1_host(ssl_, tc_.host.c_str());
        }
        return true;
    }

    // Waits for the socket to turn readable or writable, then step() runs again.
    void wait_for(int events) {
        ev_io_stop(loop_, &io_);
        ev_io_set(&io_, fd_, events);
        ev_io_start(loop_, &io_);
    }

    // What a TLS call that did not complete waits for; 0: it failed (`why` says how).
    int tls_wait(int rc, std::string& why) {
        switch (SSL_get_error(ssl_, rc)) {
        case SSL_ERROR_WANT_READ:
            return EV_READ;
        case SSL_ERROR_WANT_WRITE:
            return EV_WRITE;
        default: {
            const long verify = SSL_get_verify_result(ssl_);
            unsigned long e = ERR_get_error();
            char buf[256] = "the connection closed";
            if (verify != X509_V_OK)
                std::snprintf(buf, sizeof buf, "certificate verify failed: %s",
                              X509_verify_cert_error_string(verify));
            else if (e)
                ERR_error_string_n(e, buf, sizeof buf);
            ERR_clear_error();
            why = buf;
            return 0;
        }
        }
    }

    // Moves the POST on as far as the socket allows: the TLS handshake, the request, the
    // answer's status line.
    void step() {
        std::string why;
        if (stage_ == Stage::handshake) {
            const int rc = SSL_do_handshake(ssl_);
            if (rc != 1) {
                if (int ev = tls_wait(rc, why))
                    return wait_for(ev);
                return fail("TLS handshake: " + why);
            }
            stage_ = Stage::writing;
        }
        if (stage_ == Stage::writing) {
            while (sent_ < request_.size()) {
                const char* p = request_.data() + sent_;
                const size_t len = request_.size() - sent_;
                ssize_t n;
                if (ssl_) {
                    const int rc =
                        SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(len, 1 << 30)));
                    if (rc <= 0) {
                        if (int ev = tls_wait(rc, why))
                            return wait_for(ev);
                        return fail("send: " + why);
                    }
                    n = rc;
                } else {
                    n = ::send(fd_, p, len, MSG_NOSIGNAL);
                    if (n < 0 && errno == EAGAIN)
                        return wait_for(EV_WRITE);
                    if (n <= 0) {
                        int err = 0;
                        socklen_t l = sizeof(err);
                        getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &l);
                        return fail(std::string("send: ") + std::strerror(err ? err : errno));
                    }
                }
                sent_ += static_cast<size_t>(n);
            }
            stage_ = Stage::reading;
        }
        if (stage_ == Stage::reading)
            read_answer();
    }

    void read_answer() {
        char buf[4096];
        bool ended = false;
        for (;;) {
            ssize_t n;
            if (ssl_) {
                const int rc = SSL_read(ssl_, buf, sizeof buf);
                if (rc <= 0) {
                    std::string why;
                    if (int ev = tls_wait(rc, why); ev && answer_.find("\r\n") == std::string::npos)
                        return wait_for(ev);
                    ended = true;
                    break;
                }
                n = rc;
            } else {
                n = ::recv(fd_, buf, sizeof(buf), 0);
                if (n < 0 && errno == EAGAIN)
                    break;
                if (n <= 0) {
                    ended = true;
                    break; // EOF or error: the status line is what we have
                }
            }
            if (answer_.size() < 256)
                answer_.append(buf, static_cast<size_t>(std::min<ssize_t>(n, 256)));
        }
        if (!ended && answer_.find("\r\n") == std::string::npos && answer_.size() < 256)
            return wait_for(EV_READ); // the status line is not complete yet
        // "HTTP/1.1 200 OK": 2xx took the batch (OTLP/HTTP: a partial success is a 200 too).
        const bool ok = answer_.size() > 12 && answer_.starts_with("HTTP/1.") && answer_[9] == '2';
        if (!ok)
            return fail(answer_.empty() ? std::string("the collector closed without answering")
                                        : "the collector answered \"" +
                                              answer_.substr(0, answer_.find('\r')) + "\"");
        counters_->exported.fetch_add(batch_, std::memory_order_relaxed);
        consume(batch_);
        close_fd();
    }

    // The batch failed: its spans are counted as failed and given up (retrying them would
    // hold the queue behind a dead collector).
    void fail(const std::string& why) {
        ErrorLog::limited(LogLevel::warn, "trace: OTLP export to %s failed: %s; %zu spans lost",
                          tc_.endpoint.c_str(), why.c_str(), batch_);
        counters_->failed.fetch_add(batch_, std::memory_order_relaxed);
        consume(batch_);
        close_fd();
    }

    void abandon(const char* why) {
        if (busy())
            fail(why);
    }

    void consume(size_t n) {
        head_ = (head_ + n) % ring_.size();
        count_ -= n;
        batch_ = 0;
    }

    void close_fd() {
        ev_io_stop(loop_, &io_);
        ev_timer_stop(loop_, &timeout_);
        connector_.cancel();
        stage_ = Stage::idle;
        if (ssl_) {
            SSL_free(ssl_); // no close_notify: the answer is in, or the POST was given up
            ssl_ = nullptr;
        }
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
        request_.clear();
        request_.shrink_to_fit();
        body_.clear();
        body_.shrink_to_fit();
    }

    std::shared_ptr<const Config> config_; // keeps tc_ alive
    const TraceConfig& tc_;
    struct ev_loop* loop_;
    Counters* counters_;
    Counters private_counters_{};
    std::vector<FinishedSpan> ring_;
    size_t head_ = 0, count_ = 0, batch_ = 0;
    ev_timer flush_timer_{};
    ev_timer timeout_{};
    ev_io io_{};
    enum class Stage : uint8_t { idle, resolving, connecting, handshake, writing, reading };
    Stage stage_ = Stage::idle;
    uint64_t attempt_ = 0;                // which POST a resolver or connector callback belongs to
    std::unique_ptr<Resolver> resolver_;  // a host-name collector: made at the first export
    std::vector<sockaddr_storage> addrs_; // its last answer, until addrs_expire_ (ev_now)
    double addrs_expire_ = 0;
    Connector connector_{loop_};
    SSL_CTX* ssl_ctx_ = nullptr; // https: this worker's client context
    SSL* ssl_ = nullptr;
    int fd_ = -1;
    std::string body_, request_, answer_;
    size_t sent_ = 0;
};

} // namespace

std::unique_ptr<ModuleWorker> start_worker(const WorkerContext& ctx) {
    const TraceConfig* tc = trace_config(*ctx.config);
    if (!tc || tc->endpoint.empty())
        return nullptr;
    return std::make_unique<Exporter>(ctx, *tc);
}

void enqueue(const Request& req, const ExchangeSummary& s, const Span& span, size_t module_index) {
    if (auto* e = req.modules ? req.modules->get<Exporter>(module_index) : nullptr)
        e->push(req, s, span);
}

void declare_zones(const Config& config, std::vector<ZoneSpec>& out) {
    if (trace_config(config))
        out.push_back({std::string(kCountersZone), sizeof(Counters), 1, nullptr, true});
}

void export_metrics(const MetricsExport& ctx, std::string& out) {
    const auto* c = ctx.zones.get<Counters>(kCountersZone);
    if (!c)
        return;
    metric_header(out, ctx.openmetrics, "wraith_trace_spans_total", "counter",
                  "Spans of sampled traces, by what became of them: queued for export, "
                  "exported (the collector took them), failed (it did not, or could not be "
                  "reached), dropped (the worker's queue was full).");
    const std::pair<const char*, const std::atomic<uint64_t>*> rows[] = {{"queued", &c->queued},
                                                                         {"exported", &c->exported},
                                                                         {"failed", &c->failed},
                                                                         {"dropped", &c->dropped}};
    for (const auto& [name, v] : rows)
        out += std::string("wraith_trace_spans_total{result=\"") + name + "\"} " +
               std::to_string(v->load(std::memory_order_relaxed)) + "\n";
}

} // namespace wraith::trace
