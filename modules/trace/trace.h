// W3C Trace Context (https://www.w3.org/TR/trace-context/) and OTLP span export. With a
// [trace] table, every request becomes a span: its `traceparent` is read (a valid one from the
// client continues that trace; without one, or an invalid one, a trace starts when `generate`
// says so), the request goes on to handlers and upstreams carrying Wraith's own span as the
// parent, `tracestate` passes unchanged, and the access log gets the trace ID. With `otlp`, the
// spans of sampled traces are batched per worker and POSTed to an OpenTelemetry collector as
// OTLP/HTTP JSON, off the request path; a full queue drops and counts.
//
//   trace.cc     the [trace] table, the `trace` filter, $trace_id and $span_id
//   exporter.cc  the per-worker span queue and the OTLP/HTTP(S) client
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <sys/socket.h>

#include "common/config.h"
#include "common/module.h"

namespace wraith::trace {

struct TraceConfig final : ModuleConfig {
    bool generate = true;       // start a trace for a request without a valid traceparent
    bool trust_incoming = true; // false: the client's traceparent is ignored (a new trace)
    // OTLP/HTTP export; endpoint empty: none.
    std::string endpoint; // "https://collector.example:4318/v1/traces" as written
    bool tls = false;     // https://
    std::string host;     // "collector.example", "127.0.0.1", "::1"
    uint16_t port = 0;
    sockaddr_storage addr{}; // an IP literal host's address (addr_len 0: a name, resolved)
    socklen_t addr_len = 0;
    std::string host_header; // "collector.example:4318"
    std::string ca;          // otlp_ca: trusted CAs for https (empty: the system's)
    SourcePos ca_pos;
    std::string path = "/v1/traces";
    std::string service_name = "wraith";
    size_t queue = 4096;   // spans a worker holds at most
    size_t batch = 512;    // spans per POST
    double interval = 1.0; // seconds between flushes of a partial batch
    double timeout = 5.0;  // seconds a POST may take
};

const TraceConfig* trace_config(const Config& config);

// One exchange's span, in its arena.
struct Span {
    char trace_id[32];  // lower-case hex
    char span_id[16];   // ours
    char parent_id[16]; // the client's span; all '0' when we started the trace
    bool sampled = false;
    bool has_parent = false;
    std::string_view traceparent; // what goes upstream: "00-TRACE-OURS-FLAGS"
};

// The request's span (null: no tracing for it).
const Span* span_of(const Request& req);

// Parses a version-00 traceparent ("00-" 32 hex "-" 16 hex "-" 2 hex, lower-case; neither ID
// all zeros). Future versions are read by the same prefix, as the spec asks.
bool parse_traceparent(std::string_view v, Span& out);

// ---- export (exporter.cc)

// Counters every worker adds to (zone "trace.counters"): spans queued, exported (the
// collector answered 2xx), failed (it did not, or could not be reached), dropped (the queue
// was full).
struct Counters {
    std::atomic<uint64_t> queued, exported, failed, dropped;
};
constexpr std::string_view kCountersZone = "trace.counters";

// A finished span, fixed-size so queueing allocates nothing.
struct FinishedSpan {
    Span span;
    int64_t start_ns, end_ns; // Unix time
    int status;
    int version;
    char method[12];
    char name[96]; // "GET /api/" (method and route)
    char target[160];
    char host[64];
    char client[48];
};

std::unique_ptr<ModuleWorker> start_worker(const WorkerContext& ctx);
void declare_zones(const Config& config, std::vector<ZoneSpec>& out);
void export_metrics(const MetricsExport& ctx, std::string& out);
// Queues a finished span for `req` (sampled, with export configured); counts a drop when full.
void enqueue(const Request& req, const ExchangeSummary& s, const Span& span, size_t module_index);

} // namespace wraith::trace
