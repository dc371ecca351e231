// The master process: owns the config, the listening sockets, the shared status table, the
// pid file and the control socket; forks worker generations, respawns crashed workers, and
// turns signals and control commands into reloads, log reopens and stops. It never serves
// traffic.
#pragma once

#include <array>
#include <ev.h>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "master/listeners.h"
#include "master/quic_sockets.h"
#include "master/zones.h"

namespace wraith {

class TlsContexts;
struct Handover;
struct WorkerSetup;
namespace quic {
class TlsContext;
}
struct TicketKeys;
struct OcspCache;
class OcspFetcher;

// Loads a config and builds its TLS contexts (certificates checked); what `serve`, `reload`
// and `check` all use. nullptr config: diag holds every problem.
struct LoadedConfig {
    std::shared_ptr<const Config> config;
    std::shared_ptr<const TlsContexts> tls;
    std::shared_ptr<const quic::TlsContext> quic_tls; // null without "h3" listeners
};
LoadedConfig load_full_config(const std::string& path, Diagnostics& diag, TicketKeys* keys,
                              OcspCache* ocsp, std::string_view overrides = {});

// Creates the directories above `path` (mode 0755), for pid files, sockets and logs.
void mkdir_parent(const std::string& path);

// "exited with code 1", "killed by signal 11 (Segmentation fault), core dumped".
std::string describe_exit(int status);

struct MasterOptions {
    std::string config_path; // absolute
    bool daemon = false;
    // Command-line settings (NGINX's -g): the TOML merged over the file at every load, and
    // the -g text itself, passed on to the new binary of a binary upgrade.
    std::string overrides;
    std::string globals;
};

class Master {
public:
    explicit Master(MasterOptions options);
    ~Master();
    // Loads the config, binds, forks workers and runs until stopped. Returns the exit code.
    int run();

private:
    struct Generation;
    struct WorkerProc {
        pid_t pid = 0;
        int slot = 0;
        int channel_fd = -1;   // master end
        int status_index = -1; // entry in the shared status table
        int quic_index = -1;   // its UDP socket in each QUIC listener's group, -1 without
        ev_tstamp started = 0;
        bool ready = false;
        ev_io channel_watcher{};
        Master* master = nullptr;
        Generation* gen = nullptr;
    };
    struct Generation {
        uint32_t id = 0;
        std::shared_ptr<const Config> config;
        std::shared_ptr<const TlsContexts> tls;
        std::shared_ptr<const quic::TlsContext> quic_tls;
        std::vector<int> listen_fds;
        ZoneManager::ZoneSet zones; // shared memory its workers map (master/zones.h)
        std::vector<std::unique_ptr<WorkerProc>> workers;
        std::vector<int> crash_count;      // per slot, for respawn back-off
        std::vector<ev_tstamp> respawn_at; // per slot; 0 = no respawn pending
        bool draining = false;
        bool ready_reported = false;
    };
    // A control-socket client waiting for an answer.
    struct ControlClient {
        int fd = -1;
        ev_io watcher{};
        std::string in;
        Master* master = nullptr;
        bool waiting_reload = false;
        bool waiting_exit = false;
        bool waiting_upgrade = false;
    };

    // master.cc: starting and stopping.
    static std::vector<ZoneSpec> core_zone_specs();
    bool take_identity(const std::optional<Handover>& handover, std::string* error);
    int start_failed(const std::string& error);
    bool daemonize(const Config& config);
    void start_watchers();
    // workers.cc: generations and their workers.
    bool start_generation(LoadedConfig loaded, std::string* error);
    bool spawn(Generation& gen, int slot);
    bool fill_setup(Generation& gen, int slot, int quic_index, WorkerStatus& status, int channel_fd,
                    WorkerSetup& setup);
    [[noreturn]] void become_worker(Generation& gen, WorkerSetup setup, int master_end);
    void replace_worker(Generation& gen, int slot, double lived);
    void finish_generation(size_t index);
    void drain_generation(Generation& gen);
    void check_generation_ready(Generation& gen);
    void maybe_announce_reload(); // once no draining worker accepts
    void announce_reload();       // at once
    void reap();
    void reload(ControlClient* requester);
    void reopen_logs();
    void begin_stop(bool graceful);
    void maybe_finish_stop();
    void prepare_log_files(const Config& config);
    void send_to_workers(Generation& gen, char msg);
    Generation* current() { return generations_.empty() ? nullptr : generations_.back().get(); }
    int worker_count(const Config& config) const;
    int allocate_status();
    // One per worker of every generation: what `wraith status` shows of it.
    struct WorkerRow {
        int slot;
        uint32_t generation;
        pid_t pid;
        const char* state; // serving, starting, draining
        int64_t uptime_s;
        uint64_t connections, requests;
    };
    std::vector<WorkerRow> worker_rows();
    std::string status_text();
    std::string status_json();
    // The live status object of the serving generation (`wraith top`; what the dashboard
    // polls), from the shared zones (common/metrics_text.h status_json).
    std::string stats_json();
    void answer(ControlClient* c, const std::string& text, bool close_after);
    void close_client(ControlClient* c);
    void finish_reloads(bool ok, const std::string& message);
    bool open_control_socket(std::string* error);
    bool write_pid_file(std::string* error);
    void schedule_respawn_timer();
    int allocate_quic_index();
    // upgrade.cc: start the binary at self_exe_ with our sockets (master/handover.h); the
    // new side adopts them and watches the old master.
    bool start_upgrade(ControlClient* requester, std::string* error);
    void upgrade_exited(int status);
    void adopt_handover(const Handover& h);
    void watch_old_master();
    static void on_upgrade_ready(struct ev_loop*, ev_io* w, int);
    static void on_parent_check(struct ev_loop*, ev_timer* w, int);
    // Points new QUIC connections at the serving generation's sockets.
    void update_quic_steering();
    double current_drain_timeout();

