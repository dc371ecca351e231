// Binary upgrade (USR2, `wraith upgrade`): the old master starts its binary again with its
// sockets, QUIC secret and handover zones (master/handover.h); the new master takes them
// over, and each side watches the other until the old one is stopped.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "master/handover.h"
#include "master/master.h"
#include "master/notify.h"

namespace wraith {

// ---- the old master ------------------------------------------------------------------------

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
        const char* argv[] = {
            self_exe_.c_str(), "serve", "-c", config.c_str(), globals.empty() ? nullptr : "-g",
            globals.c_str(),   nullptr};
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

// The new binary is gone. Before it took over (or after, if it crashed), we serve on.
void Master::upgrade_exited(int status) {
    WLOG_ERROR("binary upgrade: new master (pid %d) %s; this master (pid %d) keeps serving",
               upgrade_pid_, describe_exit(status).c_str(), getpid());
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

// ---- the new master ------------------------------------------------------------------------

// Started by an old master's binary upgrade: its sockets, marker and secret are ours.
void Master::adopt_handover(const Handover& h) {
    listeners_.adopt(h.tcp);
    quic_.adopt(h.marker, h.udp);
    quic_secret_ = h.secret;
    handover_parent_ = h.parent;
    handover_ready_fd_ = h.ready_fd;
    reserved_indices_ = h.used_indices;
    for (uint8_t i : reserved_indices_)
        quic_index_used_[i] = true;
}

// Serving: sockets the old master had and our config does not use close, and a timer
// watches for the old master's end.
void Master::watch_old_master() {
    std::vector<const Config*> in_use = {generations_.back()->config.get()};
    listeners_.release_unused(in_use);
    ev_timer_init(&parent_timer_, on_parent_check, 1., 1.);
    parent_timer_.data = this;
    ev_timer_start(loop_, &parent_timer_);
    WLOG_INFO("binary upgrade: took over the sockets of master pid %d", handover_parent_);
}

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
