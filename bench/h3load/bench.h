// h3load's run: the clients (one connection slot each), the measurement window, request
// budget, handshake pacing and the idle-connections mode.
#pragma once

#include <ev.h>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "bench/h3load/stats.h"
#include "tools/h3/net.h"

namespace h3load {

// What the command line asked for.
struct Config {
    std::vector<h3::Url> urls; // `urls` are requested round-robin; all share one host:port.
    std::vector<std::pair<std::string, std::string>> headers; // `headers` are extra (-H).
    std::vector<h3::ResolveOverride> resolves;
    h3::SocketAddress local; // `local` is --local-address (len 0: the kernel picks).
    size_t connections = 1; // `connections` is -c.
    size_t streams = 1;     // `streams` is -m: requests in flight per connection.
    uint64_t requests = 1;  // `requests` is -n (0 with -D).
    double duration = 0;    // `duration` is -D in seconds (0 with -n).
    double warm_up = 0;     // `warm_up` precedes the -D window, not counted.
    bool insecure = false;
    std::string cacert;
    std::string sni;
    bool sni_given = false;
    std::string alpn;                 // `alpn` defaults to h3 (h2 with --h2).
    size_t idle = 0;                  // `idle` is --idle CONNS (0: load mode).
    double hold = 0;                  // `hold` is --hold SECONDS (0: until a signal).
    size_t connect_concurrency = 100; // `connect_concurrency` caps handshakes in flight.
    std::string log_file;             // `log_file` gets one h2load-style line per request.
    bool h2 = false;                  // `h2` runs HTTP/2 over TLS/TCP instead.
    double interval = 0; // `interval` is --interval: seconds between a client's requests.
    bool new_connection = false; // `new_connection`: --new-connection, one request each.
    bool verbose = false;
};

// One request in flight.
struct Exchange {
    uint64_t start_ns = 0; // `start_ns` is when its headers were submitted (monotonic).
    int status = 0;        // `status` is the final status received, 0 until then.
    uint32_t url = 0;      // `url` indexes Config::urls.
    bool complete = false; // `complete`: the whole response arrived.
    bool in_use = false;   // `in_use`: the protocol still refers to it.
};

// Exchanges of one client, reused: no allocation per request once warm.
class ExchangePool {
public:
    Exchange* acquire();
    void release(Exchange* e);
    template <typename F> void for_each_in_use(F&& f) {
        for (auto& e : all_) {
            if (e->in_use) {
                f(*e);
            }
        }
    }

private:
    std::vector<std::unique_ptr<Exchange>> all_;
    std::vector<Exchange*> free_;
};

class Bench;

// One connection slot of the run, of either protocol. It reconnects when its connection
// ends while there is work left, unless the connection never came up.
class Client {
public:
    explicit Client(Bench& bench) : bench_(bench) {}
    virtual ~Client() = default;

    // Opens the connection (Bench paces when this is called).
    virtual void connect() = 0;
    // Requests in flight (submitted, response not complete).
    virtual size_t in_flight() const = 0;
    // Closes at the end of the run; no events follow.
    virtual void stop() = 0;
    // Bytes received so far, over all of this client's connections.
    virtual Traffic traffic() const = 0;
    // Reports every unfinished request to Bench as timed out (end of run).
    virtual void abandon_in_flight() = 0;

    uint64_t done_in_window = 0; // `done_in_window` feeds the per-client req/s row.
    bool dead = false;           // `dead`: the handshake failed; no more attempts.
    bool idle_asked = false;     // `idle_asked`: --idle mode's one request was taken.
    int idle_state = 0;          // `idle_state`: --idle outcome, 0 pending, 1 ok, 2 failed.
    bool waiting = false;        // `waiting`: queued for a handshake slot.
    uint64_t next_at_ns = 0;     // `next_at_ns`: with --interval, its next request's time.
    bool pace_connect = false;   // `pace_connect`: --new-connection, waits for next_at_ns.

    // With --interval: its next request is due; submit what may go.
    virtual void resume_requests() {}

protected:
    Bench& bench_;
};

class Bench {
public:
    enum class Phase { WarmUp, Measuring, Draining, Done };

    Bench(struct ev_loop* loop, const Config& config);
    ~Bench();
    // Runs to the end and prints the report; returns the exit status.
    int run(std::vector<std::unique_ptr<Client>> clients);

    struct ev_loop* loop() const {
        return loop_;
    }
    const Config& config() const { return config_; }
    Phase phase() const { return phase_; }
    bool idle_mode() const { return config_.idle > 0; }

    // Takes the next request for `client`; false when it must not start one.
    bool next_request(Client& client, uint32_t& url);
    // Returns a request taken by next_request that could not be submitted.
    void unissue(Client& client);
    // A request ended: `ok` with a complete response, else errored.
    void request_done(Client& client, const Exchange& e, bool ok);
    // A request was still unfinished when the run ended.
    void request_abandoned(const Exchange& e);
    void handshake_done(Client& client, uint64_t connect_ns, const std::string& tls_version,
                        const std::string& cipher, const std::string& group,
                        const std::string& alpn);
    void first_byte(uint64_t since_connect_ns);
    // The connection of `client` ended: `established` says whether its handshake had
    // completed, `expected` whether we closed it.
    void connection_closed(Client& client, bool established, bool expected,
                           const std::string& reason);
    // Asks for a handshake slot; Bench calls client.connect() when one is free.
    void want_connect(Client& client);
    void release_connect_slot();
    // --new-connection: a handshake that failed counts as a failed request.
    void connect_failed(uint64_t started_ns);
    // --idle: the client's one request finished (`ok`) or its connection failed.
    void idle_result(Client& client, bool ok);

private:
    static void check_cb(struct ev_loop* loop, ev_timer* w, int revents);
    static void pace_cb(struct ev_loop* loop, ev_timer* w, int revents);
    static void phase_cb(struct ev_loop* loop, ev_timer* w, int revents);
    static void signal_cb(struct ev_loop* loop, ev_signal* w, int revents);

    void schedule_check();
    void check();
    void start_measuring();
    void end_window();
    void finish();
    Traffic total_traffic() const;

    struct ev_loop* loop_;
    const Config& config_;
    std::vector<std::unique_ptr<Client>> clients_;
    Phase phase_ = Phase::Measuring;
    Stats stats_;
    Traffic traffic_at_start_;  // `traffic_at_start_` is the snapshot when the window opened.
    Traffic traffic_at_end_;    // `traffic_at_end_` is the snapshot when it closed.
    uint64_t window_start_ = 0; // ns, monotonic
    uint64_t window_end_ = 0;
    uint64_t issued_ = 0; // `issued_` counts requests taken from the -n budget.
    uint32_t next_url_ = 0;
    size_t connecting_ = 0; // `connecting_` handshakes in flight.
    std::deque<Client*> connect_queue_;
    bool tls_printed_ = false;
    size_t errors_printed_ = 0;
    size_t idle_ok_ = 0, idle_failed_ = 0, idle_lost_ = 0;
    bool idle_reported_ = false;
    std::string first_idle_error_;
    FILE* log_ = nullptr;
    int64_t wall_offset_us_ = 0; // `wall_offset_us_` maps monotonic µs to epoch µs.
    ev_timer check_timer_;       // `check_timer_` runs check() outside protocol callbacks.
    ev_timer phase_timer_;       // `phase_timer_` ends warm-up, window, drain or hold.
    ev_timer pace_timer_;        // `pace_timer_` wakes paced clients (--interval).
    ev_signal sigint_, sigterm_;
};

} // namespace h3load
