// The module interface: the one place a module plugs into Wraith. A module owns config keys
// (a key on routes, sites or [server] that enables it; top-level tables such as [upstream.NAME]),
// runs in phases of an exchange, keeps per-worker state and may declare shared-memory zones.
// Everything here is protocol-independent: handlers and filters see a Request, a BodyReader and
// a ResponseWriter, never a socket. docs/decisions.md, "How to add a module", walks through one.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/http.h"
#include "common/shm.h"

namespace toml {
inline namespace v3 {
class node;
class table;
} // namespace v3
} // namespace toml

namespace wraith {

namespace quic {
struct ApplicationSpec; // common/quic_application.h
}

struct ModuleSpec;

// Produces the response. Built once per route at config time, shared by all requests, so it
// must be const: per-request state lives in req.arena. May answer synchronously or later from
// loop callbacks; must call ResponseWriter with end_stream exactly once unless aborted.
class Handler {
public:
    virtual ~Handler() = default;
    virtual void handle(Request& req, BodyReader& body, ResponseWriter& out) const = 0;
    // True if the handler accepts tunnel requests (Request::upgrade). Others never see one:
    // the pipeline answers an extended CONNECT with 405 and serves an HTTP/1.1 Upgrade request
    // as a plain one (RFC 9110 §7.8 lets a server ignore Upgrade).
    virtual bool tunnels() const { return false; }
};

// The phases of an exchange, in the order they run (worker/pipeline.h is the engine).
enum class Phase : uint8_t {
    accept,       // per connection, before TLS: IP allow/deny, connection limits
    request_head, // [server] filters, before routing: the client address (real_ip), ids
    access,       // the route is known: may answer, or pause and resume later
    request_body, // wraps the request body the handler reads
    response,     // wraps the response writer (headers, compression)
    log,          // sees the finished exchange
};
constexpr unsigned phase_bit(Phase p) {
    return 1u << static_cast<unsigned>(p);
}

// What a log-phase filter sees of a finished exchange.
struct ExchangeSummary {
    int status = 0;
    uint64_t body_bytes = 0;    // response body bytes sent
    uint64_t request_bytes = 0; // request body bytes received (a tunnel: client-to-server bytes)
    uint64_t duration_us = 0;
    bool aborted = false;
};

// A new connection in the accept phase (before TLS, before QUIC's handshake), and how a filter
// that refuses it wants the client told. The worker does the telling: a plain HTTP/1.1
// listener answers `refusal_status` with Retry-After and closes, TLS gets a fatal alert, QUIC a
// CONNECTION_CLOSE with CONNECTION_REFUSED; 0 closes without a word.
struct AcceptContext {
    const ConnectionInfo& conn;       // peer and local addresses only (TLS has not started)
    ModuleWorkers* modules = nullptr; // the worker's per-module state (null in unit tests)
    int refusal_status = 0;           // 429, 503 ...
    uint32_t retry_after_s = 0;       // with refusal_status: the Retry-After value
};

// An access filter's answer.
enum class AccessVerdict : uint8_t {
    next,     // on to the next filter, then the handler
    answered, // the filter sent a complete response through the writer
    paused,   // the filter waits for something (a lookup, a plugin call): it resumes later
};

// How a paused access filter resumes its exchange. Valid from the moment access() returned
// `paused` until the filter calls resume(), or until the exchange is cancelled because the
// client went away: then the on_cancel callback runs, and the filter must forget this object
// (it frees what it held for the exchange and never resumes). resume() must be called from a
// loop callback, never from inside access().
class AccessResume {
public:
    // `next` or `answered` (the filter sent a complete response through the writer first).
    virtual void resume(AccessVerdict verdict) = 0;
    // Replaces the previous callback; nullptr clears it.
    virtual void on_cancel(Callback cb) = 0;
    // The request body as the access phase has it (the protocol's reader, or what an earlier
    // filter put in its place). A filter that must judge the body before the handler starts
    // (a WAF) reads it while paused, then hands on a reader that replays what it read and
    // continues with the rest (replace_body, before resume): request-body filters and the
    // handler then read that one. The replacement lives in the request arena.
    virtual BodyReader& body() = 0;
    virtual void replace_body(BodyReader& body) = 0;

protected:
    ~AccessResume() = default;
};

// A filter module's object for one scope (the server, a site or a route). Built once at config
// time and shared by every exchange and connection of its scope, so it is const; per-exchange
// state lives in req.arena. A filter overrides the hooks of the phases it names in phases().
class Filter {
public:
    virtual ~Filter() = default;
    // Bits of phase_bit(): the phases whose hooks this filter wants called.
    virtual unsigned phases() const = 0;
    // accept: a new connection, before any byte is read (TLS not started: ctx.conn has the
    // peer and local addresses only). False refuses it (see AcceptContext). Only [server]-level
    // filters run here.
    virtual bool accept(AcceptContext& ctx) const { return true; }
    // accept: a connection this filter accepted is gone (`conn` is the same as at accept).
    virtual void connection_closed(const ConnectionInfo& conn, ModuleWorkers* modules) const {}
    // request_head: before the site and route are chosen, so what it sets (Request::client_ip,
    // fields) is what routing conditions and every later phase see. `next` or `answered`
    // (`paused` is not allowed here). Only [server]-level filters run here.
    virtual AccessVerdict request_head(Request& req, ResponseWriter& out) const {
        return AccessVerdict::next;
    }
    // access: decide about the request head. See AccessVerdict and AccessResume.
    virtual AccessVerdict access(Request& req, ResponseWriter& out, AccessResume& resume) const {
        return AccessVerdict::next;
    }
    // request_body: a reader (arena-allocated) that wraps `next`, or &next to pass through.
    virtual BodyReader* wrap_body(Request& req, BodyReader& next) const { return &next; }
    // response: a writer (arena-allocated) that wraps `next`, or &next to pass through.
    virtual ResponseWriter* wrap(Request& req, ResponseWriter& next) const { return &next; }
    // log: called once when the exchange ends.
    virtual void log(const Request& req, const ExchangeSummary& s) const {}
};

// A route condition beyond its path (headers, geo, cookies: the routing module adds them). A
// route whose conditions do not all hold lets routing fall to the next candidate.
class RouteCondition {
public:
    virtual ~RouteCondition() = default;
    virtual bool matches(const Request& req) const = 0;
    // For `wraith route` and the debug log: like matches(), and when the condition fails,
    // `why` says which part of it did ("header x-beta is absent").
    virtual bool explain(const Request& req, std::string& why) const { return matches(req); }
};

// An internal rewrite on a route (`rewrite = { pattern, replace }`): the request's URI changes
// and, unless the route also has a handler, routing runs again with the new one (at most
// Router::kMaxRewrites times; then the exchange ends with a 500 and a log line).
class RouteRewrite {
public:
    virtual ~RouteRewrite() = default;
    // Whether the pattern matches the request's path. A route with a rewrite and no handler is
    // a candidate only then.
    virtual bool matches(const Request& req) const = 0;
    // Rewrites req.path, decoded_path, query and captures (values in req.arena). False when the
    // pattern does not match, or the result is not a path (`error` says why).
    virtual bool apply(Request& req, std::string& error) const = 0;
};

// A stream (L4) connection as its handler sees it: a TCP connection, or a TLS one after its
// handshake, with no HTTP. `in` is the client's byte stream (finished() at its FIN, failed()
// when it broke); `out` carries ours: send_body / send_file queue bytes with backpressure
// (`blocked`, then on_writable), end_stream ends our direction (FIN), reset() closes the
// connection, on_abort tells that the client is gone; send_headers and send_trailers mean
// nothing here. When both directions have ended the connection closes.
struct StreamSession {
    const ConnectionInfo& conn;
    BodyReader& in;
    ResponseWriter& out;
    Arena& arena; // lives as long as the connection
    struct ev_loop* loop;
    ModuleWorkers* modules;
};

// A stream protocol's handler (ModuleSpec::build_stream), built once per listener that
// carries the protocol; per-connection state lives in session.arena.
class StreamHandler {
public:
    virtual ~StreamHandler() = default;
    virtual void handle(StreamSession& session) const = 0;
};

// What a module's export_metrics and export_status hooks see: the generation of the worker
// answering a scrape or the dashboard (or, for `wraith top`, the master's serving one).
struct MetricsExport {
    const Config& config;     // the answering worker's generation
    const SharedZones& zones; // and its shared-memory zones
    bool openmetrics = false; // OpenMetrics 1.0.0, else text format 0.0.4 (metric_header)
    uint32_t generation = 0;
};

// Where a module key is being built.
enum class Scope : uint8_t { server, site, route, listener };

// Everything a module's build function may need besides its own table.
struct BuildContext {
    const Config& config; // being built: server/http sections, mime types and the module
                          // tables ([upstream.NAME] ...) are ready
    const Site* site;     // the site being built (its routes are not complete yet); null at
                          // server scope
    Diagnostics& diag;
    Scope scope = Scope::route;
    size_t module_index = 0; // the module's index in the registry (ModuleWorkers::get)
    // The route being built (route scope only): its path match is read, so builders can check
    // that $1..$9 name groups its regex has. Null at site and server scope.
    const Route* route = nullptr;
    // The key's value as written: the options table, or for a takes_value module whatever it
    // was given (`allow = ["10.0.0.0/8"]`, `limit = ["api"]`; an implicit build of a default-on
    // filter: its empty table).
    const toml::node* value = nullptr;
};

// A listener a module's table adds (the [admin] listener): `listen` is loaded as a [[listen]]
// table and `site` as a [[site]] table, with their values' source positions, and that site is
// the only one the listener's connections reach: Host routing never finds it from another
// listener, nor another site from this one.
struct ModuleListener {
    std::shared_ptr<toml::table> listen;
    std::shared_ptr<toml::table> site;
    SourcePos pos; // the module's table: where problems in copied values are reported
};

// What a module's top-level table loader sees ([upstream] for the proxy module).
struct TableContext {
    Config& config; // being built: [server] and [http] are ready
    Diagnostics& diag;
    std::vector<ModuleListener>* listeners = nullptr; // where a table may add a listener
};

// A module's per-worker state (connection pools, health checkers, caches): made by
// ModuleSpec::worker_start when a worker starts serving, told when the worker starts to drain
// (background work must not hold the drain open), destroyed when the worker exits.
class ModuleWorker {
public:
    virtual ~ModuleWorker() = default;
    virtual void drain() {}
};

// The worker's ModuleWorker objects, one slot per registered module (null: none). Handlers
// reach theirs through Request::modules with the index their BuildContext gave them.
class ModuleWorkers {
public:
    explicit ModuleWorkers(size_t modules) : slots_(modules) {}
    template <class T> T* get(size_t module_index) const {
        return module_index < slots_.size() ? static_cast<T*>(slots_[module_index].get()) : nullptr;
    }
    void set(size_t module_index, std::unique_ptr<ModuleWorker> w) {
        slots_.at(module_index) = std::move(w);
    }
    void drain_all() {
        for (auto& s : slots_)
            if (s)
                s->drain();
    }
    // Destroys them in reverse registration order.
    void clear() {
        for (auto it = slots_.rbegin(); it != slots_.rend(); ++it)
            it->reset();
    }
    ~ModuleWorkers() { clear(); }

private:
    std::vector<std::unique_ptr<ModuleWorker>> slots_;
};

// What a module's per-worker hook sees.
struct WorkerContext {
    struct ev_loop* loop;
    std::shared_ptr<const Config> config; // the worker's generation
    int slot;                             // this worker's index in it, 0..workers-1
    int workers;                          // how many workers it has
    uint32_t generation;
    const SharedZones* zones; // the shared-memory zones of this generation (common/shm.h)
};

// A path a worker opens after it starts, for the Landlock sandbox (worker/sandbox.h).
struct SandboxPath {
    std::string path;
    bool write = false; // may create and write files below it (logs); else read-only
};

struct ModuleSpec {
    // The key that enables the module: a route key ("static", "proxy"), or for filters a key
    // that may also appear in [server] and [[site]] (inherited downwards, overridable;
    // `key = false` turns an inherited or default-on filter off).
    std::string_view key;
    bool is_handler = false; // a route has exactly one handler module
    int order = 0;           // among filters: lower runs first (access) / wraps outermost
    // Builds the per-route object from `options`, the value of `key` (a table, unless the
    // module accepts other forms via reader.node()). Return nullptr after reporting errors.
    std::unique_ptr<Handler> (*build_handler)(TableReader& options, BuildContext& ctx) = nullptr;
    std::unique_ptr<Filter> (*build_filter)(TableReader& options, BuildContext& ctx) = nullptr;
    // A route condition module: routes with its key match only when the condition holds.
    std::unique_ptr<RouteCondition> (*build_condition)(TableReader& options,
                                                       BuildContext& ctx) = nullptr;
    // A route rewrite module (route scope only); a route with one needs no handler.
    std::unique_ptr<RouteRewrite> (*build_rewrite)(TableReader& options,
                                                   BuildContext& ctx) = nullptr;
    // For filters: the key may also take a value that is neither a table nor a boolean
    // (`limit = ["api"]`); build_filter then reads an empty table and finds the value, with its
    // source position, in BuildContext::value.
    bool takes_value = false;
    // A stream (L4) protocol module: `key` is then a protocol a [[listen]] may name in
    // `protocols`, and the listener's table key of the same name holds its options.
    // `stream_alpn` is the ALPN id that picks the protocol on a TLS listener ("" for none: then
    // it must be the listener's only protocol).
    std::shared_ptr<const StreamHandler> (*build_stream)(TableReader& options,
                                                         BuildContext& ctx) = nullptr;
    std::string_view stream_alpn;
    // A QUIC application module (RFC 9001 §8.1): `key` is then a protocol a TLS [[listen]] may
    // name in `protocols` ("doq"), which makes the listener answer QUIC on its UDP port too,
    // and this application (common/quic_application.h; its ALPN is `key`) is registered when a
    // worker starts and offered only on listeners that name it.
    const quic::ApplicationSpec* quic_application = nullptr;
    // With quic_application: what keeps `config` (its module tables are loaded) from running
    // it, reported at the listener's `protocols` entry ("needs a [dns] table"); "" or null:
    // nothing.
    std::string (*quic_check)(const Config& config) = nullptr;
    // For filter modules that are on by default: built with defaults (an empty table) on a
    // route where no scope mentions the key. In that implicit build only, returning nullptr
    // without reporting a problem means "nothing to do on this route" and is not an error.
    bool default_on = false;
    // A filter on by default at [server] scope (built there with an empty table), so through
    // the merged chains it sees every exchange, routed or not; `key = false` in [server], a
    // site or a route turns it off there and below.
    bool default_on_server = false;
    // A top-level table the module owns ("upstream" for [upstream.NAME]). Tables load after
    // [server], [http], [http2], [http3] and before sites, so build functions can look up
    // what they read (Config::module_config). `value` is whatever the file has under the key.
    std::string_view table;
    void (*load_table)(const toml::node& value, TableContext& ctx) = nullptr;
    // Shared-memory zones the module needs for `config` (the master creates them before the
    // workers fork; an unchanged zone survives reload and binary upgrade).
    void (*zones)(const Config& config, std::vector<ZoneSpec>& out) = nullptr;
    // Per-worker state and background work (see ModuleWorker); null result: none.
    std::unique_ptr<ModuleWorker> (*worker_start)(const WorkerContext& ctx) = nullptr;
    // Files and directories the module's workers open after they start (a static root), for
    // server.landlock; the core adds its own (logs, certificates, DNS files).
    void (*sandbox_paths)(const Config& config, std::vector<SandboxPath>& out) = nullptr;
    // Series the module adds to a metrics scrape (`metrics = {}`), read from its shared state
    // and appended to `out` in the scrape's format (common/metrics_text.h); bounded labels only.
    void (*export_metrics)(const MetricsExport& ctx, std::string& out) = nullptr;
    // Members the module adds to the live status object (the dashboard's status.json and
    // `wraith top`): `"name":value` pairs, each preceded by a comma (common/metrics_text.h
    // status_json() opens and closes the object).
    void (*export_status)(const MetricsExport& ctx, std::string& out) = nullptr;
    // In the master: a worker that mapped `zones` ended without its clean exit (killed, crashed),
    // so what it held in them (connections it counted) was never given back.
    void (*worker_lost)(const SharedZones& zones) = nullptr;
};

// "" when $1..$`highest` name groups the route's path regex has (or the route's groups cannot
// be known at load: a prefix route may get a rewrite's captures), else the message.
std::string check_captures(int highest, const BuildContext& ctx);

// Sends a complete error response for `status`: the site's custom page (error_pages) when it
// has one, else a small built-in HTML page. `reason` (may be empty) goes to the error log,
// rate-limited. Implemented with the router (modules/router/errors.cc).
void send_error(Request& req, ResponseWriter& out, int status, std::string_view reason = {});

// Every module of this binary, in registration order (modules/modules.cc for the built-in
// ones). Filled before config is first loaded; read-only afterwards.
class ModuleRegistry {
public:
    static ModuleRegistry& instance();
    // A key or table registered twice is a programming error: it aborts with a message.
    void add(const ModuleSpec& spec);
    const ModuleSpec* find(std::string_view key) const;
    const ModuleSpec* find_table(std::string_view table) const;
    size_t index_of(const ModuleSpec& spec) const; // spec: a pointer this registry returned
    std::span<const ModuleSpec> all() const;

private:
    ModuleSpec specs_[64];
    size_t count_ = 0;
};

// For test binaries: registers a module from a static initialiser.
struct ModuleRegistrar {
    explicit ModuleRegistrar(const ModuleSpec& spec) { ModuleRegistry::instance().add(spec); }
};

} // namespace wraith
