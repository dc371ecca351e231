#include "master/master.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <optional>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "common/accounts.h"
#include "common/log.h"
#include "common/module.h"
#include "common/quic_cid.h"
#include "common/sanitizer.h"
#include "master/handover.h"
#include "master/notify.h"
#include "master/ocsp_fetcher.h"
#include "worker/channel.h"
#include "worker/quic/tls.h"
#include "worker/tls/context.h"
#include "worker/tls/ocsp.h"
#include "worker/worker.h"

namespace wraith {

namespace {

constexpr double kReadyTimeout = 10.0; // a new generation must be serving within this
constexpr double kStopGrace = 5.0;     // fast stop: then SIGKILL

constexpr std::string_view kStatusZone = "master.status";
constexpr std::string_view kTicketKeysZone = "tls.ticket_keys";
constexpr std::string_view kOcspZone = "tls.ocsp";

// Zones every config has. None is handed to a new master on binary upgrade: each master
// writes its own status table, rotates its own ticket keys and fetches its own staples.
std::vector<ZoneSpec> core_zone_specs() {
    return {{std::string(kStatusZone), sizeof(WorkerStatus) * kMaxWorkerStatus, 1,
             [](void* mem, size_t) { new (mem) WorkerStatus[kMaxWorkerStatus]; }, false},
            {std::string(kTicketKeysZone), sizeof(TicketKeys), 1,
             [](void* mem, size_t) { new (mem) TicketKeys(); }, false},
            {std::string(kOcspZone), sizeof(OcspCache), 1,
             [](void* mem, size_t) { new (mem) OcspCache(); }, false}};
}

std::string describe_exit(int status) {
    if (WIFEXITED(status))
        return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
               strsignal(WTERMSIG(status)) + ")" + (WCOREDUMP(status) ? ", core dumped" : "");
    return "stopped";
}

} // namespace

void mkdir_parent(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return;
    std::string dir = path.substr(0, slash);
    for (size_t i = 1; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') {
            std::string part = dir.substr(0, i);
            if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
                return;
        }
    }
}

LoadedConfig load_full_config(const std::string& path, Diagnostics& diag, TicketKeys* keys,
                              OcspCache* ocsp, std::string_view overrides) {
    LoadedConfig out;
    auto config = load_config(path, diag, overrides);
    if (!config)
        return out;
    bool failed = false;
    auto tls = TlsContexts::build(*config, diag, keys, ocsp, &failed);
    auto quic_tls = quic::TlsContext::build(*config, diag, &failed);
    if (failed)
        return out;
    out.config = std::move(config);
    out.tls = std::move(tls);
    out.quic_tls = std::move(quic_tls);
    return out;
}

Master::Master(MasterOptions options)
    : options_(std::move(options)), loop_(ev_default_loop(EVFLAG_AUTO)) {}

Master::~Master() = default;

int Master::worker_count(const Config& config) const {
    if (config.server.workers > 0)
        return config.server.workers;
    unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
}

int Master::allocate_status() {
    for (int i = 0; i < kMaxWorkerStatus; ++i) {
        WorkerState expected = WorkerState::free;
        if (status_table_[i].state.compare_exchange_strong(expected, WorkerState::starting))
            return i;
    }
    return -1;
}

// Log files are opened by the master (as root) so they exist with the right owner; workers
// (unprivileged) then open them again themselves, also when reopening on USR1.
void Master::prepare_log_files(const Config& config) {
    std::vector<std::string> paths;
    if (config.server.error_log != "stderr" && config.server.error_log != "stdout")
        paths.push_back(config.server.error_log);
    auto add = [&](const AccessLogConfig& a) {
        if (!a.path.empty() && a.path != "off" && a.path != "stdout" && a.path != "stderr")
            paths.push_back(a.path);
    };
    add(config.access_log);
    for (const auto& site : config.sites)
        add(site->access_log);
    std::optional<Account> account;
    if (geteuid() == 0)
        account = lookup_account(config.server.user, config.server.group);
    for (const auto& p : paths) {
        mkdir_parent(p);
        int fd = ::open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            WLOG_ERROR("cannot open log %s: %s", p.c_str(), std::strerror(errno));
            continue;
        }
        if (account && fchown(fd, account->uid, account->gid) != 0)
            WLOG_WARN("cannot chown %s to %s: %s", p.c_str(), config.server.user.c_str(),
                      std::strerror(errno));
        ::close(fd);
    }
}