    static void on_signal(struct ev_loop*, ev_signal* w, int);
    static void on_child(struct ev_loop*, ev_child* w, int);
    static void on_worker_channel(struct ev_loop*, ev_io* w, int);
    static void on_control_accept(struct ev_loop*, ev_io* w, int);
    static void on_control_read(struct ev_loop*, ev_io* w, int);
    static void on_respawn_timer(struct ev_loop*, ev_timer* w, int);
    static void on_stop_timer(struct ev_loop*, ev_timer* w, int);
    static void on_ready_timer(struct ev_loop*, ev_timer* w, int);
    static void on_announce_timer(struct ev_loop*, ev_timer* w, int);
    static void on_ticket_rotation(struct ev_loop*, ev_timer* w, int);

    MasterOptions options_;
    struct ev_loop* loop_;
    ListenerSet listeners_;
    QuicSockets quic_;
    std::array<bool, 256> quic_index_used_{};
    std::array<uint8_t, 32> quic_secret_{}; // stateless resets and tokens; survives reloads
    // Binary upgrade, old side: the new master we started and its readiness pipe.
    std::string self_exe_; // our binary's path at start (a package may replace it)
    pid_t upgrade_pid_ = 0;
    bool upgraded_ = false; // a new master serves beside us: it owns QUIC steering
    ev_io upgrade_watcher_{};
    std::string pid_path_live_; // where our pid file is now (".oldbin" after an upgrade)
    ino_t control_ino_ = 0;     // our control socket file, so we never unlink the new one's
    // New side: the old master's socket indices stay reserved while it lives.
    pid_t handover_parent_ = 0;
    int handover_ready_fd_ = -1;
    std::vector<uint8_t> reserved_indices_;
    ev_timer parent_timer_{};
    std::vector<std::unique_ptr<Generation>> generations_; // oldest first; back() is current
    Generation* pending_ = nullptr;                        // a reload's generation not yet ready
    uint32_t next_generation_ = 1;
    ZoneManager zones_;
    ZoneManager::ZoneSet core_zones_;      // the master's own: status table, TLS state
    WorkerStatus* status_table_ = nullptr; // in core_zones_
    TicketKeys* ticket_keys_ = nullptr;    // shared with every worker; survives reloads
    OcspCache* ocsp_cache_ = nullptr;      // fetched OCSP staples, shared likewise
    std::unique_ptr<OcspFetcher> ocsp_fetcher_;
    ev_timer ticket_timer_{};
    int control_fd_ = -1;
    std::string control_path_;
    std::string pid_path_;
    std::vector<std::unique_ptr<ControlClient>> clients_;
    std::vector<ev_signal> signals_; // started after the first generation forked
    ev_child child_watcher_{};
    ev_io control_watcher_;
    ev_timer respawn_timer_;
    ev_timer stop_timer_;
    ev_timer ready_timer_;
    // A reload whose generation serves, answered once no older worker accepts (so "reloaded"
    // means every new connection meets the new configuration); 0 when none waits.
    uint32_t announce_generation_ = 0;
    ev_timer announce_timer_; // answers anyway if a draining worker never reports
    ev_tstamp started_ = 0;
    bool stopping_ = false;
    bool graceful_ = false;
    int exit_code_ = 0;
};

} // namespace wraith
