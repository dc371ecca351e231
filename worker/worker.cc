#include "worker/worker.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http_date.h"
#include "common/counters.h"
#include "common/log.h"
#include "common/module.h"
#include "worker/channel.h"
#include "worker/protocols.h"
#include "worker/proxy_protocol_stage.h"
#include "worker/quic/endpoint.h"
#include "worker/quic/mem.h"
#include "worker/refusal.h"
#include "worker/sandbox.h"
#include "worker/tls/context.h"
#include "worker/tls/handshake.h"
#include "worker/transport.h"

namespace wraith {

namespace {
constexpr int kAcceptBatch = 64;
}

Worker::Worker(WorkerSetup setup)
    : loop_(ev_loop_new(static_cast<unsigned>(EVBACKEND_EPOLL) | EVFLAG_NOSIGMASK)),
      config_(setup.config), router_(*config_), setup_(std::move(setup)),
      modules_(ModuleRegistry::instance().all().size()),
      pipeline_(*config_, router_, &access_logs_, &modules_), read_buffers_(16384, 64),
      large_read_buffers_(config_->http.max_header_size + 16384, 4), arena_blocks_(4096, 256) {
    order_io(loop_, ready_);
    counters::bind(setup_.zones.get<counters::Zone>(counters::kZoneName), setup_.slot);
    accept_watchers_.resize(setup_.listen_fds.size());
    if (setup_.quic_tls && setup_.quic_index >= 0) {
        register_quic_protocols();
        quic_ = std::make_unique<quic::Endpoint>(*this, setup_);
        if (quic_->empty())
            quic_.reset();
    }
    alt_svc_.resize(config_->listeners.size());
    for (size_t i = 0; quic_ && i < config_->listeners.size(); ++i) {
        const ListenConfig& l = config_->listeners[i];
        if (!l.tls || i >= setup_.quic_fds.size() || setup_.quic_fds[i] < 0)
            continue;
        uint16_t port = ntohs(l.addr.ss_family == AF_INET6
                                  ? reinterpret_cast<const sockaddr_in6&>(l.addr).sin6_port
                                  : reinterpret_cast<const sockaddr_in&>(l.addr).sin_port);
        alt_svc_[i] = "h3=\":" + std::to_string(port) +
                      "\"; ma=" + std::to_string(config_->http3.alt_svc_max_age.count() / 1000);
    }
}

std::string_view Worker::alt_svc(const ListenConfig& listen) const {
    size_t i = static_cast<size_t>(&listen - config_->listeners.data());
    return i < alt_svc_.size() ? std::string_view(alt_svc_[i]) : std::string_view();
}

Worker::~Worker() {
    quic_.reset(); // its streams' handlers may hold module state: before the modules
    modules_.clear();
    access_logs_.stop();
    ev_loop_destroy(loop_);
}

std::string_view Worker::http_date() {
    time_t now = static_cast<time_t>(ev_now(loop_));
    if (now != date_second_) {
        date_second_ = now;
        date_len_ = format_http_date(now, date_);
    }
    return {date_, date_len_};
}

void Worker::add_connection(Connection* c, ConnectionKind kind) {
    c->kind_ = kind;
    setup_.status->open_by_kind[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
    c->next_ = connections_;
    if (connections_)
        connections_->prev_ = c;
    connections_ = c;
    ++connection_count_;
    setup_.status->connections.store(connection_count_, std::memory_order_relaxed);
}

void Worker::remove_connection(Connection* c) {
    if (c->prev_)
        c->prev_->next_ = c->next_;
    else if (connections_ == c)
        connections_ = c->next_;
    else
        return; // not in the list (already removed)
    if (c->next_)
        c->next_->prev_ = c->prev_;
    c->prev_ = c->next_ = nullptr;
    setup_.status->open_by_kind[static_cast<int>(c->kind_)].fetch_sub(1,
                                                                      std::memory_order_relaxed);
    --connection_count_;
    setup_.status->connections.store(connection_count_, std::memory_order_relaxed);
    if (!accepting_ && !draining_ && connection_count_ < config_->server.max_connections)
        resume_accept();
}

void Worker::count_request() {
    setup_.status->requests.fetch_add(1, std::memory_order_relaxed);
}

void Worker::count_exchange(int version, int delta) {
    auto& n = setup_.status->exchanges[version >= 30 ? 2 : version >= 20 ? 1 : 0];
    n.fetch_add(static_cast<uint32_t>(delta), std::memory_order_relaxed);
}

void Worker::defer(Connection* c) {
    if (c->deferred_)
        return;
    c->deferred_ = true;
    c->deferred_next_ = nullptr;
    if (deferred_tail_)
        deferred_tail_->deferred_next_ = c;
    else
        deferred_head_ = c;
    deferred_tail_ = c;
}

void Worker::on_prepare(struct ev_loop*, ev_prepare* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    // Entries may queue more entries (or themselves again); run until empty, but a connection
    // that keeps re-queueing itself must not starve the loop: past a bound, poll for I/O
    // without blocking (the idle watcher) and go on after it.
    size_t runs = 0;
    while (Connection* c = self->deferred_head_) {
        if (++runs > kDeferredRunsPerPass) {
            ev_idle_start(self->loop_, &self->idle_);
            return;
        }
        self->deferred_head_ = c->deferred_next_;
        if (!self->deferred_head_)
            self->deferred_tail_ = nullptr;
        c->deferred_ = false;
        c->run_deferred(); // may delete c
    }
    self->maybe_exit();
}

// Every few seconds: pools keep what a steady load needs between two ticks, but the spare
// buffers of a burst go back to the system, so an idle worker returns to its idle size.
void Worker::on_housekeeping(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    size_t before =
        self->read_buffers_.idle() + self->large_read_buffers_.idle() + self->arena_blocks_.idle();
    self->read_buffers_.shrink(self->connection_count_ ? 16 : 2);
    self->large_read_buffers_.shrink(0);
    self->arena_blocks_.shrink(self->connection_count_ ? 32 : 4);
    size_t after =
        self->read_buffers_.idle() + self->large_read_buffers_.idle() + self->arena_blocks_.idle();
    // Closed connections (a burst of clients leaving) free memory malloc keeps by default.
    bool many_closed = self->connection_count_ + 256 < self->connections_at_last_tick_;
    self->connections_at_last_tick_ = self->connection_count_;
    // QUIC's small-block lists (worker/quic/mem.h) go back too once the connections are gone.
    if (self->quic_ && (self->connection_count_ == 0 || many_closed) && quic::trim_mem() > 0)
        many_closed = true;
    if (after < before || many_closed)
        malloc_trim(0);
}

void Worker::on_accept(struct ev_loop*, ev_io* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    self->accept_ready(static_cast<size_t>(w - self->accept_watchers_.data()));
}

void Worker::accept_ready(size_t listener) {
    int lfd = setup_.listen_fds[listener];
    const ListenConfig& lc = config_->listeners[listener];
    for (int i = 0; i < kAcceptBatch && accepting_; ++i) {
        sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd =
            ::accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                ErrorLog::limited(LogLevel::error, "accept: %s; pausing accept for 100ms",
                                  std::strerror(errno));
                pause_accept();
                ev_timer_set(&accept_retry_timer_, 0.1, 0.);
                ev_timer_start(loop_, &accept_retry_timer_);
                return;
            }
            WLOG_ERROR("accept: %s", std::strerror(errno));
            return;
        }
        if (lc.proxy_protocol) {
            // The balancer's header first; then serve_accepted() with the client's address.
            auto* stage = new ProxyProtocolStage(*this, fd, peer, listener);
            add_connection(stage);
            stage->start();
        } else {
            serve_accepted(fd, peer, nullptr, listener);
        }
        if (connection_count_ >= config_->server.max_connections) {
            ErrorLog::limited(LogLevel::warn, "max_connections (%zu) reached; not accepting",
                              config_->server.max_connections);
            pause_accept();
        }
    }
}