bool Master::write_pid_file(std::string* error) {
    mkdir_parent(pid_path_);
    // Refuse to start over a live master.
    if (FILE* f = fopen(pid_path_.c_str(), "r")) {
        long pid = 0;
        if (fscanf(f, "%ld", &pid) == 1 && pid > 0 && pid != getpid() &&
            (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) {
            fclose(f);
            *error = "another wraith (pid " + std::to_string(pid) + ") is running with pid file " +
                     pid_path_ + "; stop it first or use another server.pid_file";
            return false;
        }
        fclose(f);
    }
    std::string tmp = pid_path_ + ".tmp";
    FILE* f = fopen(tmp.c_str(), "w");
    if (!f) {
        *error = "cannot write pid file " + pid_path_ + ": " + std::strerror(errno);
        return false;
    }
    fprintf(f, "%d\n", getpid());
    fclose(f);
    if (rename(tmp.c_str(), pid_path_.c_str()) != 0) {
        *error = "cannot write pid file " + pid_path_ + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

int Master::run() {
    ErrorLog::set_identity("master");
    char exe[4096];
    ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (exe_len > 0)
        self_exe_.assign(exe, static_cast<size_t>(exe_len));
    std::string handover_error;
    std::optional<Handover> handover = Handover::from_env(&handover_error);
    if (!handover_error.empty()) {
        fprintf(stderr, "wraith: %s\n", handover_error.c_str());
        return 1;
    }
    if (handover) {
        // Started by an old master's binary upgrade: its sockets, marker and secret are ours.
        listeners_.adopt(handover->tcp);
        quic_.adopt(handover->marker, handover->udp);
        quic_secret_ = handover->secret;
        handover_parent_ = handover->parent;
        handover_ready_fd_ = handover->ready_fd;
        reserved_indices_ = handover->used_indices;
        for (uint8_t i : reserved_indices_)
            quic_index_used_[i] = true;
    } else if (getrandom(quic_secret_.data(), quic_secret_.size(), 0) !=
               (ssize_t)quic_secret_.size()) {
        fprintf(stderr, "wraith: getrandom: %s\n", std::strerror(errno));
        return 1;
    }
    // The master's own zones (the status table, TLS ticket keys, OCSP staples) exist before
    // any config is loaded: the TLS contexts a config builds point into them.
    std::string zone_error;
    if ((handover && !zones_.adopt(handover->zones, &zone_error)) ||
        !zones_.prepare(core_zone_specs(), core_zones_, &zone_error)) {
        fprintf(stderr, "wraith: %s\n", zone_error.c_str());
        return 1;
    }
    status_table_ = core_zones_.view.get<WorkerStatus>(kStatusZone);
    ticket_keys_ = core_zones_.view.get<TicketKeys>(kTicketKeysZone);
    ocsp_cache_ = core_zones_.view.get<OcspCache>(kOcspZone);
    ticket_keys_->rotate();
    Diagnostics diag;
    LoadedConfig loaded = load_full_config(options_.config_path, diag, ticket_keys_, ocsp_cache_,
                                           options_.overrides);
    std::shared_ptr<const Config> config = loaded.config;
    if (!config) {
        for (const auto& d : diag.list())
            fprintf(stderr, "%s\n", d.text().c_str());
        fprintf(stderr, "wraith: configuration has %zu error(s); not starting\n",
                diag.list().size());
        return 1;
    }
    std::string err;
    auto level = log_level_from(config->server.log_level).value_or(LogLevel::info);
    prepare_log_files(*config);
    if (!ErrorLog::open(config->server.error_log, level, &err)) {
        fprintf(stderr, "wraith: %s\n", err.c_str());
        return 1;
    }
    pid_path_ = config->server.pid_file;
    control_path_ = config->server.control_socket;

    // Bind before detaching, so `serve --daemon` fails in the foreground when a port is taken.
    // start_generation() below reuses these sockets.
    if ((listeners_.acquire(*config, &err).empty() && !config->listeners.empty()) ||
        !quic_.acquire(*config, static_cast<size_t>(worker_count(*config)), &err)) {
        WLOG_ERROR("%s", err.c_str());
        if (ErrorLog::fd() != 2)
            fprintf(stderr, "wraith: %s\n", err.c_str());
        return 1;
    }

    if (options_.daemon) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "wraith: fork: %s\n", std::strerror(errno));
            return 1;
        }
        if (pid > 0)
            _exit(0);
        setsid();
        int null = ::open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        if (config->server.error_log != "stderr")
            dup2(null, 2);
        if (null > 2)
            ::close(null);
        ev_loop_fork(loop_);
    }

    pid_path_live_ = pid_path_;
    if (!write_pid_file(&err)) {
        WLOG_ERROR("%s", err.c_str());
        if (ErrorLog::fd() != 2)
            fprintf(stderr, "wraith: %s\n", err.c_str());
        return 1;
    }
    if (!open_control_socket(&err)) {
        WLOG_ERROR("%s", err.c_str());
        if (ErrorLog::fd() != 2)
            fprintf(stderr, "wraith: %s\n", err.c_str());
        ::unlink(pid_path_.c_str());
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    started_ = ev_time();

    ocsp_fetcher_ = std::make_unique<OcspFetcher>(loop_, ocsp_cache_);
    if (!start_generation(loaded, &err)) {
        WLOG_ERROR("%s", err.c_str());
        if (ErrorLog::fd() != 2)
            fprintf(stderr, "wraith: %s\n", err.c_str());
        ::unlink(pid_path_.c_str());
        ::unlink(control_path_.c_str());
        return 1;
    }

    if (handover) {
        std::vector<const Config*> in_use = {generations_.back()->config.get()};
        listeners_.release_unused(in_use);
        ev_timer_init(&parent_timer_, on_parent_check, 1., 1.);
        parent_timer_.data = this;
        ev_timer_start(loop_, &parent_timer_);
        WLOG_INFO("binary upgrade: took over the sockets of master pid %d", handover_parent_);
    }

    signals_.resize(6);
    int i = 0;
    for (int sig : {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2}) {
        ev_signal_init(&signals_[i], on_signal, sig);
        signals_[i].data = this;
        ev_signal_start(loop_, &signals_[i]);
        ++i;
    }
    ev_child_init(&child_watcher_, on_child, 0, 0);
    child_watcher_.data = this;
    ev_child_start(loop_, &child_watcher_);
    ev_io_init(&control_watcher_, on_control_accept, control_fd_, EV_READ);
    control_watcher_.data = this;
    ev_io_start(loop_, &control_watcher_);
    ev_init(&respawn_timer_, on_respawn_timer);
    respawn_timer_.data = this;
    ev_init(&stop_timer_, on_stop_timer);
    stop_timer_.data = this;
    ev_init(&ready_timer_, on_ready_timer);
    ready_timer_.data = this;
    // Ticket keys rotate every 12 hours; a ticket stays valid for up to two periods.
    ev_timer_init(&ticket_timer_, on_ticket_rotation, 12 * 3600., 12 * 3600.);
    ticket_timer_.data = this;
    ev_timer_start(loop_, &ticket_timer_);

    WLOG_INFO("wraith %s started: pid %d, config %s, %d workers", WRAITH_VERSION, getpid(),
              options_.config_path.c_str(), worker_count(*config));
    ev_run(loop_, 0);

    ::unlink(pid_path_live_.c_str());
    struct stat cst;
    if (stat(control_path_.c_str(), &cst) == 0 && cst.st_ino == control_ino_)
        ::unlink(control_path_.c_str()); // not when a new master took the path over
    ::close(control_fd_);
    WLOG_INFO("exiting");
    return exit_code_;
}

void Master::on_ticket_rotation(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    self->ticket_keys_->rotate();
    WLOG_INFO("rotated TLS session ticket keys");
}

bool Master::start_generation(LoadedConfig loaded, std::string* error) {
    std::vector<int> fds = listeners_.acquire(*loaded.config, error);
    if (fds.empty() && !loaded.config->listeners.empty())
        return false;
    // Enough UDP sockets for every index the new workers may take (lowest free first).
    size_t quic_needed = static_cast<size_t>(worker_count(*loaded.config));
    for (bool used : quic_index_used_)
        quic_needed += used;
    if (!quic_.acquire(*loaded.config, quic_needed, error))
        return false;
    auto gen = std::make_unique<Generation>();
    // The zones this config needs: the master's own, and the modules' (kept when unchanged).
    std::vector<ZoneSpec> zone_specs = core_zone_specs();
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.zones)
            m.zones(*loaded.config, zone_specs);
    if (!zones_.prepare(zone_specs, gen->zones, error))
        return false;
    zones_.forget_inherited(); // handed-over zones this config does not use
    gen->id = next_generation_++;
    gen->config = std::move(loaded.config);
    gen->tls = std::move(loaded.tls);
    gen->quic_tls = std::move(loaded.quic_tls);
    if (ocsp_fetcher_)
        ocsp_fetcher_->set_jobs(gen->tls ? gen->tls->ocsp_jobs() : std::vector<OcspJob>{});
    gen->listen_fds = std::move(fds);
    int n = worker_count(*gen->config);
    gen->crash_count.assign(n, 0);
    gen->respawn_at.assign(n, 0);
    Generation* g = gen.get();
    generations_.push_back(std::move(gen));
    prepare_log_files(*g->config);
    for (int slot = 0; slot < n; ++slot) {
        if (!spawn(*g, slot)) {
            *error = "cannot start workers: " + std::string(std::strerror(errno));
            return false;
        }
    }
    update_quic_steering();
    return true;
}

