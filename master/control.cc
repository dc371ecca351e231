// The master's control socket: `wraith status`, `reload`, `stop` connect here, send one
// command line and read the answer (see docs/decisions.md for the protocol).
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/counters.h"
#include "common/json.h"
#include "common/metrics_text.h"
#include "common/log.h"
#include "master/control_client.h"
#include "master/master.h"
#include "master/notify.h"

namespace wraith {

bool Master::open_control_socket(std::string* error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (control_path_.size() >= sizeof(addr.sun_path)) {
        *error = "server.control_socket path is too long (max " +
                 std::to_string(sizeof(addr.sun_path) - 1) + " bytes): " + control_path_;
        return false;
    }
    mkdir_parent(control_path_);
    std::memcpy(addr.sun_path, control_path_.c_str(), control_path_.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    // A socket file left by a crashed master is stale when nobody answers on it. After a
    // binary upgrade the old master still answers there: the path is ours now.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!handover_parent_ &&
        ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        ::close(probe);
        ::close(fd);
        *error = "another wraith is listening on control socket " + control_path_;
        return false;
    }
    ::close(probe);
    ::unlink(control_path_.c_str());
    mode_t old = umask(0077); // only our user (root: root) may reload or stop us
    int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    umask(old);
    if (rc != 0 || ::listen(fd, 16) != 0) {
        *error = "cannot create control socket " + control_path_ + ": " + std::strerror(errno);
        ::close(fd);
        return false;
    }
    control_fd_ = fd;
    struct stat st;
    if (stat(control_path_.c_str(), &st) == 0)
        control_ino_ = st.st_ino;
    return true;
}

// ---- control socket --------------------------------------------------------------------------

void Master::on_control_accept(struct ev_loop*, ev_io* w, int) {
    auto* self = static_cast<Master*>(w->data);
    for (;;) {
        int fd = ::accept4(w->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        auto c = std::make_unique<ControlClient>();
        c->fd = fd;
        c->master = self;
        ev_io_init(&c->watcher, on_control_read, fd, EV_READ);
        c->watcher.data = c.get();
        ev_io_start(self->loop_, &c->watcher);
        self->clients_.push_back(std::move(c));
    }
}

void Master::on_control_read(struct ev_loop*, ev_io* w, int) {
    auto* c = static_cast<ControlClient*>(w->data);
    Master* self = c->master;
    char buf[512];
    ssize_t n = ::recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        self->close_client(c);
        return;
    }
    c->in.append(buf, n);
    if (c->in.size() > 4096) {
        self->close_client(c);
        return;
    }
    size_t nl = c->in.find('\n');
    if (nl == std::string::npos)
        return;
    std::string cmd = c->in.substr(0, nl);
    ev_io_stop(self->loop_, &c->watcher);
    if (cmd == "status") {
        self->answer(c, self->status_text(), true);
    } else if (cmd == "status-json") {
        self->answer(c, self->status_json(), true);
    } else if (cmd == "stats") {
        self->answer(c, self->stats_json(), true);
    } else if (cmd == "reload") {
        WLOG_INFO("reload requested over the control socket");
        self->reload(c);
    } else if (cmd == "stop" || cmd == "quit") {
        c->waiting_exit = true; // answered by our exit closing the socket
        self->answer(c, "stopping: pid " + std::to_string(getpid()) + "\n", false);
        self->begin_stop(cmd == "quit" || cmd == "stop");
    } else if (cmd == "stop-fast") {
        c->waiting_exit = true;
        self->answer(c, "stopping: pid " + std::to_string(getpid()) + "\n", false);
        self->begin_stop(false);
    } else if (cmd == "upgrade") {
        std::string err;
        if (!self->start_upgrade(c, &err))
            self->answer(c, "error: " + err + "\n", true);
    } else if (cmd == "reopen") {
        self->reopen_logs();
        self->answer(c, "reopened\n", true);
    } else {
        self->answer(c, "error: unknown command \"" + cmd + "\"\n", true);
    }
}

void Master::answer(ControlClient* c, const std::string& text, bool close_after) {
    // Answers are small; the socket buffer takes them whole.
    ssize_t n = ::send(c->fd, text.data(), text.size(), MSG_NOSIGNAL);
    (void)n;
    if (close_after)
        close_client(c);
}

void Master::close_client(ControlClient* c) {
    ev_io_stop(loop_, &c->watcher);
    ::close(c->fd);
    std::erase_if(clients_, [c](const auto& p) { return p.get() == c; });
}

void Master::finish_reloads(bool ok, const std::string& message) {
    if (!ok)
        counters::add(counters::reload_failures);
    // systemd: a reload ends with READY=1 whether it worked or the old generation kept on.
    Generation* cur = current();
    for (auto it = generations_.rbegin(); it != generations_.rend(); ++it)
        if (!(*it)->draining && it->get() != pending_) {
            cur = it->get();
            break;
        }
    notify::ready(std::string(ok ? "serving" : "reload failed; serving") + " generation " +
                  std::to_string(cur ? cur->id : 0));
    std::vector<ControlClient*> done;
    for (auto& c : clients_)
        if (c->waiting_reload)
            done.push_back(c.get());
    for (ControlClient* c : done)
        answer(c, message, true);
}

std::vector<Master::WorkerRow> Master::worker_rows() {
    std::vector<WorkerRow> rows;
    time_t now = time(nullptr);
    for (auto& g : generations_) {
        const char* state =
            g->draining ? "draining" : (g.get() == pending_ ? "starting" : "serving");
        for (auto& w : g->workers) {
            const WorkerStatus& st = status_table_[w->status_index];
            rows.push_back({w->slot, g->id, w->pid, state, static_cast<int64_t>(now - st.started_unix),
                            st.connections.load(), st.requests.load()});
        }
    }
    return rows;
}

// What status_text() says, as one JSON object (`wraith status --json`).
std::string Master::status_json() {
    Generation* cur = current();
    char num[320];
    std::string out = "{\"master\":{\"pid\":" + std::to_string(getpid()) + ",\"config\":";
    append_json_string(out, options_.config_path);
    snprintf(num, sizeof(num), ",\"generation\":%u,\"uptime_seconds\":%.0f},\"workers\":[",
             cur ? cur->id : 0, ev_time() - started_);
    out += num;
    bool first = true;
    for (const WorkerRow& r : worker_rows()) {
        snprintf(num, sizeof(num),
                 "%s{\"slot\":%d,\"generation\":%u,\"pid\":%d,\"state\":\"%s\","
                 "\"uptime_seconds\":%lld,\"connections\":%llu,\"requests\":%llu}",
                 first ? "" : ",", r.slot, r.generation, r.pid, r.state,
                 static_cast<long long>(r.uptime_s), (unsigned long long)r.connections,
                 (unsigned long long)r.requests);
        out += num;
        first = false;
    }
    out += "]}\n";
    return out;
}

std::string Master::stats_json() {
    Generation* cur = current();
    if (!cur || !cur->config)
        return "{}\n";
    std::string out;
    wraith::status_json(MetricsExport{*cur->config, cur->zones.view, false, cur->id}, out);
    return out;
}

std::string Master::status_text() {
    std::string out;
    char line[512];
    Generation* cur = current();
    snprintf(line, sizeof(line), "master pid %d  config %s  generation %u  uptime %s\n", getpid(),
             options_.config_path.c_str(), cur ? cur->id : 0,
             format_uptime(ev_time() - started_).c_str());
    out += line;
    for (const WorkerRow& r : worker_rows()) {
        snprintf(line, sizeof(line),
                 "worker %d  generation %u  pid %d  state %s  uptime %s  connections %llu  "
                 "requests %llu\n",
                 r.slot, r.generation, r.pid, r.state,
                 format_uptime(static_cast<double>(r.uptime_s)).c_str(),
                 (unsigned long long)r.connections, (unsigned long long)r.requests);
        out += line;
    }
    return out;
}

} // namespace wraith