void Worker::serve_accepted(int fd, const sockaddr_storage& peer, const sockaddr_storage* local,
                            size_t listener) {
    const ListenConfig& lc = config_->listeners[listener];
    std::unique_ptr<Transport::CloseHook> hook;
    if (pipeline_.has_accept_filters()) {
        sockaddr_storage here{};
        socklen_t here_len = sizeof(here);
        if (local)
            here = *local;
        else
            getsockname(fd, reinterpret_cast<sockaddr*>(&here), &here_len);
        ConnectionInfo none;
        AcceptContext refusal{none};
        if (!accept_phase(peer, here, hook, &refusal)) {
            // A plain listener of a stream protocol speaks no HTTP: it just closes.
            const bool says = lc.tls || !lc.stream_for({});
            refuse_connection(fd, lc.tls, says ? refusal.refusal_status : 0,
                              refusal.retry_after_s);
            return;
        }
    }
    if (lc.tls) {
        SSL* ssl = setup_.tls ? setup_.tls->new_ssl(listener) : nullptr;
        if (!ssl) {
            ErrorLog::limited(LogLevel::error, "cannot start TLS on %s", lc.address.c_str());
            ::close(fd);
            return; // the hook tells the accept filters
        }
        auto transport = std::make_unique<tls::TlsTransport>(fd, ssl);
        transport->set_close_hook(std::move(hook));
        if (local)
            transport->set_local(*local);
        auto* h = new tls::Handshake(*this, std::move(transport), peer, lc);
        add_connection(h);
        h->start();
    } else {
        auto transport = std::make_unique<TcpTransport>(fd);
        transport->set_close_hook(std::move(hook));
        if (local)
            transport->set_local(*local);
        start_protocol(*this, std::move(transport), peer, lc, {}, {});
    }
}