int Master::allocate_quic_index() {
    for (size_t i = 0; i < quic_cid::kMaxSockets; ++i) {
        if (!quic_index_used_[i]) {
            quic_index_used_[i] = true;
            return static_cast<int>(i);
        }
    }
    return -1;
}

void Master::update_quic_steering() {
    if (upgraded_)
        return; // the new master steers now; our workers keep their own connections
    // The serving generation: the newest one that is neither draining nor a reload still
    // starting. New connections go to its workers only; the others keep their own.
    for (auto it = generations_.rbegin(); it != generations_.rend(); ++it) {
        Generation& g = **it;
        if (g.draining || &g == pending_)
            continue;
        std::vector<uint8_t> serving, live;
        for (auto& w : g.workers)
            if (w->quic_index >= 0)
                serving.push_back(static_cast<uint8_t>(w->quic_index));
        // Every index in use: our workers of every generation, and an old master's (binary
        // upgrade) while it lives.
        for (size_t i = 0; i < quic_index_used_.size(); ++i)
            if (quic_index_used_[i])
                live.push_back(static_cast<uint8_t>(i));
        quic_.steer(serving, live);
        return;
    }
}

bool Master::spawn(Generation& gen, int slot) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        WLOG_ERROR("socketpair: %s", std::strerror(errno));
        return false;
    }
    int status_index = allocate_status();
    if (status_index < 0) {
        WLOG_ERROR("too many worker processes (status table full)");
        ::close(sv[0]);
        ::close(sv[1]);
        return false;
    }
    WorkerStatus& st = status_table_[status_index];
    st.slot = slot;
    st.generation = gen.id;
    st.started_unix = time(nullptr);
    st.connections.store(0);
    st.requests.store(0);
    st.pid.store(0);

    int quic_index = -1;
    if (std::any_of(gen.config->listeners.begin(), gen.config->listeners.end(),
                    [](const ListenConfig& l) { return l.quic(); })) {
        std::string err;
        quic_index = allocate_quic_index();
        if (quic_index < 0 || !quic_.acquire(*gen.config, quic_index + 1, &err)) {
            WLOG_ERROR("%s", quic_index < 0 ? "too many worker processes with QUIC sockets"
                                            : err.c_str());
            if (quic_index >= 0)
                quic_index_used_[quic_index] = false;
            ::close(sv[0]);
            ::close(sv[1]);
            st.state.store(WorkerState::free);
            return false;
        }
    }

    WorkerSetup setup;
    setup.config = gen.config;
    setup.quic_index = quic_index;
    setup.quic_marker = quic_.marker();
    setup.quic_secret = quic_secret_;
    if (quic_index >= 0)
        setup.quic_fds = quic_.fds_for(*gen.config, static_cast<uint8_t>(quic_index));
    setup.tls = gen.tls;
    setup.quic_tls = gen.quic_tls;
    setup.slot = slot;
    setup.workers = worker_count(*gen.config);
    setup.generation = gen.id;
    setup.channel_fd = sv[1];
    setup.listen_fds = gen.listen_fds;
    setup.zones = gen.zones.view;
    setup.status = &st;
    if (geteuid() == 0) {
        const ServerConfig& s = gen.config->server;
        std::optional<Account> account = lookup_account(s.user, s.group);
        if (!account) {
            WLOG_ERROR("user \"%s\" or group \"%s\" does not exist", s.user.c_str(),
                       s.group.c_str());
            if (quic_index >= 0)
                quic_index_used_[quic_index] = false;
            ::close(sv[0]);
            ::close(sv[1]);
            st.state.store(WorkerState::free);
            return false;
        }
        setup.drop_privileges = true;
        setup.user = s.user;
        setup.uid = account->uid;
        setup.gid = account->gid;
        setup.groups = account->groups;
    }

    pid_t pid = fork();
    if (pid < 0) {
        WLOG_ERROR("fork: %s", std::strerror(errno));
        if (quic_index >= 0)
            quic_index_used_[quic_index] = false;
        ::close(sv[0]);
        ::close(sv[1]);
        st.state.store(WorkerState::free);
        return false;
    }
    if (pid == 0) {
        // Child: keep only what this worker needs.
        std::vector<int> close_fds = {sv[0], control_fd_};
        for (auto& c : clients_)
            close_fds.push_back(c->fd);
        for (auto& g : generations_)
            for (auto& w : g->workers)
                close_fds.push_back(w->channel_fd);
        for (int fd : listeners_.all_fds())
            if (std::find(gen.listen_fds.begin(), gen.listen_fds.end(), fd) == gen.listen_fds.end())
                close_fds.push_back(fd);
        for (int fd : quic_.all_fds())
            if (std::find(setup.quic_fds.begin(), setup.quic_fds.end(), fd) == setup.quic_fds.end())
                close_fds.push_back(fd);
        for (int fd : zones_.fds())
            close_fds.push_back(fd);
        // The master's loop is not the worker's: detach its signal and child watchers (libev
        // binds a signal to one loop per process) and drop it.
        for (auto& sw : signals_)
            if (ev_is_active(&sw))
                ev_signal_stop(loop_, &sw);
        if (ev_is_active(&child_watcher_))
            ev_child_stop(loop_, &child_watcher_);
        ev_loop_destroy(loop_);
        int rc = worker_main(std::move(setup), close_fds);
        leak_check_before_exit();
        _exit(rc);
    }
    ::close(sv[1]);
    auto w = std::make_unique<WorkerProc>();
    w->pid = pid;
    w->slot = slot;
    w->channel_fd = sv[0];
    w->status_index = status_index;
    w->quic_index = quic_index;
    w->started = ev_time();
    w->master = this;
    w->gen = &gen;
    ev_io_init(&w->channel_watcher, on_worker_channel, sv[0], EV_READ);
    w->channel_watcher.data = w.get();
    ev_io_start(loop_, &w->channel_watcher);
    st.pid.store(pid);
    WLOG_INFO("started worker %d/%u, pid %d", slot, gen.id, pid);
    gen.workers.push_back(std::move(w));
    return true;
}

