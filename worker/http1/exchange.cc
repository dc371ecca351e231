// The HTTP/1.1 response: status line and fields, Content-Length or chunked framing, 100
// Continue and keep-alive decisions, the 101 into a tunnel. Bytes go to the connection's
// output queue (connection.cc writes it).
#include "worker/http1/exchange.h"

#include <charconv>
#include <cstdio>

#include "common/kept_memory.h"
#include "common/log.h"
#include "worker/exchange_util.h"
#include "worker/http1/connection.h"
#include "worker/worker.h"

namespace wraith::http1 {

namespace {

// "content-type" -> "Content-Type" on the wire; HTTP/1 field names are case-insensitive,
// but people read them, and some old clients expect the usual spelling.
void append_field_name(std::string& out, std::string_view name) {
    if (name == "etag") {
        out += "ETag";
        return;
    }
    if (name == "www-authenticate") {
        out += "WWW-Authenticate";
        return;
    }
    bool upper = true;
    for (char c : name) {
        out += upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
        upper = c == '-';
    }
}

void append_decimal(std::string& out, uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), v); // no locale, no format parsing
    out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void append_status_line(std::string& out, int version, int status) {
    out += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
    append_decimal(out, static_cast<uint64_t>(status));
    out += ' ';
    out += status_reason(status);
    out += "\r\n";
}

// Framing and connection management are ours to write (RFC 9112 §6, §9.6).
bool hop_by_hop(std::string_view name) {
    return name == "content-length" || name == "transfer-encoding" || name == "connection" ||
           name == "keep-alive";
}

} // namespace

// Freed exchanges' memory is reused by the next ones.
using KeptExchanges = KeptMemory<Exchange, 256>;

void* Exchange::operator new(size_t size) {
    return KeptExchanges::take(size);
}

void Exchange::operator delete(void* p, size_t size) {
    KeptExchanges::give(p, size);
}

Exchange::Exchange(Connection& conn)
    : wraith::Exchange(conn.worker_, conn.peer_.info, &conn.worker_.arena_blocks()), conn_(conn) {}

Exchange::~Exchange() = default;

bool Exchange::transport_gone() const {
    return conn_.state_ != Connection::State::exchange;
}

void Exchange::abort_and_finish(uint64_t request_bytes) {
    finish(false, request_bytes);
}

void Exchange::write_fields(const ResponseHead& head) {
    std::string& o = conn_.out_mem();
    const std::string& server = worker_.config().http.server_header;
    if (!server.empty()) {
        o += "Server: ";
        o += server;
        o += "\r\n";
    }
    o += "Date: ";
    o += worker_.http_date();
    o += "\r\n";
    if (!conn_.peer_.info.alt_svc.empty() && head.status != 101 && !head.headers.find("alt-svc")) {
        o += "Alt-Svc: ";
        o += conn_.peer_.info.alt_svc;
        o += "\r\n";
    }
    for (const Header& h : head.headers) {
        if (hop_by_hop(h.name))
            continue;
        append_field_name(o, h.name);
        o += ": ";
        o += h.value;
        o += "\r\n";
    }
}

void Exchange::submit_informational(int status, const Headers& headers) {
    if (req_.version < 11)
        return; // HTTP/1.0 knows no 1xx
    std::string& o = conn_.out_mem();
    size_t start = o.size();
    append_status_line(o, 11, status);
    for (const Header& h : headers) {
        append_field_name(o, h.name);
        o += ": ";
        o += h.value;
        o += "\r\n";
    }
    o += "\r\n";
    conn_.register_mem(start, o.size() - start);
    conn_.want_flush();
}

