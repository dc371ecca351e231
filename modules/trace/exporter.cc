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

#include "common/json.h"
#include "common/log.h"
#include "common/metrics_text.h"
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
    }

    ~Exporter() override {
        stop_timer();
        abandon("the worker is exiting");
    }

    void drain() override {
        // One last POST of what is queued, if none is running; the worker does not wait for it
        // beyond its own drain.
        if (fd_ < 0 && count_)
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
        if (count_ >= tc_.batch && fd_ < 0)
            send_batch();
    }

private:
    static void on_flush_timer(struct ev_loop*, ev_timer* w, int) {
        auto* self = static_cast<Exporter*>(w->data);
        if (self->fd_ < 0 && self->count_)
            self->send_batch();
    }
    static void on_timeout(struct ev_loop*, ev_timer* w, int) {
        static_cast<Exporter*>(w->data)->abandon("timed out");
    }
    static void on_io(struct ev_loop*, ev_io* w, int revents) {
        auto* self = static_cast<Exporter*>(w->data);
        if (revents & EV_WRITE)
            self->write_more();
        else if (revents & EV_READ)
            self->read_answer();
    }

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

    void send_batch() {
        batch_ = std::min(count_, tc_.batch);
        build(batch_);
        fd_ = ::socket(tc_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd_ < 0)
            return fail(std::string("socket: ") + std::strerror(errno));
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&tc_.addr), tc_.addr_len) != 0 &&
            errno != EINPROGRESS)
            return fail(std::string("connect: ") + std::strerror(errno));
        answer_.clear();
        ev_io_set(&io_, fd_, EV_WRITE);
        ev_io_start(loop_, &io_);
        ev_timer_set(&timeout_, tc_.timeout, 0.);
        ev_timer_start(loop_, &timeout_);
    }

    void write_more() {
        while (sent_ < request_.size()) {
            ssize_t n = ::send(fd_, request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                return;
            if (n <= 0) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
                return fail(std::string("send: ") + std::strerror(err ? err : errno));
            }
            sent_ += static_cast<size_t>(n);
        }
        ev_io_stop(loop_, &io_);
        ev_io_set(&io_, fd_, EV_READ);
        ev_io_start(loop_, &io_);
    }

    void read_answer() {
        char buf[4096];
        for (;;) {
            ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n > 0) {
                if (answer_.size() < 256)
                    answer_.append(buf, static_cast<size_t>(std::min<ssize_t>(n, 256)));
                continue;
            }
            if (n < 0 && errno == EAGAIN)
                break;
            break; // EOF or error: the status line is what we have
        }
        if (answer_.find("\r\n") == std::string::npos && answer_.size() < 256)
            return; // the status line is not complete yet
        // "HTTP/1.1 200 OK": 2xx took the batch (OTLP/HTTP: a partial success is a 200 too).
        const bool ok = answer_.size() > 12 && answer_.starts_with("HTTP/1.") && answer_[9] == '2';
        if (!ok)
            return fail("the collector answered \"" + answer_.substr(0, answer_.find('\r')) + "\"");
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
        if (fd_ >= 0)
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