void Master::on_worker_channel(struct ev_loop*, ev_io* w, int) {
    auto* proc = static_cast<WorkerProc*>(w->data);
    char msg[16];
    ssize_t n = ::recv(w->fd, msg, sizeof(msg), 0);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            ev_io_stop(proc->master->loop_, w); // the worker exited; reap() cleans up
        return;
    }
    if (msg[0] == channel::kReady) {
        proc->ready = true;
        proc->master->check_generation_ready(*proc->gen);
    }
}

void Master::check_generation_ready(Generation& gen) {
    if (gen.ready_reported || gen.draining)
        return;
    for (auto& w : gen.workers)
        if (!w->ready)
            return;
    if (static_cast<int>(gen.workers.size()) < worker_count(*gen.config))
        return;
    gen.ready_reported = true;
    if (generations_.size() == 1 && !pending_) {
        notify::ready("serving generation " + std::to_string(gen.id)); // the first start
        if (handover_ready_fd_ >= 0) {
            // Tell the old master its new binary serves.
            ssize_t w = ::write(handover_ready_fd_, "R", 1);
            (void)w;
            ::close(handover_ready_fd_);
            handover_ready_fd_ = -1;
        }
    }
    if (pending_ == &gen) {
        pending_ = nullptr;
        ev_timer_stop(loop_, &ready_timer_);
        // The new generation serves: the older ones drain. Sockets only they used close now
        // (the draining workers close their copies), so a removed address refuses new
        // connections at once instead of queueing them for nobody.
        for (auto& g : generations_)
            if (g.get() != &gen && !g->draining)
                drain_generation(*g);
        std::vector<const Config*> in_use;
        for (auto& g : generations_)
            if (!g->draining)
                in_use.push_back(g->config.get());
        listeners_.release_unused(in_use);
        update_quic_steering();
        WLOG_INFO("reload complete: generation %u serving", gen.id);
        finish_reloads(true, "reloaded: generation " + std::to_string(gen.id) + " serving\n");
    }
}

