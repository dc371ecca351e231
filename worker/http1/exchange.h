// One request of an HTTP/1.1 connection (worker/exchange.h does the protocol-independent
// part): the status line and fields it writes, Content-Length or chunked framing, 100
// Continue and keep-alive decisions, and the 101 that turns the connection into a tunnel. Its
// bytes go to the connection's output queue (worker/http1/connection.h), which writes them.
//
// An exchange exists from the first byte of a request head to the end of its response; an
// idle keep-alive connection holds none. Exchanges are recycled per worker, so a steady
// stream of requests allocates nothing for them.
#pragma once

#include <cstddef>

#include "worker/exchange.h"
#include "worker/http1/parser.h"

namespace wraith::http1 {

class Connection;

class Exchange final : public wraith::Exchange {
public:
    explicit Exchange(Connection& conn);
    ~Exchange() override;
    static void* operator new(size_t size);
    static void operator delete(void* p, size_t size);

    // For the connection.
    using wraith::Exchange::begin_request;
    using wraith::Exchange::finish;
    using wraith::Exchange::start;
    bool ended() const { return response_ == Response::ended; }
    bool tunnel_open() const { return tunnel_ == Tunnel::open; }
    int status() const { return status_; }
    void count_sent(uint64_t n) { body_sent_ += n; }
    void fire_writable() { wraith::Exchange::fire_writable(); }
    bool writable_wanted() const { return writable_wanted_; }
    void clear_writable_wanted() { writable_wanted_ = false; }
    // The connection is going away (client gone, timeout): the handler is told, then the log
    // phase runs.
    void abort_and_finish(uint64_t request_bytes);

    // The request body's state that only a request has (the connection keeps the bytes).
    ChunkedDecoder chunked; // a chunked body's decoder
    Callback data_cb;       // the handler's BodyReader::on_data callback
private:
    bool transport_gone() const override;
    void submit_informational(int status, const Headers& headers) override;
    bool submit_head(ResponseHead& head, bool end_stream) override;
    void queue_body(std::string_view data, bool shared) override;
    void queue_file(int fd, off_t offset, size_t len) override;
    void queue_trailers(const Headers& trailers) override;
    void kick() override;
    bool congested() const override;
    void response_ended(uint64_t short_by) override;
    void submit_reset() override;

    // The head's fields, with our date and server and the hop-by-hop ones left out.
    void write_fields(const ResponseHead& head);

    Connection& conn_;
    bool chunked_out_ = false; // the body goes in chunks (unknown length on HTTP/1.1)
};

} // namespace wraith::http1
