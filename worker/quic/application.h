// The seam between a QUIC connection (worker/quic/connection.h: packets, timers, flow control,
// migration, CIDs, TLS) and what runs on its streams. The ALPN the handshake agreed on picks
// the application (RFC 9001 §8.1): "h3" is the HTTP/3 session (worker/http3/session.h); other
// protocols over QUIC (DNS over QUIC, RFC 9250's "doq") register their own. The connection
// feeds the application stream events and asks it for bytes to send; the application talks
// back only through the connection's small stream API, never to ngtcp2 directly.
#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace wraith::quic {

class Connection;

class Application {
public:
    virtual ~Application() = default;

    // 1-RTT keys are installed (or 0-RTT was accepted): open the application's own streams.
    // False fails the connection.
    virtual bool start() = 0;

    // ---- stream events from ngtcp2 (no handler code may run inside these)
    // In-order bytes of a stream. `*credit` is how many of them the connection gives back as
    // flow-control credit at once; the application returns the rest later with
    // Connection::consumed. A non-zero return closes the connection (the application set
    // the error with Connection::set_application_error first).
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
    // Connection::close_application.
    virtual void drain() = 0;
    // The connection is going away: everything still open ends now (handlers see an abort).
    virtual void abort() = 0;
    // The application's code for "no error" in a CONNECTION_CLOSE (RFC 9000 §20.2).
    virtual uint64_t no_error_code() const = 0;
};

// A protocol a QUIC connection can run, by its ALPN identifier.
struct ApplicationSpec {
    std::string_view alpn; // a constant: the registry keeps the view
    std::unique_ptr<Application> (*create)(Connection& conn);
    // What close_now says before the application exists (mid-handshake).
    uint64_t no_error_code = 0;
};

// Adds (or replaces) the application for spec.alpn. Built-in protocols register in
// worker/protocols.cc; a module or a test registers its own before the worker starts. Every
// registered application is offered in ALPN on every QUIC listener.
void register_application(const ApplicationSpec& spec);
// The application for a negotiated ALPN; nullptr if none (the handshake fails with
// no_application_protocol, RFC 9001 §8.1).
const ApplicationSpec* find_application(std::string_view alpn);
// Every registered ALPN, most preferred first (the server picks in this order).
std::span<const ApplicationSpec> applications();

} // namespace wraith::quic
