// The HTTP/3 session of one QUIC connection (RFC 9114): nghttp3 for framing and QPACK, our
// control and QPACK streams, GOAWAY on drain, and the request streams (worker/http3/stream.h)
// that run the shared request pipeline. It is the quic::Application for ALPN "h3": the
// transport (worker/quic/connection.h) feeds it stream events and pulls the bytes it sends.
// Handler code never runs inside ngtcp2 or nghttp3 callbacks: streams queue their work, and
// the connection's service pass runs it (run_pending).
#pragma once

#include <ev.h>
#include <nghttp3/nghttp3.h>

#include <memory>
#include <vector>

#include "common/http.h"
#include "worker/quic/application.h"
#include "worker/quic/connection.h"

namespace wraith::http3 {

class Stream;

class Session final : public quic::Application {
public:
    // `conn` is the quic::Connection (its one implementation): the session drives the worker's
    // exchanges through it.
    static std::unique_ptr<quic::Application> create(quic::AppConnection& conn);
    explicit Session(quic::Connection& conn);
    ~Session() override;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // quic::Application
    bool start() override;
    int recv_stream_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin,
                         size_t* credit) override;
    int acked_stream_data(int64_t stream_id, uint64_t len) override;
    void stream_open(int64_t stream_id) override;
    int stream_close(int64_t stream_id, uint64_t app_error_code) override;
    int stream_reset(int64_t stream_id, uint64_t app_error_code) override;
    int stream_stop_sending(int64_t stream_id, uint64_t app_error_code) override;
    void extend_max_remote_streams_bidi(uint64_t max_streams) override;
    int extend_max_stream_data(int64_t stream_id) override;
    int next_data(int64_t* stream_id, bool* fin, ngtcp2_vec* vec, size_t veccnt) override;
    int data_sent(int64_t stream_id, size_t n) override;
    void stream_blocked(int64_t stream_id) override;
    void stream_write_shut(int64_t stream_id) override;
    void run_pending() override;
    bool has_pending() const override { return !pending_.empty(); }
    void after_service() override;
    void drain() override;
    void abort() override;
    uint64_t no_error_code() const override { return NGHTTP3_H3_NO_ERROR; }

    // ---- for streams (inline: a request touches them dozens of times)
    Worker& worker() const { return conn_.worker(); }
    const ConnectionInfo& info() const { return conn_.info(); }
    nghttp3_conn* http() const { return http_; }
    void schedule(Stream* s);
    void want_write();
    // Request body bytes the handler consumed: flow-control credit back to the client.
    void consumed(int64_t stream_id, size_t n);
    void reset_stream(int64_t stream_id, uint64_t app_error_code);
    bool early_data_allowed() const;

private:
    static const nghttp3_callbacks* callbacks();
    static int h3_acked_stream_data(nghttp3_conn*, int64_t stream_id, uint64_t len, void* user,
                                    void* stream_user);
    static int h3_stream_close(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                               void* user, void* stream_user);
    static int h3_recv_data(nghttp3_conn*, int64_t stream_id, const uint8_t* data, size_t len,
                            void* user, void* stream_user);
    static int h3_deferred_consume(nghttp3_conn*, int64_t stream_id, size_t consumed, void* user,
                                   void* stream_user);
    static int h3_begin_headers(nghttp3_conn*, int64_t stream_id, void* user, void* stream_user);
    static int h3_recv_header(nghttp3_conn*, int64_t stream_id, int32_t token, nghttp3_rcbuf* name,
                              nghttp3_rcbuf* value, uint8_t flags, void* user, void* stream_user);
    static int h3_end_headers(nghttp3_conn*, int64_t stream_id, int fin, void* user,
                              void* stream_user);
    static int h3_end_stream(nghttp3_conn*, int64_t stream_id, void* user, void* stream_user);
    static int h3_stop_sending(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                               void* user, void* stream_user);
    static int h3_reset_stream(nghttp3_conn*, int64_t stream_id, uint64_t app_error_code,
                               void* user, void* stream_user);
    static void on_goaway_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_body_timer(struct ev_loop* loop, ev_timer* w, int revents);
    // http.body_timeout: armed while a stream waits for request body bytes, restarted
    // whenever body bytes arrived, as on HTTP/1.1 and HTTP/2.
    void update_body_timer();

    // An nghttp3 error: the connection closes with its HTTP/3 code.
    int fail(int liberr);
    void start_goaway();
    void maybe_finish_drain();
    void reap_streams();

    quic::Connection& conn_;
    nghttp3_conn* http_ = nullptr;
    Stream* streams_ = nullptr; // every stream not yet reaped
    std::vector<Stream*> pending_;
    std::vector<Stream*> working_; // pending_ of the round being run
    std::vector<Stream*> closed_streams_;
    // From the shutdown notice to the final GOAWAY, then from the last stream's end to the
    // close (maybe_finish_drain).
    ev_timer goaway_timer_;
    ev_timer body_timer_;
    bool body_seen_ = false;       // request body bytes arrived since update_body_timer() last ran
    bool draining_ = false;        // worker drain: shutdown notice sent
    bool final_goaway_ = false;    // GOAWAY with the last stream id sent
    bool close_when_idle_ = false; // the quiet period after the last stream is over
};

} // namespace wraith::http3
