// h3load's HTTP/3 client: one h3::Connection at a time, up to -m requests in flight.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "bench/h3load/bench.h"
#include "tools/h3/connection.h"

namespace h3load {

// What every HTTP/3 client of a run shares: loop buffers, TLS, settings, request headers.
struct QuicShared {
    h3::PacketIo io; // `io` holds the datagram buffers of the loop.
    h3::TlsContext tls;
    h3::ClientSettings settings;
    h3::ConnectTarget target;                      // `target` is the server and its names.
    std::deque<std::string> strings;               // `strings` own the bytes `requests` point into.
    std::vector<std::vector<nghttp3_nv>> requests; // `requests[url]` are its header fields.

    // Builds everything from the command line; false with `error` set.
    bool init(const Config& config, std::string& error);
};

class QuicClient final : public Client, public h3::ConnectionHandler {
public:
    QuicClient(Bench& bench, QuicShared& shared) : Client(bench), shared_(shared) {}

    void connect() override;
    size_t in_flight() const override { return in_flight_; }
    void stop() override;
    Traffic traffic() const override;
    void abandon_in_flight() override;
    void resume_requests() override;

    void on_handshake_completed(h3::Connection& c) override;
    void on_stream_credit(h3::Connection& c) override;
    void on_header(h3::Connection&, void* stream, int32_t token, std::string_view name,
                   std::string_view value) override;
    void on_body(h3::Connection& c, int64_t stream_id, void* stream, const uint8_t* data,
                 size_t len) override;
    void on_response_end(h3::Connection&, void* stream) override;
    void on_stream_closed(h3::Connection&, void* stream, uint64_t app_error) override;
    void on_goaway(h3::Connection& c) override;
    void on_early_data_rejected(h3::Connection&) override;
    void on_closed(h3::Connection& c) override;

private:
    static Traffic traffic_of(const h3::Connection& c);

    QuicShared& shared_;
    std::unique_ptr<h3::Connection> conn_;
    ExchangePool pool_;
    size_t in_flight_ = 0;   // `in_flight_` requests await their response.
    Traffic closed_traffic_; // `closed_traffic_` is what earlier connections received.
    bool first_byte_seen_ = false;
    bool closing_ = false; // `closing_`: we asked the connection to close.
    bool goaway_ = false;
    bool used_ = false; // `used_`: --new-connection, this connection carried its request.
};

} // namespace h3load