namespace {

// Holds the ConnectionInfo the accept filters saw, at one address for the connection's life (a
// filter may key its per-connection state by it), and tells them when the connection ends.
class AcceptedConnection final : public Transport::CloseHook {
public:
    AcceptedConnection(const Pipeline& pipeline, const ConnectionInfo& info)
        : pipeline_(pipeline), info_(info) {}
    ~AcceptedConnection() override {
        if (accepted_)
            pipeline_.connection_closed(info_);
    }
    const ConnectionInfo& info() const { return info_; }
    void set_accepted() { accepted_ = true; }

private:
    const Pipeline& pipeline_;
    ConnectionInfo info_;
    bool accepted_ = false; // refused: the pipeline already told the filters that accepted
};

} // namespace

bool Worker::accept_phase(const sockaddr_storage& peer, const sockaddr_storage& local,
                          std::unique_ptr<Transport::CloseHook>& hook, AcceptContext* refusal) {
    if (!pipeline_.has_accept_filters())
        return true;
    ConnectionInfo info;
    info.peer = peer;
    info.local = local;
    info.id = connection_ids_ + 1; // for log lines: the number the next connection gets
    auto accepted = std::make_unique<AcceptedConnection>(pipeline_, info);
    AcceptContext ctx{accepted->info()};
    if (!pipeline_.accept(ctx)) {
        refusal->refusal_status = ctx.refusal_status;
        refusal->retry_after_s = ctx.retry_after_s;
        return false;
    }
    accepted->set_accepted();
    hook = std::move(accepted);
    return true;
}

void Worker::pause_accept() {
    if (!accepting_)
        return;
    accepting_ = false;
    for (auto& w : accept_watchers_)
        ev_io_stop(loop_, &w);
}

void Worker::resume_accept() {
    if (accepting_ || draining_)
        return;
    accepting_ = true;
    for (auto& w : accept_watchers_)
        ev_io_start(loop_, &w);
}

void Worker::on_accept_retry(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    if (self->connection_count_ < self->config_->server.max_connections)
        self->resume_accept();
}

void Worker::on_channel(struct ev_loop*, ev_io* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    char msg[16];
    ssize_t n = ::recv(w->fd, msg, sizeof(msg), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        // The master is gone: finish what we have and leave.
        ev_io_stop(self->loop_, w);
        self->start_drain();
        return;
    }
    switch (msg[0]) {
    case channel::kDrain:
        self->start_drain();
        break;
    case channel::kReopen: {
        std::string err;
        if (!ErrorLog::reopen(&err))
            WLOG_ERROR("%s", err.c_str());
        self->access_logs_.reopen();
        break;
    }
    case channel::kStop:
        self->stop_now();
        break;
    }
}

void Worker::on_signal(struct ev_loop*, ev_signal* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    switch (w->signum) {
    case SIGTERM:
        self->stop_now();
        break;
    case SIGQUIT:
        self->start_drain();
        break;
    case SIGUSR1: {
        std::string err;
        ErrorLog::reopen(&err);
        self->access_logs_.reopen();
        break;
    }
    default:
        break; // INT and HUP are the master's business
    }
}

