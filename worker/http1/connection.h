// HTTP/1.1 over a TCP or TLS transport: reads and parses request heads (worker/http1/parser.h),
// serves one exchange at a time (worker/http1/exchange.h: pipelined requests wait their turn),
// decodes the request body as a BodyReader (Content-Length, chunked, or a tunnel's raw bytes),
// writes the output queue the exchange fills, and handles timeouts, keep-alive, drain and
// close. An idle keep-alive connection holds no exchange, no read buffer and no output: what
// it costs is this object and its transport.
#pragma once

#include <ev.h>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <vector>

#include "common/config.h"
#include "common/http.h"
#include "common/loop.h"
#include "worker/connection.h"
#include "worker/http1/exchange.h"
#include "worker/http1/parser.h"
#include "worker/peer.h"
#include "worker/transport.h"
#include "worker/output_segment.h"

namespace wraith {

class Worker;

namespace http1 {

class Connection final : public wraith::Connection, public BodyReader {
public:
    Connection(Worker& worker, std::unique_ptr<Transport> transport, const sockaddr_storage& peer,
               const ListenConfig& listen);
    ~Connection() override;
    void start();

    // wraith::Connection
    void drain() override;
    void close_now() override;
    void run_deferred() override;

    // BodyReader: the request body of the exchange in flight.
    std::string_view peek() override;
    void consume(size_t n) override;
    bool finished() const override;
    bool failed() const override { return body_failed_; }
    void on_data(Callback cb) override;
    void pause() override;
    void resume() override;
    void discard() override;

private:
    friend class Exchange; // its response goes into our output queue

    static constexpr size_t kHighWatermark = 64 * 1024; // queued memory above: writer blocked
    static constexpr size_t kLowWatermark = 16 * 1024;  // drained below: on_writable fires
    static constexpr size_t kMaxQueuedFiles = 8;
    static constexpr size_t kMaxDiscard = 1 << 20; // unread body bytes worth reading to keep alive

    enum class State : uint8_t {
        idle,      // waiting for the first byte of a request
        head,      // part of a request head is buffered (an exchange holds its fields)
        exchange,  // a request is being answered
        lingering, // response done, Connection: close; draining client bytes before close
        closed,    // waiting for deferred deletion
    };
    // One output segment: bytes of out_ or a file range.
    using Segment = OutputSegment; // memory: a range of out_

    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    void handle_readable();
    void handle_writable();
    void handle_timeout();

    bool ensure_read_buffer();
    bool grow_read_buffer();
    void put_read_buffer();
    // out_ with a kept buffer (common/spares.h) when it has none; what output is appended to.
    std::string& out_mem();
    void take_segments();
    void give_output(); // the queue is empty: its buffers go back for the next response
    // Reads what the socket has into the buffer. Returns false on EOF or error (closes).
    bool fill();
    bool head_worth_parsing();
    void parse_head();
    void start_exchange(const RequestHead& head);
    void reject(int status, const char* reason);
    void decode_body(bool notify = true);
    bool body_wants_data() const;
    void update_read_interest();
    void maybe_send_continue();
    // After a 101: the connection carries the tunnel's raw bytes both ways (no framing).
    void start_tunnel();
    // The client closed its side of a tunnel (EOF): the body ends, the response may go on.
    void tunnel_client_done();
    // Completes the exchange once a tunnel is over in both directions.
    void maybe_finish_tunnel();
    // The exchange's response ended: read or refuse what is left of the request body.
    void response_done();

    void register_mem(size_t start, size_t n); // bytes of out_ just appended
    void queue_mem(std::string_view data);
    void queue_file(int fd, off_t offset, size_t len);
    void want_flush();
    void flush();
    size_t queued_mem() const { return out_.size() - out_sent_; }
    size_t queued_files() const;
    void complete_exchange();
    void abort_exchange();
    void begin_close(bool lingering);
    void destroy();
    void arm(Duration d);
    void set_io(int events);
    // The transport holds readable bytes no socket event will announce: read from the
    // deferred work.
    void want_buffered_read();

    Worker& worker_;
    const ListenConfig& listen_;
    std::unique_ptr<Transport> transport_;
    int fd_; // transport_->fd(), for the watchers
    OrderedIo io_; // common/loop.h: served in readiness order
    ev_timer timer_;
    int io_events_ = 0;
    State state_ = State::idle;
    Peer peer_; // address, TLS details; what req.conn points to
    std::unique_ptr<Exchange> ex_; // from the first byte of a head to the end of its response

    // Read buffer from the worker's pool: [0, rlen_) holds bytes; a request's head starts at 0.
    char* rbuf_ = nullptr;
    uint32_t rcap_ = 0;
    uint32_t rlen_ = 0;
    uint32_t head_end_ = 0;    // end of the current request's head
    uint32_t scan_pos_ = 0;    // head bytes already searched for the empty line
    uint32_t bdata_ = 0;       // unconsumed decoded body bytes [bdata_, bdata_end_)
    uint32_t bdata_end_ = 0;
    uint32_t braw_ = 0;        // body bytes not yet decoded [braw_, rlen_)
    uint64_t body_left_ = 0; // content-length framing: bytes still to come
    uint64_t body_received_ = 0; // request body (tunnel: client) bytes decoded, for the log
    uint64_t requests_ = 0;
    BodyFraming framing_ = BodyFraming::none;
    bool line_seen_ = false; // the request line is complete
    bool body_done_ = true;
    bool body_failed_ = false;
    bool body_paused_ = false;
    bool body_discarding_ = false;
    bool expect_continue_ = false;
    bool continue_sent_ = false;
    bool keep_alive_ = true;
    bool in_dispatch_ = false;
    bool tunnel_ = false;            // a 101 went out: raw bytes both ways, no keep-alive after
    bool tunnel_write_shut_ = false; // the tunnel's server-to-client side ended (FIN sent)
    bool read_pending_ = false;      // TLS holds decrypted bytes: read them from run_deferred()
    bool writable_fire_ = false;     // run the exchange's writable callback from run_deferred()
    bool draining_ = false;
    bool flush_pending_ = false;

    // Output queue.
    std::string out_;
    size_t out_sent_ = 0; // bytes of out_ already written
    std::vector<Segment> segs_;
    size_t seg_head_ = 0; // first unsent segment
};

} // namespace http1
} // namespace wraith