void Master::send_to_workers(Generation& gen, char msg) {
    for (auto& w : gen.workers)
        if (::send(w->channel_fd, &msg, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            WLOG_WARN("cannot message worker pid %d: %s", w->pid, std::strerror(errno));
}

void Master::drain_generation(Generation& gen) {
    if (gen.draining)
        return;
    gen.draining = true;
    WLOG_INFO("draining generation %u (%zu workers)", gen.id, gen.workers.size());
    send_to_workers(gen, channel::kDrain);
    std::fill(gen.respawn_at.begin(), gen.respawn_at.end(), 0);
}

void Master::on_child(struct ev_loop*, ev_child* w, int) {
    static_cast<Master*>(w->data)->reap();
}

void Master::reap() {
    // libev reaped one child for us and reports it in the watcher.
    pid_t pid = child_watcher_.rpid;
    int status = child_watcher_.rstatus;
    if (pid == upgrade_pid_) {
        // The new binary is gone. Before it took over (or after, if it crashed), we serve on.
        WLOG_ERROR("binary upgrade: new master (pid %d) %s; this master (pid %d) keeps serving",
                   pid, describe_exit(status).c_str(), getpid());
        upgrade_pid_ = 0;
        upgraded_ = false;
        if (ev_is_active(&upgrade_watcher_)) {
            ev_io_stop(loop_, &upgrade_watcher_);
            ::close(upgrade_watcher_.fd);
        }
        if (pid_path_live_ != pid_path_ && rename(pid_path_live_.c_str(), pid_path_.c_str()) == 0)
            pid_path_live_ = pid_path_;
        std::vector<ControlClient*> waiting;
        for (auto& c : clients_)
            if (c->waiting_upgrade)
                waiting.push_back(c.get());
        for (ControlClient* c : waiting)
            answer(c,
                   "error: the new binary exited (" + describe_exit(status) +
                       ") before serving; see the error log. The running master (pid " +
                       std::to_string(getpid()) + ") keeps serving.\n",
                   true);
        update_quic_steering();
        return;
    }
    for (auto git = generations_.begin(); git != generations_.end(); ++git) {
        Generation& gen = **git;
        for (auto it = gen.workers.begin(); it != gen.workers.end(); ++it) {
            WorkerProc& w = **it;
            if (w.pid != pid)
                continue;
            bool expected = gen.draining || stopping_;
            bool crashed =
                WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM && WTERMSIG(status) != SIGKILL;
            if (expected && !crashed)
                WLOG_INFO("worker %d/%u (pid %d) %s", w.slot, gen.id, pid,
                          describe_exit(status).c_str());
            else
                WLOG_ERROR("worker %d/%u (pid %d) %s", w.slot, gen.id, pid,
                           describe_exit(status).c_str());
            ev_io_stop(loop_, &w.channel_watcher);
            ::close(w.channel_fd);
            WorkerStatus& st = status_table_[w.status_index];
            st.pid.store(0);
            st.state.store(WorkerState::free);
            if (w.quic_index >= 0)
                quic_index_used_[w.quic_index] = false;
            int slot = w.slot;
            double lived = ev_time() - w.started;
            gen.workers.erase(it);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                for (const ModuleSpec& m : ModuleRegistry::instance().all())
                    if (m.worker_lost)
                        m.worker_lost(gen.zones.view); // what it held in shared memory

            if (!expected) {
                if (pending_ == &gen && !gen.ready_reported) {
                    // A reload's new worker died before serving: the reload failed.
                    WLOG_ERROR("reload failed: a new worker exited before serving; keeping "
                               "generation %u",
                               generations_.size() > 1 ? generations_[generations_.size() - 2]->id
                                                       : 0);
                    pending_ = nullptr;
                    ev_timer_stop(loop_, &ready_timer_);
                    gen.draining = true;
                    send_to_workers(gen, channel::kStop);
                    finish_reloads(false, "error: new workers failed to start; see the error "
                                          "log. The running configuration was kept.\n");
                } else {
                    // Respawn with back-off so a crash loop does not spin.
                    if (lived < 5.0)
                        gen.crash_count[slot] = std::min(gen.crash_count[slot] + 1, 10);
                    else
                        gen.crash_count[slot] = 0;
                    double delay = gen.crash_count[slot] <= 1
                                       ? 0.0
                                       : std::min(30.0, 0.1 * (1 << gen.crash_count[slot]));
                    gen.respawn_at[slot] = ev_time() + delay;
                    if (delay > 0)
                        WLOG_WARN("respawning worker %d in %.1fs (crashed %d times quickly)", slot,
                                  delay, gen.crash_count[slot]);
                    schedule_respawn_timer();
                }
            }
            if (gen.draining && gen.workers.empty()) {
                WLOG_INFO("generation %u finished", gen.id);
                generations_.erase(git);
                std::vector<const Config*> in_use;
                for (auto& g : generations_)
                    in_use.push_back(g->config.get());
                listeners_.release_unused(in_use);
                // UDP groups close only when no generation uses them: a socket still open in
                // a draining worker would keep its place in the group and shift new ones.
                quic_.release_unused(in_use);
            }
            update_quic_steering();
            maybe_finish_stop();
            return;
        }
    }
}

void Master::schedule_respawn_timer() {
    double next = 0;
    for (auto& g : generations_)
        for (double t : g->respawn_at)
            if (t > 0 && (next == 0 || t < next))
                next = t;
    ev_timer_stop(loop_, &respawn_timer_);
    if (next > 0) {
        ev_timer_set(&respawn_timer_, std::max(0.0, next - ev_time()), 0.);
        ev_timer_start(loop_, &respawn_timer_);
    }
}

void Master::on_respawn_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    double now = ev_time();
    for (auto& g : self->generations_) {
        for (size_t slot = 0; slot < g->respawn_at.size(); ++slot) {
            if (g->respawn_at[slot] > 0 && g->respawn_at[slot] <= now + 0.001) {
                g->respawn_at[slot] = 0;
                if (!g->draining && !self->stopping_ && !self->spawn(*g, static_cast<int>(slot)))
                    g->respawn_at[slot] = now + 1.0;
            }
        }
    }
    self->update_quic_steering();
    self->schedule_respawn_timer();
}

void Master::reload(ControlClient* requester) {
    if (requester)
        requester->waiting_reload = true;
    if (!stopping_)
        notify::reloading();
    if (stopping_) {
        finish_reloads(false, "error: wraith is stopping\n");
        return;
    }
    Diagnostics diag;
    LoadedConfig loaded = load_full_config(options_.config_path, diag, ticket_keys_, ocsp_cache_,
                                           options_.overrides);
    std::shared_ptr<const Config> config = loaded.config;
    if (!config) {
        std::string text;
        for (const auto& d : diag.list()) {
            WLOG_ERROR("reload: %s", d.text().c_str());
            text += d.text() + "\n";
        }
        WLOG_ERROR("reload refused: configuration has %zu error(s); generation %u keeps serving",
                   diag.list().size(), current() ? current()->id : 0);
        finish_reloads(false, text + "error: configuration has errors; the running configuration "
                                     "was kept\n");
        return;
    }
    const ServerConfig& now = current()->config->server;
    if (config->server.pid_file != now.pid_file ||
        config->server.control_socket != now.control_socket) {
        WLOG_ERROR("reload refused: pid_file and control_socket changes need a restart");
        finish_reloads(false, "error: server.pid_file and server.control_socket cannot change "
                              "on reload; restart wraith to change them\n");
        return;
    }
    if (pending_) {
        // A reload is already starting workers: supersede it.
        drain_generation(*pending_);
        pending_ = nullptr;
    }
    auto level = log_level_from(config->server.log_level).value_or(LogLevel::info);
    std::string err;
    if (config->server.error_log != ErrorLog::path()) {
        prepare_log_files(*config);
        if (!ErrorLog::open(config->server.error_log, level, &err))
            WLOG_ERROR("%s", err.c_str());
    }
    ErrorLog::set_level(level);
    if (!start_generation(loaded, &err)) {
        WLOG_ERROR("reload failed: %s", err.c_str());
        // Drop the half-started generation; the old one keeps serving.
        Generation* g = current();
        if (g && g->config == config) {
            g->draining = true;
            send_to_workers(*g, channel::kStop);
            if (g->workers.empty())
                generations_.pop_back();
        }
        finish_reloads(false, "error: " + err + "\n");
        return;
    }
    pending_ = current();
    WLOG_INFO("reloading: starting generation %u", pending_->id);
    ev_timer_set(&ready_timer_, kReadyTimeout, 0.);
    ev_timer_start(loop_, &ready_timer_);
}

void Master::on_ready_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    if (!self->pending_)
        return;
    WLOG_ERROR("reload failed: generation %u did not become ready in time", self->pending_->id);
    self->pending_->draining = true;
    self->send_to_workers(*self->pending_, channel::kStop);
    self->pending_ = nullptr;
    self->finish_reloads(false, "error: new workers did not start in time; the running "
                                "configuration was kept\n");
}