bool Exchange::submit_head(ResponseHead& head, bool end_stream) {
    Connection& c = conn_;
    std::string& o = c.out_mem();
    if (head.status == 101) {
        // RFC 9110 §15.2.2: the tunnel starts right after the empty line of the 101.
        if (tunnel_ != Tunnel::open) {
            // Only a handler bug gets here: a switch nobody asked for, or one with no stream.
            WLOG_ERROR("handler answered 101 to a request from %s that cannot switch",
                       c.peer_.text);
            c.keep_alive_ = false;
            c.abort_exchange();
            return false;
        }
        size_t start = o.size();
        o += "HTTP/1.1 101 Switching Protocols\r\n";
        write_fields(head);
        o += "Connection: upgrade\r\n\r\n";
        c.register_mem(start, o.size() - start);
        c.want_flush();
        c.start_tunnel();
        return true;
    }
    if (!c.body_done_ && c.expect_continue_ && !c.continue_sent_ && !c.body_failed_) {
        // The client waits for 100 before sending its body. For a success answered without
        // reading it (as NGINX does when discarding), say 100 first so the body comes and can
        // be discarded on a kept-alive connection; otherwise the connection must close.
        uint64_t left = c.framing_ == BodyFraming::content_length ? c.body_left_ : 0;
        if (head.status < 400 && left <= Connection::kMaxDiscard) {
            c.continue_sent_ = true;
            c.queue_mem("HTTP/1.1 100 Continue\r\n\r\n");
        } else {
            c.keep_alive_ = false;
        }
    }
    if (c.body_failed_ || c.draining_ || worker_.draining())
        c.keep_alive_ = false;

    const bool has_body = status_has_body(head.status);
    chunked_out_ = has_body && head.content_length < 0 && !head_request_ && !end_stream;
    if (has_body && head.content_length < 0 && !head_request_) {
        if (end_stream) {
            body_expected_ = 0; // empty body, known now
        } else if (req_.version < 11) {
            c.keep_alive_ = false; // HTTP/1.0: the body ends at close
            chunked_out_ = false;
        }
    }

    size_t start = o.size();
    append_status_line(o, req_.version, head.status);
    write_fields(head);
    if (has_body && head.status != 304) {
        if (body_expected_ >= 0) {
            o += "Content-Length: ";
            append_decimal(o, static_cast<uint64_t>(body_expected_));
            o += "\r\n";
        } else if (chunked_out_) {
            o += "Transfer-Encoding: chunked\r\n";
        }
    }
    if (!c.keep_alive_)
        o += "Connection: close\r\n";
    else if (req_.version < 11)
        o += "Connection: keep-alive\r\n";
    o += "\r\n";
    c.register_mem(start, o.size() - start);
    return true;
}

void Exchange::queue_body(std::string_view data, bool) {
    if (chunked_out_) {
        char size_line[24];
        int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
        conn_.queue_mem({size_line, static_cast<size_t>(n)});
        conn_.queue_mem(data);
        conn_.queue_mem("\r\n");
    } else {
        conn_.queue_mem(data);
    }
    body_sent_ += data.size();
}

void Exchange::queue_file(int fd, off_t offset, size_t len) {
    if (chunked_out_) {
        char size_line[24];
        int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
        conn_.queue_mem({size_line, static_cast<size_t>(n)});
        conn_.queue_file(fd, offset, len);
        conn_.queue_mem("\r\n");
    } else {
        conn_.queue_file(fd, offset, len);
    }
    body_sent_ += len;
}

void Exchange::queue_trailers(const Headers& trailers) {
    if (!chunked_out_)
        return; // Content-Length or HTTP/1.0: no room for trailers
    // RFC 9112 §7.1.2: the last chunk, then the trailer section, then CRLF.
    std::string& o = conn_.out_mem();
    size_t start = o.size();
    o += "0\r\n";
    for (const Header& h : trailers) {
        append_field_name(o, h.name);
        o += ": ";
        o += h.value;
        o += "\r\n";
    }
    o += "\r\n";
    conn_.register_mem(start, o.size() - start);
    chunked_out_ = false; // the last chunk is out
}

void Exchange::kick() {
    if (response_ == Response::ended)
        return; // response_ended() flushed
    if (conn_.queued_mem() >= Connection::kHighWatermark)
        conn_.flush();
    else
        conn_.want_flush();
}

bool Exchange::congested() const {
    return conn_.queued_mem() >= Connection::kHighWatermark ||
           conn_.queued_files() > Connection::kMaxQueuedFiles;
}

void Exchange::response_ended(uint64_t short_by) {
    if (chunked_out_) {
        chunked_out_ = false;
        conn_.queue_mem("0\r\n\r\n");
    }
    if (short_by) // the client would wait for the rest forever: close after what we have
        conn_.keep_alive_ = false;
    conn_.response_done();
}

void Exchange::submit_reset() {
    conn_.keep_alive_ = false;
    conn_.abort_exchange();
}

} // namespace wraith::http1
