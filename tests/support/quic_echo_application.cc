// A QUIC application used only by tests (tests/integration/test_quic_application.py): for ALPN
// "wraith-echo-test", every byte a client sends on a bidirectional stream comes back on the same
// stream, and the client's FIN ends the echo. It proves the seam of worker/quic/application.h:
// a connection whose ALPN is not "h3" runs whatever registered for it. Linked into the
// wraith_echo_test binary (master/main.cc plus this file), never into wraith.
#include <map>
#include <memory>
#include <string>

#include "worker/quic/application.h"
#include "worker/quic/connection.h"

namespace {

using wraith::quic::AppConnection;
using wraith::quic::Application;

class EchoApplication final : public Application {
public:
    explicit EchoApplication(AppConnection& conn) : conn_(conn) {}

    bool start() override { return true; }

    int recv_stream_data(int64_t stream_id, const uint8_t* data, size_t len, bool fin,
                         size_t* credit) override {
        *credit = len; // kept until acknowledged by us, so the window can move at once
        if (!ngtcp2_is_bidi_stream(stream_id))
            return 0; // the client's unidirectional streams have nowhere to echo to
        Echo& e = streams_[stream_id];
        e.data.append(reinterpret_cast<const char*>(data), len);
        e.fin = e.fin || fin;
        conn_.want_write();
        return 0;
    }
    int acked_stream_data(int64_t, uint64_t) override { return 0; }
    int stream_close(int64_t stream_id, uint64_t) override {
        streams_.erase(stream_id);
        return 0;
    }
    int stream_reset(int64_t stream_id, uint64_t) override { return 0; }
    int stream_stop_sending(int64_t stream_id, uint64_t) override {
        stream_write_shut(stream_id);
        return 0;
    }
    int extend_max_stream_data(int64_t stream_id) override {
        if (auto it = streams_.find(stream_id); it != streams_.end())
            it->second.blocked = false;
        conn_.want_write();
        return 0;
    }

    int next_data(int64_t* stream_id, bool* fin, ngtcp2_vec* vec, size_t veccnt) override {
        *stream_id = -1;
        for (auto& [id, e] : streams_) {
            if (e.blocked || e.done || (e.sent == e.data.size() && !e.fin))
                continue;
            *stream_id = id;
            *fin = e.fin;
            if (e.sent == e.data.size())
                return 0; // only the FIN is left
            vec[0].base = reinterpret_cast<uint8_t*>(e.data.data()) + e.sent;
            vec[0].len = e.data.size() - e.sent;
            return 1;
        }
        return 0;
    }
    int data_sent(int64_t stream_id, size_t n) override {
        auto it = streams_.find(stream_id);
        if (it == streams_.end())
            return 0;
        Echo& e = it->second;
        e.sent += n;
        if (e.fin && e.sent == e.data.size())
            e.done = true; // ngtcp2 took the FIN with the last byte
        return 0;
    }
    void stream_blocked(int64_t stream_id) override { streams_[stream_id].blocked = true; }
    void stream_write_shut(int64_t stream_id) override { streams_[stream_id].done = true; }

    void drain() override { conn_.close_application(0); }
    void abort() override {}
    uint64_t no_error_code() const override { return 0; }

private:
    // One stream's echo: everything received stays until the stream closes.
    struct Echo {
        std::string data;
        size_t sent = 0;
        bool fin = false;     // the client's FIN arrived
        bool blocked = false; // by the client's flow control
        bool done = false;    // FIN sent, or the write side is shut
    };
    AppConnection& conn_;
    std::map<int64_t, Echo> streams_;
};

std::unique_ptr<Application> create_echo(AppConnection& conn) {
    return std::make_unique<EchoApplication>(conn);
}

// Before main: the worker's built-in "h3" joins it when the worker starts.
const bool registered = [] {
    wraith::quic::register_application({"wraith-echo-test", create_echo, 0});
    return true;
}();

} // namespace
