#include "master/top.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>
#include <unordered_map>

#include "common/json_reader.h"
#include "master/control_client.h"
#include "master/top_terminal.h"

namespace wraith {

const char kTopHelp[] =
    "usage: wraith top [-c FILE] [-d SECONDS] [-n COUNT] [--batch]\n\n"
    "A live view, like top(1), of the master running with FILE, redrawn every SECONDS\n"
    "(default 1, at least 0.2): requests per second in all and per protocol, status classes,\n"
    "5xx errors, bytes in and out, open connections and streams, TLS and QUIC handshakes,\n"
    "latency percentiles of the requests finished since the last screen, upstream servers,\n"
    "workers, and routes by requests per second. Rates compare two samples, so the first\n"
    "screen shows totals and '\u2013' for rates. q or Ctrl-C quits; -n stops after COUNT\n"
    "screens. With --batch, or when standard output is not a terminal, every screen is plain\n"
    "text with every route, screens separated by a blank line (like top -b). Exit status: 0,\n"
    "1 when the master cannot be reached or goes away, 2 usage.\n";

namespace {

using top::Layout;
using top::monotonic_seconds;
using top::stop_signal;
using top::Terminal;
using top::wait_until;
using top::Wake;

constexpr const char kNoRate[] = "\u2013"; // no earlier sample to compare with
constexpr double kMinInterval = 0.2;

constexpr std::string_view kProtocols[] = {"h1", "h2", "h3"};
constexpr std::string_view kStatusClasses[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
constexpr std::string_view kConnectionKinds[] = {"other", "h1", "h2", "h3"};
constexpr int kProtocolCount = 3, kClassCount = 6, kKindCount = 4;

// ---------------------------------------------------------------------------------------------
// One `stats` answer, reduced to what top shows. A member the master did not send reads as 0.

struct WorkerStats {
    int64_t pid = 0;
    uint64_t slot = 0, generation = 0, connections = 0, requests = 0;
    std::string state;
};

struct RouteStats {
    std::string site, route;
    uint64_t requests = 0, errors = 0, bytes = 0;
};

struct UpstreamStats {
    std::string name;
    std::vector<std::pair<std::string, std::string>> servers; // address, state
};

struct Stats {
    bool has_server = false; // false for "{}": the master has no serving generation yet
    std::string version;
    uint64_t generation = 0, started = 0;
    double now = 0; // the master's clock; rates divide by the difference of two
    uint64_t requests[kProtocolCount] = {};
    uint64_t status[kClassCount] = {};
    uint64_t bytes_in = 0, bytes_out = 0;
    std::vector<uint64_t> latency_bounds_us, latency_counts; // counts: one more (+Inf)
    uint64_t connections[kKindCount] = {};
    uint64_t streams[kProtocolCount] = {};
    uint64_t tls_handshakes = 0, tls_resumed = 0, tls_failures = 0;
    uint64_t quic_handshakes = 0, quic_resumed = 0, quic_retry = 0, quic_migrations = 0;
    uint64_t reloads = 0, reload_failures = 0;
    std::vector<RouteStats> routes;
    std::vector<WorkerStats> workers;
    std::vector<UpstreamStats> upstreams;
    // The newest recent 5xx answer, if any.
    double error_time = 0;
    uint64_t error_status = 0;
    std::string error_text; // "GET host/path h1"
};

void read_counts(const json::Value& object, const std::string_view* names, int n, uint64_t* out) {
    for (int i = 0; i < n; ++i)
        out[i] = object[names[i]].as_uint();
}

std::vector<uint64_t> read_uints(const json::Value& array) {
    std::vector<uint64_t> out;
    out.reserve(array.items.size());
    for (const json::Value& v : array.items)
        out.push_back(v.as_uint());
    return out;
}

bool read_stats(std::string_view text, Stats* s, std::string* error) {
    json::Value doc;
    json::Error parse_error;
    if (!json::parse(text, &doc, &parse_error)) {
        *error = parse_error.describe();
        return false;
    }
    if (!doc.is_object()) {
        *error = "not a JSON object";
        return false;
    }
    const json::Value& server = doc["server"];
    s->has_server = server.is_object();
    s->version = std::string(server["version"].as_string());
    s->generation = server["generation"].as_uint();
    s->now = server["now"].as_double();
    s->started = server["started"].as_uint();
    read_counts(doc["requests"], kProtocols, kProtocolCount, s->requests);
    read_counts(doc["status"], kStatusClasses, kClassCount, s->status);
    s->bytes_in = doc["bytes"]["in"].as_uint();
    s->bytes_out = doc["bytes"]["out"].as_uint();
    s->latency_bounds_us = read_uints(doc["latency"]["bounds_us"]);
    s->latency_counts = read_uints(doc["latency"]["counts"]);
    if (s->latency_counts.size() != s->latency_bounds_us.size() + 1)
        s->latency_bounds_us.clear(), s->latency_counts.clear(); // shape unknown: no latency
    read_counts(doc["connections"], kConnectionKinds, kKindCount, s->connections);
    read_counts(doc["streams"], kProtocols, kProtocolCount, s->streams);
    const json::Value& tls = doc["tls"];
    s->tls_handshakes = tls["handshakes"].as_uint();
    s->tls_resumed = tls["resumed"].as_uint();
    s->tls_failures = tls["failures"].as_uint();
    const json::Value& quic = doc["quic"];
    s->quic_handshakes = quic["handshakes"].as_uint();
    s->quic_resumed = quic["resumed"].as_uint();
    s->quic_retry = quic["retry"].as_uint();
    s->quic_migrations = quic["migrations"].as_uint();
    s->reloads = doc["reloads"]["reloads"].as_uint();
    s->reload_failures = doc["reloads"]["failures"].as_uint();
    for (const json::Value& r : doc["routes"].items)
        s->routes.push_back({std::string(r["site"].as_string()),
                             std::string(r["route"].as_string()), r["requests"].as_uint(),
                             r["errors"].as_uint(), r["bytes"].as_uint()});
    for (const json::Value& w : doc["workers"].items) {
        WorkerStats row;
        row.pid = static_cast<int64_t>(w["pid"].as_uint());
        row.slot = w["slot"].as_uint();
        row.generation = w["generation"].as_uint();
        row.state = std::string(w["state"].as_string());
        row.connections = w["connections"].as_uint();
        row.requests = w["requests"].as_uint();
        s->workers.push_back(std::move(row));
    }
    for (const json::Value& u : doc["upstreams"].items) {
        UpstreamStats pool{std::string(u["name"].as_string()), {}};
        for (const json::Value& server : u["servers"].items)
            pool.servers.emplace_back(server["address"].as_string(), server["state"].as_string());
        s->upstreams.push_back(std::move(pool));
    }
    const json::Value& errors = doc["errors"];
    if (errors.is_array() && !errors.items.empty()) {
        const json::Value& e = errors.items.front(); // newest first
        s->error_time = e["time"].as_double();
        s->error_status = e["status"].as_uint();
        s->error_text = std::string(e["method"].as_string()) + " " +
                        std::string(e["host"].as_string()) + std::string(e["path"].as_string()) +
                        " " + std::string(e["protocol"].as_string());
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Formatting

// Text from the master (route names, and hosts and paths of requests clients sent) without
// control characters, which would drive the terminal.
std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            out += '?';
        } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
            out += '?'; // a C1 control (U+0080..U+009F)
            ++i;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

// Terminal columns of UTF-8 text: every byte but continuation bytes.
size_t columns(std::string_view s) {
    size_t n = 0;
    for (char c : s)
        n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    return n;
}

// The first `width` columns of `s`.
std::string cut(const std::string& s, size_t width) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80 && n++ == width)
            return s.substr(0, i);
    }
    return s;
}

std::string pad_left(const std::string& s, size_t width) {
    size_t n = columns(s);
    return n >= width ? s : std::string(width - n, ' ') + s;
}

std::string pad_right(const std::string& s, size_t width) {
    size_t n = columns(s);
    return n >= width ? s : s + std::string(width - n, ' ');
}

std::string format(const char* fmt, double v) {
    char buf[64];
    snprintf(buf, sizeof(buf), fmt, v);
    return buf;
}

std::string number(double v) {
    return format(v < 100 ? "%.1f" : "%.0f", v);
}

std::string bytes(double v) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    return (u == 0 ? format("%.0f", v) : number(v)) + " " + units[u];
}