void Master::reopen_logs() {
    WLOG_INFO("reopening logs");
    for (auto& g : generations_)
        prepare_log_files(*g->config);
    std::string err;
    if (!ErrorLog::reopen(&err))
        WLOG_ERROR("%s", err.c_str());
    for (auto& g : generations_)
        send_to_workers(*g, channel::kReopen);
}

void Master::begin_stop(bool graceful) {
    if (stopping_ && (graceful || !graceful_))
        return; // already stopping at least this fast
    stopping_ = true;
    graceful_ = graceful;
    notify::stopping();
    WLOG_INFO("%s stop", graceful ? "graceful" : "fast");
    ev_io_stop(loop_, &control_watcher_);
    for (auto& g : generations_) {
        if (graceful) {
            g->draining = true;
            send_to_workers(*g, channel::kDrain);
        } else {
            for (auto& w : g->workers)
                kill(w->pid, SIGTERM);
        }
    }
    double grace = graceful ? current_drain_timeout() + kStopGrace : kStopGrace;
    ev_timer_stop(loop_, &stop_timer_);
    ev_timer_set(&stop_timer_, grace, 0.);
    ev_timer_start(loop_, &stop_timer_);
    maybe_finish_stop();
}

double Master::current_drain_timeout() {
    double t = 0;
    for (auto& g : generations_)
        t = std::max(t, g->config->server.drain_timeout.count() / 1000.0);
    return t;
}

