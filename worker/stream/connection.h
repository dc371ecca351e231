// A stream (L4) connection: a listener protocol that is not HTTP (`protocols = ["tcp"]`,
// DNS over TLS later). After TLS (if any), the connection's bytes go to the protocol's
// StreamHandler (common/module.h) as a BodyReader of the client's bytes and a ResponseWriter
// of ours, with backpressure both ways, half-close (each direction ends on its own), and a
// close once both have ended, the handler resets, or the client goes away.
#pragma once

#include <ev.h>

#include <memory>
#include <string>
#include <sys/socket.h>
#include <vector>

#include "common/arena.h"
#include "common/config.h"
#include "common/loop.h"
#include "common/module.h"
#include "worker/connection.h"
#include "worker/peer.h"
#include "worker/transport.h"
#include "worker/output_segment.h"

namespace wraith {

class Worker;

namespace stream {

class Connection final : public wraith::Connection, public BodyReader, public ResponseWriter {
public:
    Connection(Worker& worker, std::unique_ptr<Transport> transport, const sockaddr_storage& peer,
               const ListenConfig& listen, const StreamHandler& handler);
    ~Connection() override;
    void start();

    // wraith::Connection
    void drain() override {} // a stream has no request boundary: it ends on its own or at
                             // drain_timeout (close_now)
    void close_now() override;
    void run_deferred() override;

    // BodyReader: the client's bytes.
    std::string_view peek() override;
    void consume(size_t n) override;
    bool finished() const override { return in_done_ && rpos_ == rlen_; }
    bool failed() const override { return in_failed_; }
    void on_data(Callback cb) override { data_cb_ = std::move(cb); }
    void pause() override;
    void resume() override;
    void discard() override;

    // ResponseWriter: our bytes.
    void send_informational(int, const Headers&) override {}
    void send_headers(ResponseHead&, bool end_stream) override;
    Result send_body(std::string_view data, bool end_stream) override;
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override;
    Result send_trailers(const Headers&) override { return send_body({}, true); }
    void on_writable(Callback cb) override { writable_cb_ = std::move(cb); }
    void on_abort(Callback cb) override { abort_cb_ = std::move(cb); }
    void reset() override;
    bool headers_sent() const override { return true; }
    uint64_t body_bytes_sent() const override { return sent_; }

private:
    static constexpr size_t kHighWatermark = 64 * 1024;
    static constexpr size_t kLowWatermark = 16 * 1024;
    using Segment = OutputSegment; // memory: a range of out_

    static void on_io(struct ev_loop* loop, ev_io* w, int revents);
    void read_some();
    void flush();
    void update_io();
    size_t queued() const;
    Result writer_state();
    // Ends the connection: `aborted` when it ended before both directions did (the handler's
    // abort callback runs). Deletion is deferred.
    void end(bool aborted);

    Worker& worker_;
    std::unique_ptr<Transport> transport_;
    int fd_;
    OrderedIo io_;
    int io_events_ = 0;
    Peer peer_;
    Arena arena_;
    const StreamHandler& handler_;

    char* rbuf_ = nullptr; // from the worker's pool while the client's bytes wait
    size_t rpos_ = 0, rlen_ = 0;
    Callback data_cb_;
    bool in_paused_ = false;
    bool in_done_ = false;   // the client's FIN
    bool in_failed_ = false; // the client's side broke (reset, error)
    bool discarding_ = false;

    std::string out_;
    size_t out_sent_ = 0;
    std::vector<Segment> segs_;
    size_t seg_head_ = 0;
    uint64_t sent_ = 0;
    Callback writable_cb_;
    Callback abort_cb_;
    bool writable_wanted_ = false;
    bool out_ended_ = false; // the handler ended our direction
    bool out_shut_ = false;  // ...and its FIN is out
    bool closed_ = false;
    bool abort_pending_ = false; // closed before both directions ended: tell the handler
    bool read_pending_ = false;  // TLS holds decrypted bytes: read them from run_deferred()
    bool data_pending_ = false;  // call the handler's data callback from run_deferred()
    bool writable_pending_ = false;
};

} // namespace stream
} // namespace wraith
