// The module registry: the one place a module plugs into Wraith. A module owns a TOML key on
// [[site.route]] (e.g. `static = { root = "..." }`), says which phase it runs in, and builds
// its per-route object from that table at config time. Adding a module touches its own folder
// and one WRAITH_REGISTER_MODULE line.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/http.h"

namespace wraith {

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

// Phases, in the order the pipeline runs them (worker/pipeline.h).
enum class Phase {
    access,   // may answer early (rate limit, geo, auth)
    response, // wraps the response writer (headers, compression)
    log,      // sees the finished exchange
};

// What a log-phase filter sees of a finished exchange.
struct ExchangeSummary {
    int status = 0;
    uint64_t body_bytes = 0;    // response body bytes sent
    uint64_t request_bytes = 0; // request body bytes received (a tunnel: client-to-server bytes)
    uint64_t duration_us = 0;
    bool aborted = false;
};

// A filter module's per-route object. Override the hook of the module's phase.
class Filter {
public:
    enum class Verdict { next, answered };
    virtual ~Filter() = default;
    virtual Phase phase() const = 0;
    // access: return `answered` after sending a complete response through `out`.
    virtual Verdict access(Request& req, ResponseWriter& out) const { return Verdict::next; }
    // response: return a writer (arena-allocated) that wraps `next`, or &next to pass through.
    virtual ResponseWriter* wrap(Request& req, ResponseWriter& next) const { return &next; }
    // log: called once when the exchange ends.
    virtual void log(const Request& req, const ExchangeSummary& s) const {}
};

// Everything a module's build function may need besides its own table.
struct BuildContext {
    const Config& config; // being built: server/http sections and mime types are ready
    const Site& site;     // the site being built (its routes are not complete yet)
    Diagnostics& diag;
};

// What a module's per-worker hooks see.
struct WorkerContext {
    struct ev_loop* loop;
    std::shared_ptr<const Config> config; // the worker's generation
    int slot;                             // this worker's index in it, 0..workers-1
    int workers;                          // how many workers it has
    uint32_t generation;
};

struct ModuleSpec {
    std::string_view key;     // route key that enables the module: "static", "compress"
    bool is_handler = false;  // a route has exactly one handler module
    int order = 0;            // among filters: lower runs first (access) / wraps outermost
    std::string_view summary; // one line for `wraith help modules`
    // Builds the per-route object from `options`, the value of `key` (a table, unless the
    // module accepts other forms via reader.node()). Return nullptr after reporting errors.
    std::unique_ptr<Handler> (*build_handler)(TableReader& options, BuildContext& ctx) = nullptr;
    std::unique_ptr<Filter> (*build_filter)(TableReader& options, BuildContext& ctx) = nullptr;
    // For filter modules that are on by default: build with defaults (an empty table) when the
    // key is absent. In that implicit build only, returning nullptr without reporting a problem
    // means "nothing to do on this route" and is not an error. `key = false` turns it off.
    bool default_on = false;
    // Per-worker background work (active health checks, later ACME renewals, shared-state
    // sync): worker_start runs on the worker's loop once it serves, worker_stop when it
    // starts to drain (its background work must not hold the drain open) or exits.
    void (*worker_start)(const WorkerContext& ctx) = nullptr;
    void (*worker_stop)() = nullptr;
    // For the module that serves [upstream.NAME] tables (proxy): readies what an upstream
    // needs at run time beyond its settings (the TLS context of `tls`), reporting problems to
    // `diag`. The loader calls it for each table it read without errors.
    void (*prepare_upstream)(UpstreamConfig& upstream, Diagnostics& diag) = nullptr;
};

// Sends a complete error response for `status`: the site's custom page (error_pages) when it
// has one, else a small built-in HTML page. `reason` (may be empty) goes to the error log,
// rate-limited. Implemented by the pipeline (worker/pipeline.cc).
void send_error(Request& req, ResponseWriter& out, int status, std::string_view reason = {});

class ModuleRegistry {
public:
    static ModuleRegistry& instance();
    void add(const ModuleSpec& spec);
    const ModuleSpec* find(std::string_view key) const;
    std::span<const ModuleSpec> all() const;

private:
    ModuleSpec specs_[64];
    size_t count_ = 0;
};

struct ModuleRegistrar {
    explicit ModuleRegistrar(const ModuleSpec& spec) { ModuleRegistry::instance().add(spec); }
};

#define WRAITH_REGISTER_MODULE(ident, ...)                                                         \
    static const ::wraith::ModuleRegistrar wraith_module_registrar_##ident {                       \
        ::wraith::ModuleSpec {                                                                     \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    }

} // namespace wraith
