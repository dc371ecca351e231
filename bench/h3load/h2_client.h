// h3load --h2: the same measurement over HTTP/2 on TLS/TCP (nghttp2 + OpenSSL), so h3load's
// numbers can be checked against Debian's h2load on the same HTTP/2 server.
#pragma once

#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <deque>
#include <string>
#include <vector>

#include "bench/h3load/bench.h"

namespace h3load {

// What every HTTP/2 client of a run shares.
struct H2Shared {
    SSL_CTX* ctx = nullptr; // `ctx` has ALPN h2 and the trust settings.
    nghttp2_session_callbacks* callbacks = nullptr;
    h3::SocketAddress remote;
    h3::SocketAddress local; // `local` is --local-address (len 0: the kernel picks).
    std::string sni;         // `sni` is sent unless empty.
    std::string verify_name; // `verify_name` must match (unless -k).
    bool verify = true;
    std::deque<std::string> strings;               // `strings` own what `requests` points to.
    std::vector<std::vector<nghttp2_nv>> requests; // `requests[url]` are its header fields.
    std::vector<uint8_t> read_buffer;              // `read_buffer` is shared: one loop, one reader.

    H2Shared() = default;
    H2Shared(const H2Shared&) = delete;
    H2Shared& operator=(const H2Shared&) = delete;
    ~H2Shared();
    bool init(const Config& config, std::string& error);
};

class H2Client final : public Client {
public:
    H2Client(Bench& bench, H2Shared& shared);
    ~H2Client() override;

    void connect() override;
    size_t in_flight() const override { return in_flight_; }
    void stop() override;
    Traffic traffic() const override { return traffic_; }
    void abandon_in_flight() override;

private:
    enum class State { Idle, Connecting, Handshaking, Established };
    friend struct H2Callbacks;

    static void io_cb(struct ev_loop* loop, ev_io* w, int revents);
    void on_io(int revents);
    bool finish_tcp_connect();
    bool do_handshake();
    bool start_session();
    bool read_tls();
    bool write_tls();
    void submit_more();
    void update_watcher(bool want_write);
    void fail(std::string reason);
    void teardown();
    void report_close();

    H2Shared& shared_;
    int fd_ = -1;
    SSL* ssl_ = nullptr;
    nghttp2_session* session_ = nullptr;
    State state_ = State::Idle;
    ev_io io_; // `io_` watches the socket (read, and write when needed).
    ExchangePool pool_;
    size_t in_flight_ = 0;
    Traffic traffic_;
    std::string out_; // `out_` is serialised frames SSL_write has not taken yet.
    size_t out_offset_ = 0;
    uint64_t started_at_ = 0; // `started_at_` is when connect() began (monotonic ns).
    bool established_ = false;
    bool first_byte_seen_ = false;
    bool goaway_ = false;
    bool closing_ = false; // `closing_`: we chose to close (GOAWAY drained).
    bool failed_ = false;  // `failed_`: close at the end of this event.
    std::string reason_;
};

} // namespace h3load