void Worker::start_drain() {
    if (draining_)
        return;
    draining_ = true;
    pause_accept();
    modules_.drain_all(); // background work must not hold the drain open
    if (quic_)
        quic_->drain();
    // Connection tracking outlives accept: closing our copies of the listening sockets is
    // what tells the kernel this process no longer takes new connections.
    for (int fd : setup_.listen_fds)
        ::close(fd);
    setup_.listen_fds.clear();
    setup_.status->state.store(WorkerState::draining);
    // The master answers a reload once every old worker has said this.
    char drained = channel::kDrained;
    if (::send(setup_.channel_fd, &drained, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        WLOG_WARN("cannot tell the master we stopped accepting: %s", std::strerror(errno));
    WLOG_INFO("draining %zu connections", connection_count_);
    for (Connection *c = connections_, *next; c; c = next) {
        next = c->next_;
        c->drain();
    }
    ev_timer_set(&drain_timer_, config_->server.drain_timeout.count() / 1000.0, 0.);
    ev_timer_start(loop_, &drain_timer_);
    maybe_exit();
}

void Worker::on_drain_timeout(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Worker*>(w->data);
    WLOG_WARN("drain_timeout reached with %zu connections open; closing them",
              self->connection_count_);
    self->stop_now();
}

void Worker::stop_now() {
    pause_accept();
    draining_ = true;
    for (Connection *c = connections_, *next; c; c = next) {
        next = c->next_;
        c->close_now();
    }
    // Deletions are deferred; run them, then leave the loop.
    on_prepare(loop_, &prepare_, 0);
    ev_break(loop_, EVBREAK_ALL);
}

void Worker::maybe_exit() {
    if (draining_ && connection_count_ == 0 && !deferred_head_)
        ev_break(loop_, EVBREAK_ALL);
}

int Worker::run() {
    for (size_t i = 0; i < setup_.listen_fds.size(); ++i) {
        ev_io_init(&accept_watchers_[i], on_accept, setup_.listen_fds[i], EV_READ);
        accept_watchers_[i].data = this;
    }
    if (quic_)
        quic_->start();
    ev_io_init(&channel_watcher_, on_channel, setup_.channel_fd, EV_READ);
    channel_watcher_.data = this;
    ev_io_start(loop_, &channel_watcher_);
    ev_init(&drain_timer_, on_drain_timeout);
    drain_timer_.data = this;
    ev_init(&accept_retry_timer_, on_accept_retry);
    accept_retry_timer_.data = this;
    ev_prepare_init(&prepare_, on_prepare);
    prepare_.data = this;
    ev_prepare_start(loop_, &prepare_);
    ev_idle_init(&idle_, [](struct ev_loop* loop, ev_idle* w, int) { ev_idle_stop(loop, w); });
    ev_timer_init(&housekeeping_timer_, on_housekeeping, 5., 5.);
    housekeeping_timer_.data = this;
    ev_timer_start(loop_, &housekeeping_timer_);
    ev_unref(loop_); // housekeeping alone does not keep the loop alive
    struct {
        ev_signal* w;
        int sig;
    } sigs[] = {{&sigterm_, SIGTERM},
                {&sigint_, SIGINT},
                {&sigquit_, SIGQUIT},
                {&sighup_, SIGHUP},
                {&sigusr1_, SIGUSR1}};
    for (auto& s : sigs) {
        ev_signal_init(s.w, on_signal, s.sig);
        s.w->data = this;
        ev_signal_start(loop_, s.w);
    }
    access_logs_.open(loop_, *config_);
    resume_accept();
    setup_.status->state.store(WorkerState::serving);
    start_modules();
    char ready = channel::kReady;
    if (::send(setup_.channel_fd, &ready, 1, MSG_NOSIGNAL) < 0)
        WLOG_WARN("cannot tell the master we are ready: %s", std::strerror(errno));
    ev_run(loop_, 0);
    modules_.drain_all();
    access_logs_.flush_all();
    return 0;
}

void Worker::start_modules() {
    WorkerContext ctx{loop_,          config_,           setup_.slot,
                      setup_.workers, setup_.generation, &setup_.zones};
    const ModuleRegistry& registry = ModuleRegistry::instance();
    for (const ModuleSpec& m : registry.all())
        if (m.worker_start)
            modules_.set(registry.index_of(m), m.worker_start(ctx));
}

int worker_main(WorkerSetup setup, const std::vector<int>& fds_to_close) {
    for (int fd : fds_to_close)
        ::close(fd);
    // Undo the master's signal setup: default dispositions, nothing blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM})
        signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);

    char who[32];
    snprintf(who, sizeof(who), "worker %d/%u", setup.slot, setup.generation);
    ErrorLog::set_identity(who);

    if (setup.drop_privileges) {
        if (setgroups(setup.groups.size(), setup.groups.data()) != 0 || setgid(setup.gid) != 0 ||
            setuid(setup.uid) != 0) {
            WLOG_ERROR("cannot switch to user %s: %s", setup.user.c_str(), std::strerror(errno));
            return 2;
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        WLOG_WARN("PR_SET_NO_NEW_PRIVS: %s", std::strerror(errno));
    // PR_SET_DUMPABLE stays off after the switch: a worker holds root-opened descriptors
    // (listening sockets, logs) that other processes of the same user must not ptrace into.
    std::string sandbox_warning, sandbox_error;
    if (!enter_sandbox(*setup.config, &sandbox_warning, &sandbox_error)) {
        WLOG_ERROR("%s", sandbox_error.c_str()); // asked for and not applied: do not serve
        return 2;
    }
    if (!sandbox_warning.empty() && setup.slot == 0)
        WLOG_WARN("%s", sandbox_warning.c_str());

    setup.status->pid.store(getpid());
    Worker worker(std::move(setup));
    install_sandbox_probe(worker.loop());
    return worker.run();
}

} // namespace wraith