std::string duration_us(double us) {
    if (us < 1000)
        return format("%.0fus", us);
    if (us < 1'000'000)
        return format(us < 10'000 ? "%.1fms" : "%.0fms", us / 1000);
    return format("%.2fs", us / 1'000'000);
}

std::string clock_time(double unix_time) {
    const auto t = static_cast<time_t>(unix_time);
    struct tm tm;
    char buf[16];
    if (!localtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%H:%M:%S", &tm))
        return "";
    return buf;
}

// Rates between the previous sample and this one. Counters only grow; one that went down
// (a counter the master no longer has) counts as 0.
class Rates {
public:
    Rates(const Stats& now, const Stats* before)
        : known_(before && now.now > before->now), seconds_(known_ ? now.now - before->now : 0) {}

    bool known() const { return known_; }
    double seconds() const { return seconds_; }

    double per_second(uint64_t now, uint64_t before) const {
        return known_ && now > before ? static_cast<double>(now - before) / seconds_ : 0;
    }
    // "12.5" for a table's REQ/S column; "12.5/s" and "1.2 KiB/s" in a line of text.
    std::string text(uint64_t now, uint64_t before) const {
        return known_ ? number(per_second(now, before)) : kNoRate;
    }
    std::string per_second_text(uint64_t now, uint64_t before) const {
        return known_ ? number(per_second(now, before)) + "/s" : kNoRate;
    }
    std::string bytes_text(uint64_t now, uint64_t before) const {
        return known_ ? bytes(per_second(now, before)) + "/s" : kNoRate;
    }

private:
    bool known_;
    double seconds_;
};

// The q-quantile of a latency histogram (counts per bucket: bucket i holds latencies up to
// bounds[i] µs, the last one the rest), interpolated linearly inside its bucket. The last
// bucket has no upper bound: its quantiles read as its lower one, with `*beyond` set.
double quantile_us(const std::vector<uint64_t>& bounds, const std::vector<uint64_t>& counts,
                   uint64_t total, double q, bool* beyond) {
    const double rank = q * static_cast<double>(total);
    double below = 0;
    *beyond = false;
    for (size_t i = 0; i < counts.size(); ++i) {
        const double n = static_cast<double>(counts[i]);
        if (n > 0 && below + n >= rank) {
            const double lower = i == 0 ? 0 : static_cast<double>(bounds[i - 1]);
            if (i == bounds.size()) {
                *beyond = true;
                return lower;
            }
            const double upper = static_cast<double>(bounds[i]);
            return lower + (upper - lower) * std::max(0.0, rank - below) / n;
        }
        below += n;
    }
    return 0;
}

std::string latency_line(const Stats& now, const Stats& before, const Rates& rates) {
    std::vector<uint64_t> counts = now.latency_counts;
    const bool delta = rates.known() && before.latency_counts.size() == counts.size() &&
                       before.latency_bounds_us == now.latency_bounds_us;
    uint64_t total = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
        if (delta)
            counts[i] =
                counts[i] > before.latency_counts[i] ? counts[i] - before.latency_counts[i] : 0;
        total += counts[i];
    }
    static const std::pair<const char*, double> kQuantiles[] = {
        {"p50 ", 0.50}, {"  p95 ", 0.95}, {"  p99 ", 0.99}};
    std::string line = "latency   ";
    for (const auto& [name, q] : kQuantiles) {
        line += name;
        bool beyond = false;
        if (total == 0) {
            line += kNoRate;
            continue;
        }
        const double us = quantile_us(now.latency_bounds_us, counts, total, q, &beyond);
        line += (beyond ? ">" : "") + duration_us(us);
    }
    if (delta)
        line += "  (" + std::to_string(total) + " requests in " + format("%.1f", rates.seconds()) +
                "s)";
    else
        line += "  (all " + std::to_string(total) + " requests so far)";
    return line;
}

// ---------------------------------------------------------------------------------------------
// A screen

std::vector<std::string> render(const Stats& now, const Stats* earlier, const Layout& layout) {
    const Rates rates(now, earlier);
    const Stats none;
    const Stats& before = earlier ? *earlier : none; // compared with only when rates.known()
    std::vector<std::string> lines;
    std::string line;

    int serving = 0, draining = 0, starting = 0;
    for (const WorkerStats& w : now.workers) {
        serving += w.state == "serving";
        draining += w.state == "draining";
        starting += w.state == "starting";
    }
    line = "wraith " + printable(now.version) + " gen " + std::to_string(now.generation) + "  up " +
           format_uptime(now.now - static_cast<double>(now.started)) + "  workers " +
           std::to_string(serving) + " serving " + std::to_string(draining) + " draining";
    if (starting)
        line += " " + std::to_string(starting) + " starting";
    line += "  reloads " + std::to_string(now.reloads);
    if (now.reload_failures)
        line += " (" + std::to_string(now.reload_failures) + " failed)";
    lines.push_back(line + "  " + clock_time(now.now));

    uint64_t total = 0, total_before = 0;
    for (int p = 0; p < kProtocolCount; ++p) {
        total += now.requests[p];
        total_before += before.requests[p];
    }
    line = "requests  " + rates.per_second_text(total, total_before) + "  total " +
           std::to_string(total);
    for (int p = 0; p < kProtocolCount; ++p)
        line += "  " + std::string(kProtocols[p]) + " " +
                rates.per_second_text(now.requests[p], before.requests[p]);
    lines.push_back(line);

    line = "status  ";
    for (int c = 1; c <= kClassCount; ++c) { // 1xx .. 5xx, then none
        const int i = c % kClassCount;
        line += "  " + std::string(kStatusClasses[i]) + " " +
                rates.per_second_text(now.status[i], before.status[i]);
    }
    lines.push_back(line);

    line = "errors    " + rates.per_second_text(now.status[5], before.status[5]) + " (5xx)";
    if (now.error_status)
        line += "  last " + std::to_string(now.error_status) + " " + printable(now.error_text) +
                " " + format_uptime(now.now - now.error_time) + " ago";
    lines.push_back(line);

    lines.push_back("bytes     in " + rates.bytes_text(now.bytes_in, before.bytes_in) + "  out " +
                    rates.bytes_text(now.bytes_out, before.bytes_out));

    line = "open      connections";
    for (int k = 1; k <= kKindCount; ++k) // h1 h2 h3, then other
        line += (k == 1 ? " " : "  ") + std::string(kConnectionKinds[k % kKindCount]) + " " +
                std::to_string(now.connections[k % kKindCount]);
    line += "  streams";
    for (int p = 0; p < kProtocolCount; ++p)
        line += (p == 0 ? " " : "  ") + std::string(kProtocols[p]) + " " +
                std::to_string(now.streams[p]);
    lines.push_back(line);

    const auto rate = [&](uint64_t Stats::*field) {
        return rates.per_second_text(now.*field, before.*field);
    };
    lines.push_back("tls       handshakes " + rate(&Stats::tls_handshakes) + "  resumed " +
                    rate(&Stats::tls_resumed) + "  failures " + rate(&Stats::tls_failures) + " (" +
                    std::to_string(now.tls_failures) + " in all)");
    lines.push_back("quic      handshakes " + rate(&Stats::quic_handshakes) + "  resumed " +
                    rate(&Stats::quic_resumed) + "  retry " + rate(&Stats::quic_retry) +
                    "  migrations " + rate(&Stats::quic_migrations));
    if (!now.latency_counts.empty())
        lines.push_back(latency_line(now, before, rates));
    for (const UpstreamStats& pool : now.upstreams) {
        line = "upstream  " + printable(pool.name) + ":";
        for (const auto& [address, state] : pool.servers)
            line += "  " + printable(address) + " " + printable(state);
        lines.push_back(line);
    }

    // Workers: the newest generation first.
    std::vector<const WorkerStats*> workers;
    for (const WorkerStats& w : now.workers)
        workers.push_back(&w);
    std::sort(workers.begin(), workers.end(), [](const WorkerStats* a, const WorkerStats* b) {
        return a->generation != b->generation ? a->generation > b->generation : a->slot < b->slot;
    });
    lines.push_back("");
    lines.push_back("    PID  SLOT  GEN  STATE      CONNS   REQUESTS    REQ/S");
    for (const WorkerStats* w : workers) {
        uint64_t requests_before = 0; // a worker not in the last sample started since
        for (const WorkerStats& b : before.workers)
            if (b.pid == w->pid)
                requests_before = b.requests;
        char row[160];
        snprintf(row, sizeof(row), "%7lld  %4llu  %3llu  %-9s  %5llu  %9llu  ",
                 static_cast<long long>(w->pid), (unsigned long long)w->slot,
                 (unsigned long long)w->generation, printable(w->state).c_str(),
                 (unsigned long long)w->connections, (unsigned long long)w->requests);
        lines.push_back(row + pad_left(rates.text(w->requests, requests_before), 7));
    }

    // Routes by requests per second, then by requests.
    struct RouteRow {
        const RouteStats* route;
        double per_second, errors_per_second, bytes_per_second;
    };
    std::unordered_map<std::string, const RouteStats*> routes_before;
    for (const RouteStats& r : before.routes)
        routes_before.emplace(r.site + '\0' + r.route, &r);
    std::vector<RouteRow> routes;
    size_t site_width = 4;
    for (const RouteStats& r : now.routes) {
        auto it = routes_before.find(r.site + '\0' + r.route);
        const RouteStats unseen; // a route not in the last sample had no requests then
        const RouteStats& b = it != routes_before.end() ? *it->second : unseen;
        routes.push_back({&r, rates.per_second(r.requests, b.requests),
                          rates.per_second(r.errors, b.errors),
                          rates.per_second(r.bytes, b.bytes)});
        site_width = std::max(site_width, std::min<size_t>(columns(printable(r.site)), 24));
    }
    std::stable_sort(routes.begin(), routes.end(), [](const RouteRow& a, const RouteRow& b) {
        return a.per_second != b.per_second ? a.per_second > b.per_second
                                            : a.route->requests > b.route->requests;
    });
    lines.push_back("");
    lines.push_back("  REQ/S  ERR/S       OUT/S  REQUESTS  " + pad_right("SITE", site_width) +
                    "  ROUTE");
    size_t rows = routes.size();
    if (layout.fit) {
        // One line is left free so the cursor never scrolls the screen.
        const size_t room = layout.height > lines.size() + 1 ? layout.height - lines.size() - 1 : 0;
        if (rows > room)
            rows = room > 0 ? room - 1 : 0;
    }
    for (size_t i = 0; i < rows; ++i) {
        const RouteRow& r = routes[i];
        const bool k = rates.known();
        lines.push_back(pad_left(k ? number(r.per_second) : kNoRate, 7) + "  " +
                        pad_left(k ? number(r.errors_per_second) : kNoRate, 5) + "  " +
                        pad_left(k ? bytes(r.bytes_per_second) + "/s" : kNoRate, 10) + "  " +
                        pad_left(std::to_string(r.route->requests), 8) + "  " +
                        pad_right(cut(printable(r.route->site), 24), site_width) + "  " +
                        printable(r.route->route));
    }
    if (rows < routes.size())
        lines.push_back("  (" + std::to_string(routes.size() - rows) + " more routes)");
    if (layout.fit) {
        if (lines.size() > layout.height - 1)
            lines.resize(layout.height - 1);
        for (std::string& l : lines)
            l = cut(l, layout.width);
    }
    return lines;
}

// ---------------------------------------------------------------------------------------------
// The command line

struct TopOptions {
    std::string config_path;
    double interval = 1;
    uint64_t count = 0; // 0: until q
    bool batch = false;
};

int usage(const std::string& message) {
    fprintf(stderr, "wraith top: %s\nRun 'wraith help top' for usage.\n", message.c_str());
    return 2;
}

// Seconds as digits with an optional fraction ("1", "0.5", ".5"): no signs, exponents,
// "inf" or hex, which strtod would take.
bool parse_seconds(const std::string& s, double* out) {
    if (s.empty() || s.find_first_not_of("0123456789.") != std::string::npos ||
        std::count(s.begin(), s.end(), '.') > 1 || s == ".")
        return false;
    *out = strtod(s.c_str(), nullptr);
    return std::isfinite(*out);
}

bool parse_count(const std::string& s, uint64_t* out) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
        return false;
    errno = 0;
    const unsigned long long n = strtoull(s.c_str(), nullptr, 10);
    if (errno == ERANGE || n == 0)
        return false;
    *out = n;
    return true;
}

