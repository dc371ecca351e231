// Test doubles for module tests: a ResponseWriter that records what reaches it and can play a
// congested transport, a BodyReader with no body, and a request builder. Header-only; names
// live in wraith::modtest so other test files' helpers cannot collide with them.
#pragma once

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "common/arena.h"
#include "common/http.h"
#include "common/module.h"

namespace wraith::modtest {

// Records the response; with `block_after_bytes` it answers `blocked` once that many body
// bytes arrived since the last drain, and drain() plays the transport catching up.
class RecordingWriter final : public ResponseWriter {
public:
    // Headers as sent, copied (the originals may live in an arena that is reset).
    std::vector<std::pair<std::string, std::string>> headers;
    int status = 0;
    int64_t content_length = -2; // -2: send_headers not called
    bool headers_end = false;
    std::string body;
    bool ended = false;
    bool was_reset = false;
    int body_calls = 0;
    int file_calls = 0;      // send_file calls that reached us (zero-copy path)
    int calls_after_end = 0; // any data call after end_stream: a contract breach

    // Backpressure simulation.
    size_t block_after_bytes = 0; // 0: never blocks
    bool blocked = false;
    size_t since_drain = 0;
    size_t max_bytes_while_blocked = 0; // bytes accepted after saying blocked, worst episode
    size_t bytes_while_blocked = 0;
    int blocked_episodes = 0;
    Result close_with = Result::ok; // set to closed to simulate a gone peer

    Callback writable_cb;
    Callback abort_cb;

    std::string header(const std::string& name) const {
        for (const auto& [n, v] : headers)
            if (n == name)
                return v;
        return {};
    }
    size_t header_count(const std::string& name) const {
        size_t n = 0;
        for (const auto& h : headers)
            n += h.first == name;
        return n;
    }
    bool has_header(const std::string& name) const { return header_count(name) > 0; }

    // The transport drained: clear `blocked` and run the on_writable callback, if armed.
    bool drain() {
        blocked = false;
        since_drain = 0;
        bytes_while_blocked = 0;
        if (!writable_cb)
            return false;
        Callback cb = std::move(writable_cb);
        writable_cb = nullptr;
        cb();
        return true;
    }
    // Drains until nobody waits any more; returns the rounds it took.
    int drain_all(int limit = 1000000) {
        int rounds = 0;
        while (rounds < limit && drain())
            ++rounds;
        return rounds;
    }
    void abort() {
        if (abort_cb)
            abort_cb();
    }

    void send_informational(int, const Headers&) override {}
    void send_headers(ResponseHead& head, bool end_stream) override {
        status = head.status;
        content_length = head.content_length;
        headers_end = end_stream;
        for (const Header& h : head.headers)
            headers.emplace_back(std::string(h.name), std::string(h.value));
        ended = end_stream;
    }
    Result send_body(std::string_view data, bool end_stream) override {
        ++body_calls;
        return accept(data, end_stream);
    }
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override {
        ++file_calls;
        std::string data(len, '\0');
        size_t got = 0;
        while (got < len) {
            ssize_t n = ::pread(fd, data.data() + got, len - got, offset + off_t(got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += size_t(n);
        }
        data.resize(got);
        return accept(data, end_stream);
    }
    void on_writable(Callback cb) override { writable_cb = std::move(cb); }
    void on_abort(Callback cb) override { abort_cb = std::move(cb); }
    void reset() override { was_reset = true; }
    bool headers_sent() const override { return content_length != -2; }
    uint64_t body_bytes_sent() const override { return body.size(); }

private:
    Result accept(std::string_view data, bool end_stream) {
        if (ended)
            ++calls_after_end;
        if (close_with == Result::closed)
            return Result::closed;
        body.append(data);
        ended = ended || end_stream;
        if (blocked) {
            bytes_while_blocked += data.size();
            if (bytes_while_blocked > max_bytes_while_blocked)
                max_bytes_while_blocked = bytes_while_blocked;
        }
        since_drain += data.size();
        if (block_after_bytes && since_drain >= block_after_bytes) {
            if (!blocked)
                ++blocked_episodes;
            blocked = true;
        }
        return blocked ? Result::blocked : Result::ok;
    }
};

// A request without a body.
class NoBody final : public BodyReader {
public:
    std::string_view peek() override { return {}; }
    void consume(size_t) override {}
    bool finished() const override { return true; }
    bool failed() const override { return false; }
    void on_data(Callback) override {}
    void pause() override {}
    void resume() override {}
    void discard() override { discarded = true; }
    bool discarded = false;
};

// A request and the arena its exchange allocates from.
// Module state the next TestExchanges get as Request::modules (a fixture sets it), like a
// worker's; null: none, as for a request outside any worker.
inline ModuleWorkers*& test_modules() {
    static ModuleWorkers* modules = nullptr;
    return modules;
}

// A built-in module's index in the registry (BuildContext::module_index).
inline size_t module_index(std::string_view key) {
    const ModuleSpec* spec = ModuleRegistry::instance().find(key);
    REQUIRE(spec);
    return ModuleRegistry::instance().index_of(*spec);
}

struct TestExchange {
    Arena arena;
    Request req;
    explicit TestExchange(std::string_view method = "GET") {
        req.arena = &arena;
        req.modules = test_modules();
        req.method = method;
        req.method_id = method_from_test(method);
        req.scheme = "https";
        req.authority = "example.com";
        req.host = "example.com";
        req.path = "/";
        req.target = "/";
    }
    static Method method_from_test(std::string_view m) {
        if (m == "GET")
            return Method::get;
        if (m == "HEAD")
            return Method::head;
        if (m == "POST")
            return Method::post;
        return Method::other;
    }
};

} // namespace wraith::modtest
