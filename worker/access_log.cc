#include "worker/access_log.h"

#include "modules/geo/geo.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/module.h"
#include "common/variables.h"

namespace wraith {

namespace {

constexpr size_t kFlushAt = 32 * 1024;

// NGINX escapes '"', '\\' and bytes outside printable ASCII as \xHH in combined logs.
void append_escaped_combined(std::string& out, std::string_view s) {
    static const char hex[] = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
}

void append_uint(std::string& out, uint64_t v) {
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    out.append(buf, n);
}

std::string_view or_dash(std::string_view v) {
    return v.empty() ? std::string_view("-") : v;
}

const char* protocol_name(int version) {
    switch (version) {
    case 10:
        return "HTTP/1.0";
    case 11:
        return "HTTP/1.1";
    case 20:
        return "HTTP/2.0";
    case 30:
        return "HTTP/3.0";
    }
    return "HTTP/1.1";
}

void format_combined(std::string& out, const Request& req, const ExchangeSummary& s) {
    out += or_dash(client_ip_of(req));
    out += " - - [";
    char tbuf[64];
    struct tm tm;
    time_t t = req.start.tv_sec;
    localtime_r(&t, &tm);
    size_t n = strftime(tbuf, sizeof(tbuf), "%d/%b/%Y:%H:%M:%S %z", &tm);
    out.append(tbuf, n);
    out += "] \"";
    if (req.method.empty()) {
        append_escaped_combined(out, req.target); // rejected: the raw request line
    } else {
        append_escaped_combined(out, req.method);
        out += ' ';
        append_escaped_combined(out, req.target);
        out += ' ';
        out += protocol_name(req.version);
    }
    out += "\" ";
    append_uint(out, s.status);
    out += ' ';
    append_uint(out, s.body_bytes);
    out += " \"";
    append_escaped_combined(out, or_dash(req.headers.get("referer")));
    out += "\" \"";
    append_escaped_combined(out, or_dash(req.headers.get("user-agent")));
    out += '"';
    // Filters' notes (a limit's decision) after NGINX's fields, so parsers of the combined
    // format still read the line; only exchanges with notes have them.
    for (const LogNote* n = req.log_notes; n; n = n->next) {
        out += ' ';
        append_escaped_combined(out, n->name);
        out += '=';
        append_escaped_combined(out, n->value);
    }
    out += '\n';
}

void format_json(std::string& out, const Request& req, const ExchangeSummary& s) {
    char tbuf[64];
    struct tm tm;
    time_t t = req.start.tv_sec;
    gmtime_r(&t, &tm);
    size_t n = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(tbuf + n, sizeof(tbuf) - n, ".%03ldZ", req.start.tv_nsec / 1000000);
    out += "{\"time\":";
    append_json_string(out, {tbuf, n});
    out += ",\"remote_addr\":";
    append_json_string(out, client_ip_of(req));
    out += ",\"method\":";
    append_json_string(out, req.method);
    out += ",\"host\":";
    append_json_string(out, req.host);
    out += ",\"uri\":";
    append_json_string(out, req.target);
    out += ",\"path\":";
    append_json_string(out, req.path);
    out += ",\"query\":";
    append_json_string(out, req.query);
    out += ",\"protocol\":";
    append_json_string(out, protocol_name(req.version));
    out += ",\"status\":";
    append_uint(out, s.status);
    out += ",\"bytes\":";
    append_uint(out, s.body_bytes);
    char dbuf[32];
    int dn = snprintf(dbuf, sizeof(dbuf), "%.3f", s.duration_us / 1000.0);
    out += ",\"duration_ms\":";
    out.append(dbuf, dn);
    if (s.request_bytes) {
        out += ",\"request_bytes\":";
        append_uint(out, s.request_bytes);
    }
    out += ",\"referer\":";
    append_json_string(out, req.headers.get("referer"));
    out += ",\"user_agent\":";
    append_json_string(out, req.headers.get("user-agent"));
    if (std::string_view id = req.headers.get("x-request-id"); !id.empty()) {
        out += ",\"request_id\":";
        append_json_string(out, id);
    }
    if (req.conn && !req.conn->tls_version().empty()) {
        out += ",\"tls\":";
        append_json_string(out, req.conn->tls_version());
        out += ",\"tls_cipher\":";
        append_json_string(out, req.conn->tls_cipher());
        if (req.conn->tls_resumed())
            out += ",\"tls_resumed\":true";
    }
    if (const UpstreamReport* u = req.upstream; u && u->tries) {
        // What the proxy did: the last try's server, status and timings (ms), and the tries.
        out += ",\"upstream\":";
        append_json_string(out, u->address);
        out += ",\"upstream_status\":";
        append_uint(out, static_cast<uint64_t>(u->status));
        out += ",\"upstream_tries\":";
        append_uint(out, u->tries);
        const std::pair<const char*, int64_t> times[] = {{"upstream_connect_ms", u->connect_us},
                                                         {"upstream_header_ms", u->header_us},
                                                         {"upstream_response_ms", u->response_us}};
        for (const auto& [name, us] : times) {
            if (us < 0)
                continue;
            char t[48];
            int tn = snprintf(t, sizeof(t), ",\"%s\":%.3f", name, us / 1000.0);
            out.append(t, static_cast<size_t>(tn));
        }
        if (u->failure) {
            out += ",\"upstream_failure\":";
            append_json_string(out, u->failure);
        }
    }
    if (req.conn && !req.conn->client_subject().empty()) {
        out += ",\"client_subject\":";
        append_json_string(out, req.conn->client_subject());
        out += ",\"client_fingerprint\":";
        append_json_string(out, req.conn->client_fingerprint());
    }
    // With [geo]: the client's country and AS number (a rule may have looked them up already;
    // without [geo] this asks nothing).
    const geo::Lookup& g = geo::lookup(req);
    if (!g.country.empty()) {
        out += ",\"geo_country\":";
        append_json_string(out, g.country);
    }
    if (!g.asn_text.empty()) {
        out += ",\"geo_asn\":";
        out += g.asn_text;
    }
    for (const LogNote* n = req.log_notes; n; n = n->next) {
        out += ',';
        append_json_string(out, n->name);
        out += ':';
        append_json_string(out, n->value);
    }
    if (s.aborted)
        out += ",\"aborted\":true";
    out += "}\n";
}

// A format with variables (NGINX's log_format): literal text as written, each value escaped
// as the log's `escape` says; an empty value prints "-" (NGINX's convention) except with
// escape = "json", where it stays empty (so "$x" in quotes is "").
void format_custom(std::string& out, const AccessLogConfig& c, const Request& req) {
    c.custom->expand_each(req, *req.arena, [&](std::string_view text, bool value) {
        if (!value || c.escape == AccessLogConfig::Escape::none) {
            out += value && text.empty() ? std::string_view("-") : text;
        } else if (c.escape == AccessLogConfig::Escape::json) {
            append_json_escaped(out, text); // inside the format's own quotes
        } else {
            append_escaped_combined(out, or_dash(text));
        }
    });
    out += '\n';
}

} // namespace

AccessLogFile::~AccessLogFile() {
    flush();
    if (owns_)
        ::close(fd_);
}

bool AccessLogFile::open() {
    int fd;
    if (path_ == "stdout")
        fd = 1;
    else if (path_ == "stderr")
        fd = 2;
    else
        fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        WLOG_ERROR("cannot open access log %s: %s", path_.c_str(), std::strerror(errno));
        return false;
    }
    flush();
    if (owns_)
        ::close(fd_);
    fd_ = fd;
    owns_ = fd > 2;
    return true;
}

