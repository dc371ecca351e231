// Access logs of one worker: a buffered writer per distinct file, NGINX "combined" or JSON
// lines, flushed when the buffer fills and once a second, reopened on USR1.
#pragma once

#include <ev.h>
#include <map>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/http.h"

namespace wraith {

struct ExchangeSummary;

class AccessLogFile {
public:
    explicit AccessLogFile(std::string path) : path_(std::move(path)) {}
    ~AccessLogFile();
    bool open();
    void append(std::string_view line);
    void flush();
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
    bool owns_ = false;
    std::string buf_;
};

class AccessLogs {
public:
    AccessLogs() = default;
    ~AccessLogs();
    // Opens every file named by the config (global and per site).
    void open(struct ev_loop* loop, const Config& config);
    void reopen();
    void stop(); // flushes and stops the timer; call before the loop is destroyed
    void flush_all();
    // Formats and buffers one line for `req` in its site's log (or the global one).
    void log(const Request& req, const ExchangeSummary& s);

private:
    static void on_flush(struct ev_loop* loop, ev_timer* w, int revents);
    AccessLogFile* file_for(const AccessLogConfig& c);

    const Config* config_ = nullptr;
    std::map<std::string, std::unique_ptr<AccessLogFile>, std::less<>> files_;
    std::string line_; // reused formatting buffer
    struct ev_loop* loop_ = nullptr;
    ev_timer flush_timer_{};
};

} // namespace wraith