void Master::on_stop_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    for (auto& g : self->generations_)
        for (auto& wp : g->workers) {
            WLOG_WARN("worker pid %d did not exit in time; killing it", wp->pid);
            kill(wp->pid, SIGKILL);
        }
}

void Master::maybe_finish_stop() {
    if (!stopping_)
        return;
    for (auto& g : generations_)
        if (!g->workers.empty())
            return;
    ev_timer_stop(loop_, &stop_timer_);
    ev_break(loop_, EVBREAK_ALL);
}

void Master::on_signal(struct ev_loop*, ev_signal* w, int) {
    auto* self = static_cast<Master*>(w->data);
    switch (w->signum) {
    case SIGHUP:
        WLOG_INFO("SIGHUP: reloading configuration");
        self->reload(nullptr);
        break;
    case SIGQUIT:
        self->begin_stop(true);
        break;
    case SIGTERM:
    case SIGINT:
        self->begin_stop(false);
        break;
    case SIGUSR1:
        self->reopen_logs();
        break;
    case SIGUSR2: {
        std::string err;
        if (!self->start_upgrade(nullptr, &err))
            WLOG_ERROR("binary upgrade: %s", err.c_str());
        break;
    }
    }
}

} // namespace wraith

namespace wraith {

bool Master::start_upgrade(ControlClient* requester, std::string* error) {
    if (upgrade_pid_) {
        *error =
            "an upgrade is already running (new master pid " + std::to_string(upgrade_pid_) + ")";
        return false;
    }
    if (stopping_) {
        *error = "wraith is stopping";
        return false;
    }
    if (self_exe_.empty()) {
        *error = "cannot tell which binary to start (/proc/self/exe unreadable)";
        return false;
    }
    if (access(self_exe_.c_str(), X_OK) != 0) {
        *error = "cannot execute " + self_exe_ + ": " + std::strerror(errno);
        return false;
    }
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) {
        *error = std::string("pipe: ") + std::strerror(errno);
        return false;
    }
    Handover h;
    h.parent = getpid();
    h.marker = quic_.marker();
    h.secret = quic_secret_;
    for (size_t i = 0; i < quic_index_used_.size(); ++i)
        if (quic_index_used_[i])
            h.used_indices.push_back(static_cast<uint8_t>(i));
    h.tcp = listeners_.by_key();
    h.udp = quic_.groups();
    h.zones = zones_.handover();
    h.ready_fd = ready[1];
    std::string env = h.encode();
    std::string old_pid_path = pid_path_ + ".oldbin";
    if (rename(pid_path_.c_str(), old_pid_path.c_str()) != 0) {
        *error = "cannot rename " + pid_path_ + ": " + std::strerror(errno);
        ::close(ready[0]);
        ::close(ready[1]);
        return false;
    }
    pid_path_live_ = old_pid_path;
    pid_t pid = fork();
    if (pid < 0) {
        *error = std::string("fork: ") + std::strerror(errno);
        rename(old_pid_path.c_str(), pid_path_.c_str());
        pid_path_live_ = pid_path_;
        ::close(ready[0]);
        ::close(ready[1]);
        return false;
    }
    if (pid == 0) {
        // The new binary inherits exactly the sockets it is told about, and the ready pipe.
        for (int fd : h.all_fds())
            fcntl(fd, F_SETFD, 0);
        fcntl(ready[1], F_SETFD, 0);
        setenv(Handover::kEnv, env.c_str(), 1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGCHLD})
            signal(sig, SIG_DFL);
        std::string config = options_.config_path;
        std::string globals = options_.globals;
        const char* argv[] = {self_exe_.c_str(), "serve", "-c", config.c_str(),
                              globals.empty() ? nullptr : "-g", globals.c_str(), nullptr};
        execv(self_exe_.c_str(), const_cast<char* const*>(argv));
        fprintf(stderr, "wraith: binary upgrade: cannot execute %s: %s\n", self_exe_.c_str(),
                std::strerror(errno));
        _exit(127);
    }
    ::close(ready[1]);
    upgrade_pid_ = pid;
    upgraded_ = true;
    if (requester)
        requester->waiting_upgrade = true;
    ev_io_init(&upgrade_watcher_, on_upgrade_ready, ready[0], EV_READ);
    upgrade_watcher_.data = this;
    ev_io_start(loop_, &upgrade_watcher_);
    WLOG_INFO("binary upgrade: started %s as new master pid %d; this master's pid file is now %s",
              self_exe_.c_str(), pid, old_pid_path.c_str());
    return true;
}

