// The master's asynchronous HTTP/1.0 client (OCSP fetches) against small loopback servers: a
// POST and its answer, a non-200 answer, a server that never answers (timeout), a refused
// connection, an answer over the size bound, a bad URL, and that the callback never runs
// inside the constructor and not at all once the fetch is destroyed.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "common/resolver.h"
#include "common/http_fetch.h"

using wraith::HttpFetch;
using wraith::Resolver;

namespace {

// Accepts one connection, reads the request head and `Content-Length` body, then answers
// `answer` (nothing when empty: it holds the connection until destroyed) and closes.
class OneShotServer {
public:
    explicit OneShotServer(std::string answer) : answer_(std::move(answer)) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
        REQUIRE(listen(fd_, 4) == 0);
        socklen_t len = sizeof(a);
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~OneShotServer() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    std::string url(const std::string& path = "/ocsp") const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    std::string request() const { return request_; }

private:
    void run() {
        int c = -1;
        while (!stop_ && c < 0) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 20) == 1)
                c = accept(fd_, nullptr, nullptr);
        }
        if (c < 0)
            return;
        std::string in;
        while (!stop_) {
            pollfd p{c, POLLIN, 0};
            if (poll(&p, 1, 20) != 1)
                continue;
            char buf[4096];
            ssize_t n = recv(c, buf, sizeof(buf), 0);
            if (n <= 0)
                break;
            in.append(buf, static_cast<size_t>(n));
            size_t end = in.find("\r\n\r\n");
            size_t cl = in.find("Content-Length: ");
            if (end != std::string::npos &&
                (cl == std::string::npos || in.size() >= end + 4 + std::stoul(in.substr(cl + 16))))
                break;
        }
        request_ = in;
        if (!answer_.empty()) {
            send(c, answer_.data(), answer_.size(), MSG_NOSIGNAL);
        } else {
            while (!stop_)
                usleep(10000);
        }
        close(c);
    }

    int fd_ = -1;
    uint16_t port_ = 0;
    std::string answer_;
    std::string request_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

struct Loop {
    struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
    ~Loop() { ev_loop_destroy(loop); }
};

HttpFetch::Result fetch(const std::string& url, HttpFetch::Options options) {
    Loop l;
    Resolver resolver(l.loop, "", 1000);
    HttpFetch::Result out;
    bool done = false;
    HttpFetch f(l.loop, resolver, url, std::move(options), [&](HttpFetch::Result r) {
        out = std::move(r);
        done = true;
    });
    CHECK_FALSE(done); // never inside the constructor
    ev_tstamp deadline = ev_time() + 10;
    while (!done && ev_time() < deadline)
        ev_run(l.loop, EVRUN_ONCE);
    REQUIRE(done);
    return out;
}

} // namespace

TEST_CASE("http_fetch: a POST gets its 200 answer's body") {
    OneShotServer srv("HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\nDER!");
    HttpFetch::Options o;
    o.content_type = "application/ocsp-request";
    o.body = std::string("\x30\x03\x02\x01\x00", 5);
    HttpFetch::Result r = fetch(srv.url(), o);
    CHECK(r.ok);
    CHECK(r.status == 200);
    CHECK(r.body == "DER!");
    std::string req = srv.request();
    CHECK(req.rfind("POST /ocsp HTTP/1.0\r\n", 0) == 0);
    CHECK(req.find("\r\nContent-Type: application/ocsp-request\r\n") != std::string::npos);
    CHECK(req.find("\r\nContent-Length: 5\r\n") != std::string::npos);
    CHECK(req.substr(req.size() - 5) == o.body);
}

TEST_CASE("http_fetch: a non-200 answer is a failure naming the status") {
    OneShotServer srv("HTTP/1.1 503 Busy\r\n\r\n");
    HttpFetch::Result r = fetch(srv.url(), {});
    CHECK_FALSE(r.ok);
    CHECK(r.status == 503);
    CHECK(r.problem.find("answered 503") != std::string::npos);
}

TEST_CASE("http_fetch: a server that never answers times out") {
    OneShotServer srv("");
    HttpFetch::Options o;
    o.timeout = std::chrono::milliseconds(300);
    HttpFetch::Result r = fetch(srv.url(), o);
    CHECK_FALSE(r.ok);
    CHECK(r.problem.find("timed out") != std::string::npos);
}

TEST_CASE("http_fetch: refused connections, oversized answers and bad URLs fail cleanly") {
    // A port nobody listens on: bind one, close it.
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    close(s);
    HttpFetch::Result r = fetch("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/", {});
    CHECK_FALSE(r.ok);
    CHECK(r.problem.find("cannot connect") != std::string::npos);

    OneShotServer big("HTTP/1.0 200 OK\r\n\r\n" + std::string(5000, 'x'));
    HttpFetch::Options o;
    o.max_answer = 1024;
    r = fetch(big.url(), o);
    CHECK_FALSE(r.ok);
    CHECK(r.problem.find("larger than 1024") != std::string::npos);

    r = fetch("https://127.0.0.1/", {});
    CHECK_FALSE(r.ok);
    CHECK(r.problem.find("not an http:// URL") != std::string::npos);
}

TEST_CASE("http_fetch: a destroyed fetch never calls back") {
    OneShotServer srv("HTTP/1.0 200 OK\r\n\r\nlate");
    Loop l;
    Resolver resolver(l.loop, "", 1000);
    bool called = false;
    auto f = std::make_unique<HttpFetch>(l.loop, resolver, srv.url(), HttpFetch::Options{},
                                         [&](HttpFetch::Result) { called = true; });
    ev_run(l.loop, EVRUN_NOWAIT);
    f.reset();
    ev_tstamp until = ev_time() + 0.3;
    while (ev_time() < until)
        ev_run(l.loop, EVRUN_NOWAIT);
    CHECK_FALSE(called);
}

TEST_CASE("http_fetch: URLs") {
    std::string host, path, field;
    uint16_t port = 0;
    REQUIRE(HttpFetch::split_url("http://ocsp.example:8080/a/b", host, port, path, field));
    CHECK(host == "ocsp.example");
    CHECK(port == 8080);
    CHECK(path == "/a/b");
    CHECK(field == "ocsp.example:8080");
    REQUIRE(HttpFetch::split_url("http://[::1]", host, port, path, field));
    CHECK(host == "::1");
    CHECK(port == 80);
    CHECK(path == "/");
    CHECK_FALSE(HttpFetch::split_url("http://[::1/", host, port, path, field));
    CHECK_FALSE(HttpFetch::split_url("http://h:0/", host, port, path, field));
    CHECK_FALSE(HttpFetch::split_url("http://h:99999/", host, port, path, field));
    CHECK_FALSE(HttpFetch::split_url("http:///x", host, port, path, field));
    CHECK_FALSE(HttpFetch::split_url("ftp://h/", host, port, path, field));
}
