// A worker process: one libev loop serving the listeners the master bound, for one config
// generation. It accepts connections (the accept phase may refuse them), hands them to their
// protocol (worker/protocols.h), runs exchanges through the phase engine (worker/pipeline.h),
// keeps the modules' per-worker state, publishes counters to the master and drains on request.
#pragma once

#include <array>
#include <ev.h>
#include <memory>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "common/buffer_pool.h"
#include "common/config.h"
#include "common/loop.h"
#include "common/shm.h"
#include "common/status.h"
#include "modules/router/router.h"
#include "worker/access_log.h"
#include "worker/connection.h"
#include "worker/pipeline.h"
#include "worker/transport.h"

namespace wraith {

class TlsContexts;
namespace quic {
class TlsContext;
class Endpoint;
} // namespace quic

// What the master hands a worker at fork.
struct WorkerSetup {
    std::shared_ptr<const Config> config;
    std::shared_ptr<const TlsContexts> tls;           // null when no listener has tls = true
    std::shared_ptr<const quic::TlsContext> quic_tls; // null when no listener has "h3"
    int slot = 0;
    int workers = 1; // in this generation
    uint32_t generation = 0;
    int channel_fd = -1;         // SOCK_SEQPACKET to the master (worker/channel.h)
    std::vector<int> listen_fds; // parallel to config->listeners
    // QUIC: this worker's UDP socket of each listener with "h3" (-1 for others), parallel to
    // config->listeners; its index in their reuseport groups and the CID marker
    // (common/quic_cid.h); the master's secret for stateless resets and address tokens.
    std::vector<int> quic_fds;
    int quic_index = -1;
    uint8_t quic_marker = 0;
    std::array<uint8_t, 32> quic_secret{};
    WorkerStatus* status = nullptr;
    SharedZones zones;            // the generation's shared-memory zones (master/zones.h)
    bool drop_privileges = false; // master runs as root: switch to uid/gid below
    uid_t uid = 0;
    gid_t gid = 0;
    std::string user;          // for messages
    std::vector<gid_t> groups; // supplementary groups (setgroups)
};

class Worker {
public:
    explicit Worker(WorkerSetup setup);
    ~Worker();
    // Runs the loop until stopped or drained. Returns the process exit code.
    int run();

    struct ev_loop* loop() const {
        return loop_;
    }
    const Config& config() const { return *config_; }
    const Router& router() const { return router_; }
    Pipeline& pipeline() { return pipeline_; }
    ModuleWorkers* modules() { return &modules_; }
    AccessLogs& access_logs() { return access_logs_; }
    BufferPool& read_buffers() { return read_buffers_; }
    BufferPool& large_read_buffers() { return large_read_buffers_; }
    BufferPool& arena_blocks() { return arena_blocks_; }
    // Current time as an HTTP date, refreshed at most once per second.
    std::string_view http_date();
    bool draining() const { return draining_; }
    // The Alt-Svc value TCP responses on `listen` carry: h3 on the same port when this worker
    // really reads its UDP socket, else empty.
    std::string_view alt_svc(const ListenConfig& listen) const;
    uint64_t next_connection_id() { return ++connection_ids_; }

    // A connection accepted on `listener` (or whose PROXY header was read: `peer` and `local`
    // are then the addresses it named): the accept phase, then the TLS handshake or the
    // protocol. Takes `fd`.
    void serve_accepted(int fd, const sockaddr_storage& peer, const sockaddr_storage* local,
                        size_t listener);
    // The accept phase for a new connection from `peer` to `local` (TCP before TLS, QUIC
    // before the handshake): false when a filter refused it, with how to tell the client in
    // *refusal; otherwise `hook` is what the connection must hold until it ends so the filters
    // hear of its end (null when no filter runs in the accept phase).
    bool accept_phase(const sockaddr_storage& peer, const sockaddr_storage& local,
                      std::unique_ptr<Transport::CloseHook>& hook, AcceptContext* refusal);

    void add_connection(Connection* c, ConnectionKind kind = ConnectionKind::other);
    void remove_connection(Connection* c); // the connection deletes itself after this
    void count_request();
    // An exchange of HTTP `version` (11, 20, 30) begins (+1) or ends (-1), for the gauges.
    void count_exchange(int version, int delta);
    // Runs c->run_deferred() before the loop next waits for events.
    void defer(Connection* c);

private:
    static void on_accept(struct ev_loop* loop, ev_io* w, int revents);
    static void on_channel(struct ev_loop* loop, ev_io* w, int revents);
    static void on_drain_timeout(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_accept_retry(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_signal(struct ev_loop* loop, ev_signal* w, int revents);
    static void on_prepare(struct ev_loop* loop, ev_prepare* w, int revents);
    static void on_housekeeping(struct ev_loop* loop, ev_timer* w, int revents);
    void accept_ready(size_t listener);
    void start_drain();
    void stop_now();
    // The modules' per-worker state (ModuleSpec::worker_start), told when draining starts.
    void start_modules();
    void pause_accept();
    void resume_accept();
    void maybe_exit();

    struct ev_loop* loop_;
    std::shared_ptr<const Config> config_;
    Router router_;
    WorkerSetup setup_;
    AccessLogs access_logs_;
    ModuleWorkers modules_; // the modules' per-worker state, made once the loop serves
    Pipeline pipeline_;
    BufferPool read_buffers_;       // connection read buffers, held only during an exchange
    BufferPool large_read_buffers_; // for request heads that outgrow a normal one
    BufferPool arena_blocks_;       // first blocks of request arenas
    std::vector<ev_io> accept_watchers_;
    ev_io channel_watcher_;
    ev_timer drain_timer_;
    ev_timer accept_retry_timer_;
    ev_signal sigterm_, sigint_, sigquit_, sighup_, sigusr1_;
    static constexpr size_t kDeferredRunsPerPass = 10000;
    ev_prepare prepare_;
    ReadyQueue ready_; // connections' I/O in readiness order (common/loop.h)
    ev_idle idle_;     // active while deferred work is left over: the loop polls, not blocks
    ev_timer housekeeping_timer_;          // gives pooled memory back after bursts
    std::unique_ptr<quic::Endpoint> quic_; // null without "h3" listeners
    std::vector<std::string> alt_svc_;     // parallel to config_->listeners
    Connection* deferred_head_ = nullptr;
    Connection* deferred_tail_ = nullptr;
    Connection* connections_ = nullptr;
    size_t connection_count_ = 0;
    size_t connections_at_last_tick_ = 0; // housekeeping: trim after many closed
    uint64_t connection_ids_ = 0;
    bool draining_ = false;
    bool accepting_ = false;
    time_t date_second_ = 0;
    char date_[32] = {};
    size_t date_len_ = 0;
};

// What a protocol calls when a request head is complete: counts it for `wraith status`, then
// runs it through the phase engine.
inline void run_exchange(Worker& worker, Request& req, BodyReader& body, ResponseWriter& out) {
    worker.count_request();
    worker.pipeline().run(req, body, out);
}
// ...and when the exchange ended: log phase and access log.
inline void finish_exchange(Worker& worker, const Request& req, const ExchangeSummary& summary) {
    worker.pipeline().finish(req, summary);
}

// Fork-side entry: drops privileges, runs the worker, returns the exit code for _exit().
int worker_main(WorkerSetup setup, const std::vector<int>& fds_to_close);

} // namespace wraith
