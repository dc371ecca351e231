// Worker generations: starting one (its zones, sockets and workers), forking a worker,
// readiness, draining, reaping and respawning with back-off.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/accounts.h"
#include "common/log.h"
#include "common/module.h"
#include "common/quic_cid.h"
#include "common/sanitizer.h"
#include "master/master.h"
#include "master/notify.h"
#include "master/ocsp_fetcher.h"
#include "worker/channel.h"
#include "worker/tls/context.h"
#include "worker/worker.h"

namespace wraith {

namespace {
// How long a reload's answer waits for the old workers to report they stopped accepting.
constexpr double kAnnounceTimeout = 3.0;
} // namespace

std::string describe_exit(int status) {
    if (WIFEXITED(status))
        return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
               strsignal(WTERMSIG(status)) + ")" + (WCOREDUMP(status) ? ", core dumped" : "");
    return "stopped";
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
    int quic_index = -1;
    // What a worker that cannot start took goes back.
    auto give_back = [&] {
        if (quic_index >= 0)
            quic_index_used_[quic_index] = false;
        if (status_index >= 0)
            status_table_[status_index].state.store(WorkerState::free);
        ::close(sv[0]);
        ::close(sv[1]);
        return false;
    };
    if (status_index < 0) {
        WLOG_ERROR("too many worker processes (status table full)");
        return give_back();
    }
    WorkerStatus& st = status_table_[status_index];
    st.slot = slot;
    st.generation = gen.id;
    st.started_unix = time(nullptr);
    st.connections.store(0);
    st.requests.store(0);
    for (auto& n : st.open_by_kind)
        n.store(0);
    for (auto& n : st.exchanges)
        n.store(0);
    st.pid.store(0);

    if (std::any_of(gen.config->listeners.begin(), gen.config->listeners.end(),
                    [](const ListenConfig& l) { return l.quic(); })) {
        quic_index = allocate_quic_index();
        std::string err;
        if (quic_index < 0) {
            WLOG_ERROR("too many worker processes with QUIC sockets");
            return give_back();
        }
        if (!quic_.acquire(*gen.config, quic_index + 1, &err)) {
            WLOG_ERROR("%s", err.c_str());
            return give_back();
        }
    }
    WorkerSetup setup;
    if (!fill_setup(gen, slot, quic_index, st, sv[1], setup))
        return give_back();

    pid_t pid = fork();
    if (pid < 0) {
        WLOG_ERROR("fork: %s", std::strerror(errno));
        return give_back();
    }
    if (pid == 0)
        become_worker(gen, std::move(setup), sv[0]);
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

// What a new worker of `gen` gets: its config, sockets, zones, status entry and, when the
// master runs as root, the account it switches to.
bool Master::fill_setup(Generation& gen, int slot, int quic_index, WorkerStatus& status,
                        int channel_fd, WorkerSetup& setup) {
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
    setup.channel_fd = channel_fd;
    setup.listen_fds = gen.listen_fds;
    setup.zones = gen.zones.view;
    setup.status = &status;
    if (geteuid() != 0)
        return true;
    const ServerConfig& s = gen.config->server;
    std::optional<Account> account = lookup_account(s.user, s.group);
    if (!account) {
        WLOG_ERROR("user \"%s\" or group \"%s\" does not exist", s.user.c_str(), s.group.c_str());
        return false;
    }
    setup.drop_privileges = true;
    setup.user = s.user;
    setup.uid = account->uid;
    setup.gid = account->gid;
    setup.groups = account->groups;
    return true;
}

// The forked child: keeps only what this worker needs and runs it.
void Master::become_worker(Generation& gen, WorkerSetup setup, int master_end) {
    std::vector<int> close_fds = {master_end, control_fd_};
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
    } else if (msg[0] == channel::kDrained) {
        proc->master->maybe_announce_reload();
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
        announce_generation_ = gen.id;
        ev_timer_set(&announce_timer_, kAnnounceTimeout, 0.);
        ev_timer_start(loop_, &announce_timer_);
        maybe_announce_reload();
    }
}

// The answer to a reload waits until the draining workers have closed their listening sockets
// (they report kDrained): until then, the kernel may still hand one of them a new connection.
void Master::maybe_announce_reload() {
    if (announce_generation_ == 0)
        return;
    // A worker marks itself draining in the status table after closing its listening
    // sockets, then sends kDrained: the table says which have, the message says when to look.
    for (auto& g : generations_)
        if (g->draining)
            for (auto& w : g->workers)
                if (status_table_[w->status_index].state.load() != WorkerState::draining)
                    return;
    announce_reload();
}

void Master::announce_reload() {
    if (announce_generation_ == 0)
        return;
    uint32_t id = announce_generation_;
    announce_generation_ = 0;
    ev_timer_stop(loop_, &announce_timer_);
    finish_reloads(true, "reloaded: generation " + std::to_string(id) + " serving\n");
}

void Master::on_announce_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Master*>(w->data);
    WLOG_WARN("reload: a draining worker did not confirm it stopped accepting; answering anyway");
    self->announce_reload();
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
    if (pid == upgrade_pid_)
        return upgrade_exited(status);
    for (size_t g = 0; g < generations_.size(); ++g) {
        Generation& gen = *generations_[g];
        auto it = std::find_if(gen.workers.begin(), gen.workers.end(),
                               [&](const auto& w) { return w->pid == pid; });
        if (it == gen.workers.end())
            continue;
        WorkerProc& w = **it;
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

        if (!expected)
            replace_worker(gen, slot, lived);
        if (gen.draining && gen.workers.empty())
            finish_generation(g);
        update_quic_steering();
        maybe_announce_reload();
        maybe_finish_stop();
        return;
    }
}

// A worker exited that should still serve. One of a reload's new generation that was not yet
// serving fails the reload; any other is respawned, with back-off so a crash loop does not
// spin.
void Master::replace_worker(Generation& gen, int slot, double lived) {
    if (pending_ == &gen && !gen.ready_reported) {
        WLOG_ERROR("reload failed: a new worker exited before serving; keeping generation %u",
                   generations_.size() > 1 ? generations_[generations_.size() - 2]->id : 0);
        pending_ = nullptr;
        ev_timer_stop(loop_, &ready_timer_);
        gen.draining = true;
        send_to_workers(gen, channel::kStop);
        finish_reloads(false, "error: new workers failed to start; see the error log. The "
                              "running configuration was kept.\n");
        return;
    }
    if (lived < 5.0)
        gen.crash_count[slot] = std::min(gen.crash_count[slot] + 1, 10);
    else
        gen.crash_count[slot] = 0;
    double delay =
        gen.crash_count[slot] <= 1 ? 0.0 : std::min(30.0, 0.1 * (1 << gen.crash_count[slot]));
    gen.respawn_at[slot] = ev_time() + delay;
    if (delay > 0)
        WLOG_WARN("respawning worker %d in %.1fs (crashed %d times quickly)", slot, delay,
                  gen.crash_count[slot]);
    schedule_respawn_timer();
}

// A drained generation's last worker is gone: the generation and the sockets only it used go.
void Master::finish_generation(size_t index) {
    WLOG_INFO("generation %u finished", generations_[index]->id);
    generations_.erase(generations_.begin() + static_cast<std::ptrdiff_t>(index));
    std::vector<const Config*> in_use;
    for (auto& g : generations_)
        in_use.push_back(g->config.get());
    listeners_.release_unused(in_use);
    // UDP groups close only when no generation uses them: a socket still open in a draining
    // worker would keep its place in the group and shift new ones.
    quic_.release_unused(in_use);
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

} // namespace wraith
