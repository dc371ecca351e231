#include "common/log.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <unistd.h>

namespace wraith {

namespace {

struct State {
    int fd = 2;
    bool owns_fd = false;
    std::string path = "stderr";
    LogLevel level = LogLevel::info;
    char who[32] = "wraith";
    // Token bucket for limited().
    double tokens = 20;
    timespec last_refill{};
    uint64_t dropped = 0;
};

State& state() {
    static State s;
    return s;
}

const char* level_name(LogLevel l) {
    switch (l) {
    case LogLevel::error:
        return "error";
    case LogLevel::warn:
        return "warn";
    case LogLevel::info:
        return "info";
    case LogLevel::debug:
        return "debug";
    }
    return "?";
}

int open_path(const std::string& path, std::string* err) {
    if (path == "stderr")
        return 2;
    if (path == "stdout")
        return 1;
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && err)
        *err = "cannot open " + path + ": " + std::strerror(errno);
    return fd;
}

} // namespace

std::optional<LogLevel> log_level_from(std::string_view s) {
    if (s == "error")
        return LogLevel::error;
    if (s == "warn")
        return LogLevel::warn;
    if (s == "info")
        return LogLevel::info;
    if (s == "debug")
        return LogLevel::debug;
    return std::nullopt;
}

bool ErrorLog::open(const std::string& path, LogLevel level, std::string* err) {
    State& s = state();
    int fd = open_path(path, err);
    if (fd < 0)
        return false;
    if (s.owns_fd)
        ::close(s.fd);
    s.fd = fd;
    s.owns_fd = fd > 2;
    s.path = path;
    s.level = level;
    return true;
}

bool ErrorLog::reopen(std::string* err) {
    State& s = state();
    return open(s.path, s.level, err);
}

void ErrorLog::set_level(LogLevel level) {
    state().level = level;
}

void ErrorLog::set_identity(std::string_view who) {
    State& s = state();
    size_t n = std::min(who.size(), sizeof(s.who) - 1);
    std::memcpy(s.who, who.data(), n);
    s.who[n] = 0;
}

bool ErrorLog::enabled(LogLevel level) {
    return level <= state().level;
}
const std::string& ErrorLog::path() {
    return state().path;
}
int ErrorLog::fd() {
    return state().fd;
}

void ErrorLog::vwrite(LogLevel level, const char* fmt, va_list ap) {
    State& s = state();
    if (level > s.level)
        return;
    char line[2048];
    time_t now = time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d/%02d/%02d %02d:%02d:%02d [%s] %d %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, level_name(level), (int)getpid(),
                     s.who);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = std::min<size_t>(n + m, sizeof(line) - 2);
    line[len++] = '\n';
    ssize_t w = ::write(s.fd, line, len);
    (void)w;
}

void ErrorLog::write(LogLevel level, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, fmt, ap);
    va_end(ap);
}

void ErrorLog::limited(LogLevel level, const char* fmt, ...) {
    State& s = state();
    if (level > s.level)
        return;
    timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    double elapsed =
        (now.tv_sec - s.last_refill.tv_sec) + (now.tv_nsec - s.last_refill.tv_nsec) / 1e9;
    s.last_refill = now;
    s.tokens = std::min(20.0, s.tokens + elapsed * 10.0);
    if (s.tokens < 1.0) {
        ++s.dropped;
        return;
    }
    s.tokens -= 1.0;
    if (s.dropped) {
        write(LogLevel::warn, "%llu similar client-error messages suppressed",
              (unsigned long long)s.dropped);
        s.dropped = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, fmt, ap);
    va_end(ap);
}

} // namespace wraith
