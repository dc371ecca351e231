#include "bench/h3load/bench.h"

#include <sys/time.h>

#include <cinttypes>
#include <csignal>
#include <cstring>

#include "tools/h3/clock.h"

namespace h3load {

namespace {

// How long requests in flight at the end of a -D window get to finish (counted as late).
constexpr double kDrainSeconds = 3.0;

double seconds_between(uint64_t from_ns, uint64_t to_ns) {
    return to_ns > from_ns ? static_cast<double>(to_ns - from_ns) / 1e9 : 0;
}

} // namespace

Exchange* ExchangePool::acquire() {
    if (free_.empty()) {
        all_.push_back(std::make_unique<Exchange>());
        free_.push_back(all_.back().get());
    }
    Exchange* e = free_.back();
    free_.pop_back();
    *e = Exchange{};
    e->in_use = true;
    return e;
}

void ExchangePool::release(Exchange* e) {
    e->in_use = false;
    free_.push_back(e);
}

Bench::Bench(struct ev_loop* loop, const Config& config) : loop_(loop), config_(config) {
    ev_timer_init(&check_timer_, check_cb, 0., 0.);
    check_timer_.data = this;
    ev_timer_init(&phase_timer_, phase_cb, 0., 0.);
    phase_timer_.data = this;
    ev_timer_init(&pace_timer_, pace_cb, 0., 0.);
    pace_timer_.data = this;
    ev_signal_init(&sigint_, signal_cb, SIGINT);
    sigint_.data = this;
    ev_signal_init(&sigterm_, signal_cb, SIGTERM);
    sigterm_.data = this;
    timeval now;
    gettimeofday(&now, nullptr);
    wall_offset_us_ = static_cast<int64_t>(now.tv_sec) * 1000000 + now.tv_usec -
                      static_cast<int64_t>(h3::now_ns() / 1000);
}

Bench::~Bench() {
    if (log_) {
        std::fclose(log_);
    }
}

int Bench::run(std::vector<std::unique_ptr<Client>> clients) {
    clients_ = std::move(clients);
    if (!config_.log_file.empty()) {
        log_ = std::fopen(config_.log_file.c_str(), "w");
        if (!log_) {
            std::fprintf(stderr, "h3load: cannot open %s: %s\n", config_.log_file.c_str(),
                         std::strerror(errno));
            return 1;
        }
    }
    ev_signal_start(loop_, &sigint_);
    ev_signal_start(loop_, &sigterm_);
    window_start_ = h3::now_ns();
    if (!idle_mode()) {
        std::printf("starting benchmark...\n");
        if (config_.duration > 0 && config_.warm_up > 0) {
            phase_ = Phase::WarmUp;
            ev_timer_set(&phase_timer_, config_.warm_up, 0.);
        } else if (config_.duration > 0) {
            ev_timer_set(&phase_timer_, config_.duration, 0.);
        }
        if (config_.duration > 0) {
            ev_timer_start(loop_, &phase_timer_);
        }
    }
    for (auto& client : clients_) {
        want_connect(*client);
    }
    ev_run(loop_, 0);

    if (idle_mode()) {
        clients_.clear();
        return idle_ok_ > 0 ? 0 : 1;
    }
    double seconds = seconds_between(window_start_, window_end_);
    stats_.total = config_.requests > 0 ? config_.requests : stats_.started;
    stats_.traffic = traffic_at_end_ - traffic_at_start_;
    for (auto& client : clients_) {
        stats_.client_rps.push_back(
            seconds > 0 ? static_cast<double>(client->done_in_window) / seconds : 0);
    }
    print_report(stdout, stats_, seconds);
    std::fflush(stdout);
    clients_.clear();
    return stats_.succeeded > 0 ? 0 : 1;
}

bool Bench::next_request(Client& client, uint32_t& url) {
    if (idle_mode()) {
        if (client.idle_asked) {
            return false;
        }
        client.idle_asked = true;
        url = 0;
        return true;
    }
    if (phase_ != Phase::WarmUp && phase_ != Phase::Measuring) {
        return false;
    }
    if (config_.interval > 0 && !config_.new_connection) {
        // Paced: one request per interval and client, on a schedule that does not catch up
        // after a slow answer (a real client does not fire a burst when it was kept waiting).
        const auto interval = static_cast<uint64_t>(config_.interval * 1e9);
        const uint64_t now = h3::now_ns();
        if (now < client.next_at_ns) {
            if (!ev_is_active(&pace_timer_)) {
                ev_timer_set(&pace_timer_, static_cast<double>(client.next_at_ns - now) / 1e9,
                             0.);
                ev_timer_start(loop_, &pace_timer_);
            }
            return false;
        }
        client.next_at_ns = client.next_at_ns + interval > now ? client.next_at_ns + interval
                                                               : now + interval;
    }
    if (config_.requests > 0) {
        if (issued_ >= config_.requests) {
            return false;
        }
        ++issued_;
    }
    if (phase_ == Phase::Measuring) {
        ++stats_.started;
    }
    url = next_url_++;
    if (next_url_ == config_.urls.size()) {
        next_url_ = 0;
    }
    return true;
}

void Bench::unissue(Client& client) {
    if (idle_mode()) {
        client.idle_asked = false;
        return;
    }
    if (config_.requests > 0) {
        --issued_;
    }
    if (phase_ == Phase::Measuring) {
        --stats_.started;
    }
}

void Bench::request_done(Client& client, const Exchange& e, bool ok) {
    if (idle_mode()) {
        idle_result(client, ok && e.status >= 200 && e.status < 400);
        return;
    }
    auto now = h3::now_ns();
    if (phase_ == Phase::Draining) {
        ++stats_.late;
        schedule_check();
        return;
    }
    if (phase_ != Phase::Measuring) {
        schedule_check();
        return;
    }
    ++stats_.done;
    ++client.done_in_window;
    auto duration_us = static_cast<uint32_t>((now - e.start_ns) / 1000);
    int logged_status = -1;
    if (ok) {
        int klass = e.status / 100;
        if (klass >= 1 && klass <= 5) {
            ++stats_.status[klass];
        }
        if (klass == 2 || klass == 3) {
            ++stats_.succeeded;
        } else {
            ++stats_.failed;
        }
        stats_.request_us.push_back(duration_us);
        logged_status = e.status;
    } else {
        ++stats_.failed;
        ++stats_.errored;
    }
    if (log_) {
        std::fprintf(log_, "%" PRId64 "\t%d\t%u\n",
                     wall_offset_us_ + static_cast<int64_t>(e.start_ns / 1000), logged_status,
                     duration_us);
    }
    schedule_check();
}

void Bench::request_abandoned(const Exchange& e) {
    if (phase_ == Phase::Measuring || phase_ == Phase::Draining) {
        ++stats_.timeout;
        ++stats_.failed;
        ++stats_.errored;
        if (log_) {
            std::fprintf(log_, "%" PRId64 "\t-1\t%" PRIu64 "\n",
                         wall_offset_us_ + static_cast<int64_t>(e.start_ns / 1000),
                         (h3::now_ns() - e.start_ns) / 1000);
        }
    }
}

void Bench::handshake_done(Client& client, uint64_t connect_ns, const std::string& tls_version,
                           const std::string& cipher, const std::string& group,
                           const std::string& alpn) {
    stats_.connect_us.push_back(static_cast<double>(connect_ns) / 1000.0);
    if (!tls_printed_ && !idle_mode()) {
        tls_printed_ = true;
        std::printf("TLS Protocol: %s\nCipher: %s\nServer Temp Key: %s\nApplication protocol: "
                    "%s\n",
                    tls_version.c_str(), cipher.c_str(), group.c_str(), alpn.c_str());
        std::fflush(stdout);
    }
    release_connect_slot();
}

void Bench::first_byte(uint64_t since_connect_ns) {
    stats_.ttfb_us.push_back(static_cast<double>(since_connect_ns) / 1000.0);
}

void Bench::connection_closed(Client& client, bool established, bool expected,
                              const std::string& reason) {
    if (!established) {
        release_connect_slot();
    }
    if (idle_mode()) {
        if (first_idle_error_.empty() && !expected) {
            first_idle_error_ = reason;
        }
        if (client.idle_state == 0) {
            idle_result(client, false);
        } else if (client.idle_state == 1 && !expected) {
            ++idle_lost_;
        }
        client.dead = true;
        return;
    }
    if (!expected) {
        if (phase_ == Phase::Measuring) {
            ++stats_.connection_errors;
        }
        if (errors_printed_ < 5) {
            ++errors_printed_;
            std::fprintf(stderr, "h3load: connection %s: %s\n", established ? "lost" : "failed",
                         reason.c_str());
        }
    }
    if (!established && !config_.new_connection) {
        client.dead = true; // like h2load: a client that cannot connect stops
    } else if (phase_ == Phase::WarmUp || phase_ == Phase::Measuring) {
        want_connect(client);
    }
    schedule_check();
}

void Bench::connect_failed(uint64_t started_ns) {
    if (phase_ != Phase::Measuring) {
        return;
    }
    ++stats_.started;
    ++stats_.done;
    ++stats_.failed;
    ++stats_.errored;
    if (log_) {
        std::fprintf(log_, "%" PRId64 "\t-1\t%" PRIu64 "\n",
                     wall_offset_us_ + static_cast<int64_t>(started_ns / 1000),
                     (h3::now_ns() - started_ns) / 1000);
    }
}

void Bench::want_connect(Client& client) {
    if (config_.new_connection) {
        // Paced connections, one request each: the schedule is the connections'.
        const auto interval = static_cast<uint64_t>(config_.interval * 1e9);
        const uint64_t now = h3::now_ns();
        if (now < client.next_at_ns) {
            client.pace_connect = true;
            if (!ev_is_active(&pace_timer_)) {
                ev_timer_set(&pace_timer_, static_cast<double>(client.next_at_ns - now) / 1e9,
                             0.);
                ev_timer_start(loop_, &pace_timer_);
            }
            return;
        }
        client.pace_connect = false;
        client.next_at_ns = client.next_at_ns + interval > now ? client.next_at_ns + interval
                                                               : now + interval;
    }
    if (connecting_ < config_.connect_concurrency) {
        ++connecting_;
        client.connect();
    } else if (!client.waiting) {
        client.waiting = true;
        connect_queue_.push_back(&client);
    }
}

void Bench::release_connect_slot() {
    if (connecting_ > 0) {
        --connecting_;
    }
    while (!connect_queue_.empty() && connecting_ < config_.connect_concurrency) {
        Client* next = connect_queue_.front();
        connect_queue_.pop_front();
        next->waiting = false;
        ++connecting_;
        next->connect();
    }
}

void Bench::idle_result(Client& client, bool ok) {
    if (client.idle_state != 0) {
        return;
    }
    client.idle_state = ok ? 1 : 2;
    ok ? ++idle_ok_ : ++idle_failed_;
    if (!idle_reported_ && idle_ok_ + idle_failed_ == config_.idle) {
        idle_reported_ = true;
        std::printf("idle: %zu connections established\n", idle_ok_);
        std::fflush(stdout);
        if (idle_failed_ > 0) {
            // Not "idle: N ...": scripts read the count from the one stdout line of that form.
            std::fprintf(stderr, "h3load: %zu idle connections failed (%s)\n", idle_failed_,
                         first_idle_error_.empty() ? "bad response" : first_idle_error_.c_str());
        }
        if (config_.hold > 0) {
            ev_timer_set(&phase_timer_, config_.hold, 0.);
            ev_timer_start(loop_, &phase_timer_);
        }
    }
}

void Bench::schedule_check() {
    if (!ev_is_active(&check_timer_)) {
        ev_timer_set(&check_timer_, 0., 0.);
        ev_timer_start(loop_, &check_timer_);
    }
}

void Bench::check_cb(struct ev_loop*, ev_timer* w, int) {
    static_cast<Bench*>(w->data)->check();
}

void Bench::pace_cb(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<Bench*>(w->data);
    const uint64_t now = h3::now_ns();
    uint64_t next = 0;
    for (auto& client : self->clients_) {
        if (client->dead) {
            continue;
        }
        if (client->pace_connect) {
            if (client->next_at_ns <= now) {
                self->want_connect(*client);
            } else if (next == 0 || client->next_at_ns < next) {
                next = client->next_at_ns;
            }
        } else if (client->next_at_ns <= now) {
            client->resume_requests();
        }
    }
    if (next != 0 && !ev_is_active(&self->pace_timer_)) {
        ev_timer_set(&self->pace_timer_, static_cast<double>(next - now) / 1e9, 0.);
        ev_timer_start(self->loop_, &self->pace_timer_);
    }
}

void Bench::check() {
    if (phase_ == Phase::Done || idle_mode()) {
        return;
    }
    size_t in_flight = 0;
    size_t alive = 0;
    for (auto& client : clients_) {
        in_flight += client->in_flight();
        alive += !client->dead;
    }
    bool budget_done = config_.requests > 0 && issued_ >= config_.requests;
    if (alive == 0 || (phase_ == Phase::Draining && in_flight == 0) ||
        (budget_done && in_flight == 0)) {
        finish();
    }
}

void Bench::phase_cb(struct ev_loop*, ev_timer* w, int) {
    auto* b = static_cast<Bench*>(w->data);
    if (b->idle_mode()) {
        b->finish(); // --hold elapsed
    } else if (b->phase_ == Phase::WarmUp) {
        b->start_measuring();
    } else if (b->phase_ == Phase::Measuring) {
        b->end_window();
    } else if (b->phase_ == Phase::Draining) {
        b->finish();
    }
}

void Bench::signal_cb(struct ev_loop*, ev_signal* w, int) {
    static_cast<Bench*>(w->data)->finish();
}

void Bench::start_measuring() {
    phase_ = Phase::Measuring;
    window_start_ = h3::now_ns();
    traffic_at_start_ = total_traffic();
    ev_timer_set(&phase_timer_, config_.duration, 0.);
    ev_timer_start(loop_, &phase_timer_);
}

void Bench::end_window() {
    window_end_ = h3::now_ns();
    traffic_at_end_ = total_traffic();
    phase_ = Phase::Draining;
    ev_timer_set(&phase_timer_, kDrainSeconds, 0.);
    ev_timer_start(loop_, &phase_timer_);
    schedule_check();
}

void Bench::finish() {
    if (phase_ == Phase::Done) {
        return;
    }
    if (phase_ != Phase::Draining && !idle_mode()) {
        window_end_ = h3::now_ns();
        traffic_at_end_ = total_traffic();
    }
    if (!idle_mode()) {
        for (auto& client : clients_) {
            client->abandon_in_flight();
        }
        if (config_.requests > 0 && issued_ < config_.requests) {
            // Never started because every connection failed: failed, not forgotten.
            stats_.failed += config_.requests - issued_;
            stats_.errored += config_.requests - issued_;
        }
    } else {
        size_t open = 0;
        for (auto& client : clients_) {
            open += client->idle_state == 1 && !client->dead;
        }
        if (!idle_reported_) {
            std::printf("idle: %zu connections established\n", idle_ok_);
            std::fflush(stdout);
        }
        std::fprintf(stderr, "h3load: closing %zu idle connections (%zu lost while idle)\n", open,
                     idle_lost_);
    }
    phase_ = Phase::Done;
    for (auto& client : clients_) {
        client->stop();
    }
    ev_timer_stop(loop_, &phase_timer_);
    ev_timer_stop(loop_, &check_timer_);
    ev_timer_stop(loop_, &pace_timer_);
    ev_signal_stop(loop_, &sigint_);
    ev_signal_stop(loop_, &sigterm_);
    ev_break(loop_, EVBREAK_ALL);
}

Traffic Bench::total_traffic() const {
    Traffic sum;
    for (const auto& client : clients_) {
        sum += client->traffic();
    }
    return sum;
}

} // namespace h3load