void Master::on_upgrade_ready(struct ev_loop* loop, ev_io* w, int) {
    auto* self = static_cast<Master*>(w->data);
    char c = 0;
    ssize_t n = ::read(w->fd, &c, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, w);
    ::close(w->fd);
    if (n != 1 || c != 'R')
        return; // it exited before serving: reap() says so
    WLOG_INFO("binary upgrade: new master pid %d serves; send QUIT to this master (pid %d) to "
              "drain it",
              self->upgrade_pid_, getpid());
    // Under systemd the service now follows the new master.
    notify::main_pid(self->upgrade_pid_,
                     "upgraded: new master " + std::to_string(self->upgrade_pid_) + " serving");
    std::vector<ControlClient*> waiting;
    for (auto& cl : self->clients_)
        if (cl->waiting_upgrade)
            waiting.push_back(cl.get());
    for (ControlClient* cl : waiting)
        self->answer(cl,
                     "upgraded: new master pid " + std::to_string(self->upgrade_pid_) +
                         " serving; the old master (pid " + std::to_string(getpid()) +
                         ") still serves: stop it with kill -QUIT " + std::to_string(getpid()) +
                         "\n",
                     true);
}

// New side: once the old master is gone, its socket indices are free again.
void Master::on_parent_check(struct ev_loop* loop, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    if (getppid() == self->handover_parent_ && kill(self->handover_parent_, 0) == 0)
        return;
    ev_timer_stop(loop, w);
    for (uint8_t i : self->reserved_indices_)
        self->quic_index_used_[i] = false;
    self->reserved_indices_.clear();
    WLOG_INFO("binary upgrade: the old master (pid %d) is gone", self->handover_parent_);
    self->handover_parent_ = 0;
    self->update_quic_steering(); // its indices are no longer live
}

} // namespace wraith