std::string absolute(const std::string& path) {
    if (path.empty() || path[0] == '/')
        return path;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return path;
    return std::string(cwd) + "/" + path;
}

int run(const TopOptions& options) {
    Terminal terminal(!options.batch && isatty(STDOUT_FILENO));
    bool keys = terminal.keys();
    Stats before;
    bool have_before = false;
    uint64_t screens = 0;
    double next = monotonic_seconds();
    for (;;) {
        ControlAnswer answer = control_request(options.config_path, "stats");
        if (stop_signal())
            break;
        if (!answer.reached || answer.text.empty()) {
            terminal.restore();
            if (!have_before && !answer.reached)
                print_unreachable(answer, options.config_path);
            else
                fprintf(stderr, "wraith: the master at %s went away%s%s\n", answer.socket.c_str(),
                        answer.reached ? "" : ": ", answer.error.c_str());
            return 1;
        }
        if (answer.failed()) {
            terminal.restore();
            fputs(answer.text.c_str(), stderr);
            return 1;
        }
        Stats now;
        std::string error;
        if (!read_stats(answer.text, &now, &error)) {
            terminal.restore();
            fprintf(stderr, "wraith: cannot read the master's stats answer: %s\n", error.c_str());
            return 1;
        }
        if (now.has_server) { // else no generation serves yet: ask again at the next tick
            terminal.draw(render(now, have_before ? &before : nullptr, terminal.layout()));
            before = std::move(now);
            have_before = true;
            if (options.count && ++screens >= options.count)
                return 0;
        }
        next = std::max(next + options.interval, monotonic_seconds());
        Wake wake = wait_until(next, &keys);
        if (wake == Wake::quit)
            return 0;
        if (wake == Wake::stop)
            break;
        // A resize or a continue after Ctrl-Z: a new screen at once.
    }
    terminal.restore();
    return stop_signal() == SIGINT ? 0 : 128 + stop_signal();
}

} // namespace

