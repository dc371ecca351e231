// A small asynchronous HTTP/1.0 client for fetches the server makes itself (the master's OCSP
// responders, the crowdsec module's Local API pulls in a worker): plain http:// URLs, one request
// per connection, a bounded answer, everything on the caller's libev loop (c-ares for the name,
// non-blocking connect, read and write). Nothing blocks and no thread starts, so forking workers
// never copies a half-done fetch or a held lock. HTTP/1.0 keeps the answer unchunked and
// delimited by the connection's end.
#pragma once

#include <ev.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

#include "common/config_reader.h"

namespace wraith {

class Resolver;

class HttpFetch {
public:
    struct Result {
        bool ok = false;     // a complete 200 answer arrived
        int status = 0;      // the answer's status, 0 when none
        std::string body;    // the answer's body (ok only)
        std::string problem; // why not, for logs
    };
    using Done = std::function<void(Result)>;

    struct Options {
        std::string content_type;    // POST: the body's media type
        std::string body;            // POST when not empty, else GET
        Duration timeout{10000};     // the whole fetch: name, connect, request and answer
        size_t max_answer = 1 << 16; // head + body; longer answers fail
        // Request fields besides Host and User-Agent ({"X-Api-Key", "..."}); values must not
        // hold CR or LF (the caller checks what it takes from config).
        std::vector<std::pair<std::string, std::string>> headers;
    };

    // Starts fetching `url` ("http://host[:port]/path"). `done` runs once, on the loop, never
    // inside this constructor; it may destroy this object.
    HttpFetch(struct ev_loop* loop, Resolver& resolver, const std::string& url, Options options,
              Done done);
    ~HttpFetch(); // a fetch still running is abandoned; `done` is not called
    HttpFetch(const HttpFetch&) = delete;
    HttpFetch& operator=(const HttpFetch&) = delete;

    // Splits "http://host[:port]/path"; false for anything else.
    static bool split_url(std::string_view url, std::string& host, uint16_t& port,
                          std::string& path, std::string& host_field);
    // Parses a complete answer (head and body up to EOF): status, body, or the problem.
    static Result parse_answer(std::string_view answer, std::string_view from);

private:
    enum class State { resolving, connecting, sending, reading, done };

    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timeout(struct ev_loop* loop, ev_timer* w, int revents);
    void resolved(std::vector<sockaddr_storage> addrs, const std::string& error);
    void connect_next();
    void connected();
    void send_some();
    void read_some();
    void close_socket();
    // Ends the fetch and calls `done`; the caller returns at once (`this` may be gone).
    void finish(Result r);
    void fail(std::string problem);

    struct ev_loop* loop_;
    Options options_;
    Done done_;
    State state_ = State::resolving;
    std::string host_field_; // host[:port] as in the URL, for Host and messages
    std::string request_;    // head + body
    size_t sent_ = 0;
    std::string answer_;
    std::vector<sockaddr_storage> addrs_;
    size_t next_addr_ = 0;
    int fd_ = -1;
    ev_io io_;
    ev_timer timer_;
    // Resolver callbacks can outlive this object: they hold a weak reference to it.
    std::shared_ptr<HttpFetch*> self_;
};

} // namespace wraith
