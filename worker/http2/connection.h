// HTTP/2 (RFC 9113) over a Transport: the connection's I/O, timers, graceful drain and close
// around a Session (worker/http2/session.h, our own framing and HPACK), whose frames it writes
// from one output buffer. Each stream is a worker/http2/stream.h exchange run through the
// pipeline like HTTP/1's. The session enforces the flood limits of [http2] (rapid reset,
// PING/SETTINGS/PRIORITY/empty DATA floods, CONTINUATION and header-list limits); the
// connection adds the timeouts of [http] and the two-step GOAWAY drain (RFC 9113 §6.8).
#pragma once

#include <ev.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

#include "common/config.h"
#include "common/http.h"
#include "common/loop.h"
#include "worker/connection.h"
#include "worker/http2/output_buffer.h"
#include "worker/http2/session.h"
#include "worker/peer.h"
#include "worker/transport.h"

namespace wraith {

class Worker;

namespace http2 {

class Stream;

class Connection final : public wraith::Connection, private SessionOwner {
public:
    // `already_read`: bytes consumed before the handover (the client preface read by the
    // HTTP/1 side for h2c, or early data from TLS); they are fed to the session first.
    Connection(Worker& worker, std::unique_ptr<Transport> transport, const sockaddr_storage& peer,
               const ListenConfig& listen, std::string_view already_read);
    ~Connection() override;
    void start();

    // wraith::Connection
    void drain() override;
    void close_now() override;
    void run_deferred() override;

    // For streams.
    Session& session() { return session_; }
    Worker& worker() const { return worker_; }
    const ConnectionInfo& info() const { return peer_.info; }
    // Queues `s` for Stream::run_pending() outside session hooks and handler stacks.
    void schedule(Stream* s);
    // Frames were submitted: send them from the deferred work.
    void want_flush();

private:
    static constexpr size_t kOutputHigh = 128 * 1024; // serialise no more while this is queued
    static constexpr int kReadsPerEvent = 4;

    enum class TimerMode : uint8_t { none, header, idle, send, body, linger };

    // SessionOwner
    StreamState* open_stream(int32_t id) override;
    void stream_closed(StreamState* s) override;
    void ping_acked(const uint8_t opaque[8]) override;
    void connection_error(uint32_t error, const char* why) override;

    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_drain_timer(struct ev_loop* loop, ev_timer* w, int revents);

    void handle_readable();
    void handle_timeout();
    // Feeds received bytes to the session; false when the connection is being torn down.
    bool receive(const char* data, size_t len);
    // Runs pending stream work, sends, reaps closed streams, until quiet.
    void service();
    void run_pending();
    void flush();
    void reap_closed();
    void update_io();
    void set_io_events(int events);
    void update_timer();
    void arm(TimerMode mode, Duration d);
    void terminate(uint32_t error_code);
    void final_goaway();
    void begin_close();
    void close_streams();
    void destroy();
    void link(Stream* s);
    void unlink(Stream* s);

    Worker& worker_;
    std::unique_ptr<Transport> transport_;
    int fd_;
    OrderedIo io_; // common/loop.h: served in readiness order
    ev_timer timer_;
    ev_timer drain_timer_; // bounds the wait for the drain PING's ack
    int io_events_ = 0;
    TimerMode timer_mode_ = TimerMode::none;
    Peer peer_; // address, TLS details; what req.conn points to
    std::string already_read_;

    OutputBuffer out_; // before session_, which writes into it
    Session session_;
    Stream* streams_ = nullptr;    // every stream not yet reaped
    size_t open_streams_ = 0;      // of them, not closed
    std::vector<Stream*> pending_; // streams with work for run_pending()
    bool flush_pending_ = false;
    bool in_service_ = false;
    bool first_request_ = false; // a request head arrived (header_timeout is over)
    bool draining_ = false;      // shutdown notice sent
    bool final_goaway_ = false;  // GOAWAY with the last stream id submitted
    bool terminating_ = false;   // a terminating GOAWAY is queued: read nothing more
    bool lingering_ = false;     // write side shut; reading until EOF
    bool closed_ = false;        // waiting for deferred deletion
    bool write_blocked_ = false; // the transport said EAGAIN with output queued
    uint64_t requests_ = 0;      // streams opened, for http.keepalive_requests
};

} // namespace http2
} // namespace wraith