void AccessLogFile::append(std::string_view line) {
    buf_.append(line);
    if (buf_.size() >= kFlushAt)
        flush();
}

void AccessLogFile::flush() {
    if (buf_.empty() || fd_ < 0) {
        buf_.clear();
        return;
    }
    // Regular files do not return EAGAIN; a full disk loses the buffer, not the worker.
    size_t off = 0;
    while (off < buf_.size()) {
        ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += n;
    }
    buf_.clear();
}

AccessLogs::~AccessLogs() {
    stop();
}

void AccessLogs::stop() {
    flush_all();
    if (loop_) {
        ev_ref(loop_);
        ev_timer_stop(loop_, &flush_timer_);
        loop_ = nullptr;
    }
}

static bool log_disabled(const std::string& p) {
    return p.empty() || p == "off";
}

void AccessLogs::open(struct ev_loop* loop, const Config& config) {
    config_ = &config;
    loop_ = loop;
    auto add = [&](const AccessLogConfig& c) {
        if (log_disabled(c.path) || files_.count(c.path))
            return;
        auto f = std::make_unique<AccessLogFile>(c.path);
        f->open();
        files_.emplace(c.path, std::move(f));
    };
    add(config.access_log);
    for (const auto& site : config.sites)
        add(site->access_log);
    ev_timer_init(&flush_timer_, on_flush, 1.0, 1.0);
    flush_timer_.data = this;
    ev_timer_start(loop, &flush_timer_);
    ev_unref(loop); // the flush timer alone does not keep the loop alive
}

void AccessLogs::on_flush(struct ev_loop*, ev_timer* w, int) {
    static_cast<AccessLogs*>(w->data)->flush_all();
}

void AccessLogs::flush_all() {
    for (auto& [path, f] : files_)
        f->flush();
}

void AccessLogs::reopen() {
    for (auto& [path, f] : files_)
        f->open();
}

AccessLogFile* AccessLogs::file_for(const AccessLogConfig& c) {
    if (log_disabled(c.path))
        return nullptr;
    auto it = files_.find(c.path);
    return it == files_.end() ? nullptr : it->second.get();
}

void AccessLogs::log(const Request& req, const ExchangeSummary& s) {
    if (!config_)
        return;
    // A site's access_log already holds the global settings it did not override.
    const AccessLogConfig* c = req.site ? &req.site->access_log : &config_->access_log;
    AccessLogFile* f = file_for(*c);
    if (!f)
        return;
    line_.clear();
    if (c->custom)
        format_custom(line_, *c, req);
    else if (c->format == "json")
        format_json(line_, req, s);
    else
        format_combined(line_, req, s);
    f->append(line_);
}

} // namespace wraith
