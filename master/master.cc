// The master's life: start (config, sockets, pid file, control socket, the first
// generation), signals, reload, log reopening and stop. Worker generations are in
// master/workers.cc, binary upgrade in master/upgrade.cc.
#include "master/master.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <sys/random.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "common/accounts.h"
#include "common/counters.h"
#include "common/log.h"
#include "master/handover.h"
#include "master/notify.h"
#include "master/ocsp_fetcher.h"
#include "worker/channel.h"
#include "worker/quic/tls.h"
#include "worker/tls/context.h"
#include "worker/tls/ocsp.h"

namespace wraith {

namespace {

constexpr double kReadyTimeout = 10.0; // a new generation must be serving within this
constexpr double kStopGrace = 5.0;     // fast stop: then SIGKILL

constexpr std::string_view kStatusZone = kStatusZoneName;
constexpr std::string_view kTicketKeysZone = "tls.ticket_keys";

} // namespace

// Zones every config has. None is handed to a new master on binary upgrade: each master
// writes its own status table, rotates its own ticket keys and fetches its own staples.
std::vector<ZoneSpec> Master::core_zone_specs() {
    return {{std::string(kStatusZone), sizeof(WorkerStatus) * kMaxWorkerStatus, 2,
             [](void* mem, size_t) { new (mem) WorkerStatus[kMaxWorkerStatus]; }, false},
            {std::string(kTicketKeysZone), sizeof(TicketKeys), 1,
             [](void* mem, size_t) { new (mem) TicketKeys(); }, false},
            {std::string(kOcspZone), sizeof(OcspCache), 1,
             [](void* mem, size_t) { new (mem) OcspCache(); }, false},
            // Zeros to start; handed to a new master on binary upgrade, so counts go on.
            {std::string(counters::kZoneName), sizeof(counters::Zone), counters::kZoneVersion,
             nullptr, true}};
}

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
    std::string err;
    std::optional<Handover> handover = Handover::from_env(&err);
    if (!err.empty() || !take_identity(handover, &err)) {
        fprintf(stderr, "wraith: %s\n", err.c_str());
        return 1;
    }
    Diagnostics diag;
    LoadedConfig loaded =
        load_full_config(options_.config_path, diag, ticket_keys_, ocsp_cache_, options_.overrides);
    std::shared_ptr<const Config> config = loaded.config;
    for (const auto& w : diag.warnings())
        fprintf(stderr, "%s\n", w.text().c_str());
    if (!config) {
        for (const auto& d : diag.list())
            fprintf(stderr, "%s\n", d.text().c_str());
        fprintf(stderr, "wraith: configuration has %zu error(s); not starting\n",
                diag.list().size());
        return 1;
    }
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
        !quic_.acquire(*config, static_cast<size_t>(worker_count(*config)), &err))
        return start_failed(err);
    if (options_.daemon && !daemonize(*config))
        return 1;
    pid_path_live_ = pid_path_;
    if (!write_pid_file(&err))
        return start_failed(err);
    if (!open_control_socket(&err)) {
        ::unlink(pid_path_.c_str());
        return start_failed(err);
    }
    signal(SIGPIPE, SIG_IGN);
    started_ = ev_time();

    ocsp_fetcher_ = std::make_unique<OcspFetcher>(loop_, ocsp_cache_);
    if (!start_generation(loaded, &err)) {
        ::unlink(pid_path_.c_str());
        ::unlink(control_path_.c_str());
        return start_failed(err);
    }
    if (handover)
        watch_old_master();
    start_watchers();
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

// Our sockets, QUIC secret and zones: a binary upgrade's handover brings the old master's
// sockets and secret; a fresh start makes its own secret. The master's zones (the status
// table, TLS ticket keys, OCSP staples) exist before any config is loaded: the TLS contexts
// a config builds point into them.
bool Master::take_identity(const std::optional<Handover>& handover, std::string* error) {
    if (handover) {
        adopt_handover(*handover);
    } else if (getrandom(quic_secret_.data(), quic_secret_.size(), 0) !=
               static_cast<ssize_t>(quic_secret_.size())) {
        *error = std::string("getrandom: ") + std::strerror(errno);
        return false;
    }
    if ((handover && !zones_.adopt(handover->zones, error)) ||
        !zones_.prepare(core_zone_specs(), core_zones_, error))
        return false;
    status_table_ = core_zones_.view.get<WorkerStatus>(kStatusZone);
    ticket_keys_ = core_zones_.view.get<TicketKeys>(kTicketKeysZone);
    ocsp_cache_ = core_zones_.view.get<OcspCache>(kOcspZone);
    counters::bind(core_zones_.view.get<counters::Zone>(counters::kZoneName), -1);
    if (handover)
        counters::add(counters::upgrades);
    ticket_keys_->rotate();
    return true;
}

// A start that fails once the error log is open: the log says why, and so does the terminal
// when the log is elsewhere.
int Master::start_failed(const std::string& error) {
    WLOG_ERROR("%s", error.c_str());
    if (ErrorLog::fd() != 2)
        fprintf(stderr, "wraith: %s\n", error.c_str());
    return 1;
}

// `serve --daemon`: the foreground process exits, the master goes on in a new session.
bool Master::daemonize(const Config& config) {
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "wraith: fork: %s\n", std::strerror(errno));
        return false;
    }
    if (pid > 0)
        _exit(0);
    setsid();
    int null = ::open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    if (config.server.error_log != "stderr")
        dup2(null, 2);
    if (null > 2)
        ::close(null);
    ev_loop_fork(loop_);
    return true;
}

// Signals, children, the control socket and the master's timers; started once the first
// generation has forked (a worker must not inherit the master's signal watchers).
void Master::start_watchers() {
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
    ev_init(&announce_timer_, on_announce_timer);
    announce_timer_.data = this;
    // Ticket keys rotate every 12 hours; a ticket stays valid for up to two periods.
    ev_timer_init(&ticket_timer_, on_ticket_rotation, 12 * 3600., 12 * 3600.);
    ticket_timer_.data = this;
    ev_timer_start(loop_, &ticket_timer_);
}

void Master::on_ticket_rotation(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    self->ticket_keys_->rotate();
    WLOG_INFO("rotated TLS session ticket keys");
}

void Master::reload(ControlClient* requester) {
    announce_reload(); // a previous reload still waiting is answered now, not with this one
    if (requester)
        requester->waiting_reload = true;
    if (!stopping_)
        notify::reloading();
    if (stopping_) {
        finish_reloads(false, "error: wraith is stopping\n");
        return;
    }
    Diagnostics diag;
    LoadedConfig loaded =
        load_full_config(options_.config_path, diag, ticket_keys_, ocsp_cache_, options_.overrides);
    std::shared_ptr<const Config> config = loaded.config;
    for (const auto& w : diag.warnings())
        WLOG_WARN("reload: %s", w.text().c_str());
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
    counters::add(counters::reloads);
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
