// The seam between a QUIC connection and what runs on its streams, as modules see it. The
// ALPN the handshake agreed on picks the application (RFC 9001 §8.1): "h3" is the HTTP/3
// session (worker/http3/session.h); other protocols over QUIC register their own, as DNS over
// QUIC (modules/dns/doq.cc, RFC 9250's "doq") does through ModuleSpec::quic_application. The
// connection (worker/quic/connection.h) feeds the application stream events and asks it for
// bytes to send; the application talks back only through AppConnection, the connection's
// small stream API, never to ngtcp2 directly. The registry is worker/quic/application.h.
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/http.h"

namespace wraith {

class ModuleWorkers;

namespace quic {

// What an application may ask of its connection. quic::Connection is the one implementation.
class AppConnection {
public:
    // The worker's per-module state (ModuleSpec::worker_start), or null.
    virtual ModuleWorkers* modules() const = 0;
    virtual const ConnectionInfo& info() const = 0;
    virtual bool handshake_done() const = 0;
    // 0-RTT data may be acted on before the handshake ends (the site's tls.early_data).
    virtual bool early_data_allowed() const = 0;
    // Closing, draining or gone: nothing more is sent but CONNECTION_CLOSE.
    virtual bool closing() const = 0;
    // A write pass soon (from the worker's deferred queue, or the running service pass).
    virtual void want_write() = 0;
    // The application has work queued (Application::has_pending): a service pass soon.
    virtual void wake() = 0;
    // Stream bytes the application consumed: flow-control credit back to the peer.
    virtual void consumed(int64_t stream_id, size_t n) = 0;
    // Resets both directions of a stream (RESET_STREAM + STOP_SENDING) with `app_error_code`.
    virtual void reset_stream(int64_t stream_id, uint64_t app_error_code) = 0;
    virtual void shutdown_stream_read(int64_t stream_id, uint64_t app_error_code) = 0;
    virtual void shutdown_stream_write(int64_t stream_id, uint64_t app_error_code) = 0;
    virtual bool open_uni_stream(int64_t* stream_id) = 0;
    virtual uint64_t streams_uni_left() const = 0;
    // Our initial_max_streams_bidi transport parameter.
    virtual uint64_t local_max_streams_bidi() const = 0;
    // The peer may open `n` more bidirectional streams (one closed).
    virtual void extend_max_streams_bidi(uint64_t n) = 0;
    virtual ngtcp2_duration pto() const = 0;
    virtual ngtcp2_duration local_max_ack_delay() const = 0;
    // The CONNECTION_CLOSE an application failure sends (the next failing callback closes).
    virtual void set_application_error(uint64_t code) = 0;
    // Closes the connection with an application error code (H3_NO_ERROR after a drain).
    virtual void close_application(uint64_t code) = 0;

protected:
    ~AppConnection() = default;
};

class Application {
public:
    virtual ~Application() = default;

    // 1-RTT keys are installed (or 0-RTT was accepted): open the application's own streams.
    // False fails the connection.
    virtual bool start() = 0;

    // ---- stream events from ngtcp2 (no handler code may run inside these)
    // In-order bytes of a stream. `*credit` is how many of them the connection gives back as
    // flow-control credit at once; the application returns the rest later with
    // AppConnection::consumed. A non-zero return closes the connection (the application set
    // the error with AppConnection::set_application_error first).
    virtual int recv_stream_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin,
                                 size_t* credit) = 0;
    // `len` more bytes of `stream_id` were acknowledged: what they held may be freed.
    virtual int acked_stream_data(int64_t stream_id, uint64_t len) = 0;
    // The peer opened a stream.
    virtual void stream_open(int64_t stream_id) {}
    // Both directions of a stream are over (or it was reset); `app_error_code` is the
    // peer's, else no_error_code().
    virtual int stream_close(int64_t stream_id, uint64_t app_error_code) = 0;
    // RESET_STREAM or STOP_SENDING from the peer.
    virtual int stream_reset(int64_t stream_id, uint64_t app_error_code) = 0;
    virtual int stream_stop_sending(int64_t stream_id, uint64_t app_error_code) = 0;
    // The peer may open streams up to `max_streams` now.
    virtual void extend_max_remote_streams_bidi(uint64_t max_streams) {}
    // The peer gave `stream_id` more flow-control credit.
    virtual int extend_max_stream_data(int64_t stream_id) = 0;

    // ---- sending, from the connection's write pass
    // The next stream bytes to send: fills up to `veccnt` vectors and returns how many (0 with
    // `*stream_id` -1: nothing to send now), or a negative number to close (error set).
    virtual int next_data(int64_t* stream_id, bool* fin, ngtcp2_vec* vec, size_t veccnt) = 0;
    // ngtcp2 took `n` bytes of what next_data offered for `stream_id` (and its FIN with all).
    virtual int data_sent(int64_t stream_id, size_t n) = 0;
    // `stream_id` cannot send now: flow control, or its write side is shut.
    virtual void stream_blocked(int64_t stream_id) = 0;
    virtual void stream_write_shut(int64_t stream_id) = 0;

    // ---- the connection's service pass (outside ngtcp2 and the application's library)
    // Runs queued work: handler callbacks, starting requests.
    virtual void run_pending() {}
    virtual bool has_pending() const { return false; }
    // After a service pass: frees what closed in it, checks whether a drain is done.
    virtual void after_service() {}

    // The worker drains: announce the end (GOAWAY), finish what runs, then close through
    // AppConnection::close_application.
    virtual void drain() = 0;
    // The connection is going away: everything still open ends now (handlers see an abort).
    virtual void abort() = 0;
    // The application's code for "no error" in a CONNECTION_CLOSE (RFC 9000 §20.2).
    virtual uint64_t no_error_code() const = 0;
};

// A protocol a QUIC connection can run, by its ALPN identifier.
struct ApplicationSpec {
    std::string_view alpn; // a constant: the registry keeps the view
    std::unique_ptr<Application> (*create)(AppConnection& conn);
    // What close_now says before the application exists (mid-handshake).
    uint64_t no_error_code = 0;
};

} // namespace quic
} // namespace wraith