int top_main(const std::vector<std::string>& args, const std::string& default_config) {
    TopOptions options;
    options.config_path = default_config;
    for (size_t i = 0; i < args.size(); ++i) {
        std::string a = args[i], value;
        bool has_value = false;
        // --name=VALUE, and -dVALUE / -nVALUE / -cVALUE as top(1) takes them.
        if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
            value = a.substr(a.find('=') + 1);
            a = a.substr(0, a.find('='));
            has_value = true;
        } else if (a.size() > 2 && a[0] == '-' && (a[1] == 'c' || a[1] == 'd' || a[1] == 'n')) {
            value = a.substr(2);
            a = a.substr(0, 2);
            has_value = true;
        }
        const bool takes_value = a == "-c" || a == "--config" || a == "-d" || a == "--delay" ||
                                 a == "-n" || a == "--iterations";
        if (has_value && !takes_value)
            return usage("unknown option " + args[i]);
        if (takes_value && !has_value) {
            if (i + 1 >= args.size())
                return usage(a + " needs a value");
            value = args[++i];
        }
        if (a == "-h" || a == "--help") {
            fputs(kTopHelp, stdout);
            return 0;
        } else if (a == "-c" || a == "--config") {
            options.config_path = value;
        } else if (a == "-d" || a == "--delay") {
            if (!parse_seconds(value, &options.interval) || options.interval < kMinInterval)
                return usage(a + " needs seconds, at least 0.2 (e.g. 1 or 0.5), not '" + value +
                             "'");
        } else if (a == "-n" || a == "--iterations") {
            if (!parse_count(value, &options.count))
                return usage(a + " needs a count of screens, at least 1, not '" + value + "'");
        } else if (a == "-b" || a == "--batch") {
            options.batch = true;
        } else if (!a.empty() && a[0] == '-') {
            return usage("unknown option " + a);
        } else {
            return usage("unexpected argument " + a);
        }
    }
    options.config_path = absolute(options.config_path);
    return run(options);
}

} // namespace wraith
