// Error log (levels, NGINX-like line format, rate limiting for lines a client can trigger) and
// the process-wide log sink. One per process: the master and each worker write their own lines
// to the same file (O_APPEND keeps lines whole).
#pragma once

#include <cstdarg>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wraith {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

std::optional<LogLevel> log_level_from(std::string_view s);

class ErrorLog {
public:
    // `path` is "stderr", "stdout" or a file (opened O_APPEND|O_CREAT).
    // Returns false and sets *err when the file cannot be opened.
    static bool open(const std::string& path, LogLevel level, std::string* err);
    static bool reopen(std::string* err); // same path, for USR1 / logrotate
    static void set_level(LogLevel level);
    static void set_identity(std::string_view who); // "master" or "worker 0/3"
    static bool enabled(LogLevel level);
    static const std::string& path();
    static void write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    static void vwrite(LogLevel level, const char* fmt, va_list ap);
    // For problems a client can cause at will (bad requests): at most a burst of 20 lines and
    // then 10 per second per process; the next line that passes says how many were dropped.
    static void limited(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    static int fd();
};

#define WLOG_ERROR(...) ::wraith::ErrorLog::write(::wraith::LogLevel::error, __VA_ARGS__)
#define WLOG_WARN(...) ::wraith::ErrorLog::write(::wraith::LogLevel::warn, __VA_ARGS__)
#define WLOG_INFO(...)                                                                             \
    do {                                                                                           \
        if (::wraith::ErrorLog::enabled(::wraith::LogLevel::info))                                 \
            ::wraith::ErrorLog::write(::wraith::LogLevel::info, __VA_ARGS__);                      \
    } while (0)
#define WLOG_DEBUG(...)                                                                            \
    do {                                                                                           \
        if (::wraith::ErrorLog::enabled(::wraith::LogLevel::debug))                                \
            ::wraith::ErrorLog::write(::wraith::LogLevel::debug, __VA_ARGS__);                     \
    } while (0)

} // namespace wraith
