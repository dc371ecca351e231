#include "bench/h3load/quic_client.h"

#include "tools/h3/clock.h"

namespace h3load {

namespace {

nghttp3_nv nv(const std::string& name, const std::string& value) {
    // The strings outlive every request, so nghttp3 need not copy them.
    return nghttp3_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP3_NV_FLAG_NO_COPY_NAME | NGHTTP3_NV_FLAG_NO_COPY_VALUE};
}

// GnuTLS group names in h2load's words ("X25519 253 bits", "ECDH P-256 256 bits").
std::string h2load_key_name(const std::string& group) {
    if (group == "X25519") {
        return "X25519 253 bits";
    }
    if (group == "X448") {
        return "X448 448 bits";
    }
    if (group.rfind("SECP", 0) == 0 && group.size() == 9) {
        auto bits = group.substr(4, 3);
        return "ECDH P-" + bits + " " + bits + " bits";
    }
    return group;
}

} // namespace

bool QuicShared::init(const Config& config, std::string& error) {
    if (!tls.init(!config.insecure, config.cacert, error)) {
        return false;
    }
    const auto& first = config.urls[0];
    if (!h3::resolve(first.host, first.port, config.resolves, target.remote, error)) {
        return false;
    }
    target.local = config.local;
    if (config.sni_given) {
        target.sni = config.sni;
    } else if (!h3::is_ip_literal(first.host)) {
        target.sni = first.host;
    }
    target.verify_name = config.sni_given ? config.sni : first.host;
    settings.tls = &tls;
    settings.alpn = config.alpn;
    if (config.idle > 0) {
        // Idle connections must outlive the hold (0 = no idle timeout of ours).
        settings.idle_timeout =
            config.hold > 0 ? static_cast<uint64_t>((config.hold + 30) * NGTCP2_SECONDS) : 0;
        settings.stream_window = 64 * 1024;
        settings.connection_window = 256 * 1024;
    } else {
        settings.stream_window = 1024 * 1024;
        settings.connection_window = 16 * 1024 * 1024;
        // A PING after a second of silence: a server that died shows up as a lost
        // connection (ICMP) instead of requests hanging until the window ends.
        settings.keep_alive = NGTCP2_SECONDS;
    }

    // A deque never moves what it holds: `requests` points into these strings.
    auto keep = [&](std::string s) -> const std::string& {
        strings.push_back(std::move(s));
        return strings.back();
    };
    const auto& method_name = keep(":method");
    const auto& method = keep("GET");
    const auto& scheme_name = keep(":scheme");
    const auto& scheme = keep("https");
    const auto& authority_name = keep(":authority");
    const auto& path_name = keep(":path");
    const auto& agent_name = keep("user-agent");
    const auto& agent = keep("h3load/0.1");
    std::vector<std::pair<const std::string*, const std::string*>> extra;
    bool has_agent = false;
    for (const auto& [name, value] : config.headers) {
        has_agent |= name == "user-agent";
        extra.emplace_back(&keep(name), &keep(value));
    }
    for (const auto& url : config.urls) {
        std::vector<nghttp3_nv> fields{nv(method_name, method), nv(scheme_name, scheme),
                                       nv(authority_name, keep(url.authority)),
                                       nv(path_name, keep(url.path))};
        if (!has_agent) {
            fields.push_back(nv(agent_name, agent));
        }
        for (const auto& [name, value] : extra) {
            fields.push_back(nv(*name, *value));
        }
        requests.push_back(std::move(fields));
    }
    return true;
}

void QuicClient::connect() {
    conn_ = std::make_unique<h3::Connection>(bench_.loop(), shared_.io, shared_.settings, *this);
    first_byte_seen_ = false;
    closing_ = false;
    goaway_ = false;
    used_ = false;
    std::string error;
    if (!conn_->connect(shared_.target, error)) {
        // No socket (descriptors exhausted?): count it like a failed handshake.
        if (bench_.config().new_connection) {
            bench_.connect_failed(h3::now_ns());
        }
        conn_.reset();
        bench_.connection_closed(*this, false, false, error);
    }
}

void QuicClient::stop() {
    if (conn_) {
        closed_traffic_ += traffic_of(*conn_);
        conn_.reset(); // sends CONNECTION_CLOSE, no events
    }
}

Traffic QuicClient::traffic_of(const h3::Connection& c) {
    const auto& n = c.counters();
    return Traffic{n.stream_bytes, n.request_bytes - n.body_bytes, n.header_bytes, n.body_bytes};
}

Traffic QuicClient::traffic() const {
    Traffic t = closed_traffic_;
    if (conn_) {
        t += traffic_of(*conn_);
    }
    return t;
}

void QuicClient::abandon_in_flight() {
    pool_.for_each_in_use([&](Exchange& e) {
        if (!e.complete) {
            bench_.request_abandoned(e);
            e.complete = true;
        }
    });
    in_flight_ = 0;
}

void QuicClient::on_handshake_completed(h3::Connection& c) {
    bench_.handshake_done(*this, h3::now_ns() - c.started_at(), c.tls_version(), c.tls_cipher(),
                          h2load_key_name(c.tls_group()), c.alpn());
}

void QuicClient::resume_requests() {
    if (conn_ && !closing_ && conn_->can_submit()) {
        on_stream_credit(*conn_);
        conn_->schedule_write();
    }
}

void QuicClient::on_stream_credit(h3::Connection& c) {
    size_t limit = bench_.idle_mode() ? 1 : bench_.config().streams;
    const bool one_request = bench_.config().new_connection;
    while (in_flight_ < limit && !goaway_ && !(one_request && used_) && c.can_submit()) {
        uint32_t url;
        if (!bench_.next_request(*this, url)) {
            break;
        }
        Exchange* e = pool_.acquire();
        e->url = url;
        // --new-connection: the request's time includes the handshake it waited for.
        e->start_ns = one_request ? c.started_at() : h3::now_ns();
        const auto& fields = shared_.requests[url];
        if (c.submit(fields.data(), fields.size(), false, e) < 0) {
            pool_.release(e);
            bench_.unissue(*this);
            break;
        }
        ++in_flight_;
        used_ = one_request;
    }
}

void QuicClient::on_header(h3::Connection& c, void* stream, int32_t token, std::string_view,
                           std::string_view value) {
    if (!first_byte_seen_) {
        first_byte_seen_ = true;
        bench_.first_byte(h3::now_ns() - c.started_at());
    }
    if (token == NGHTTP3_QPACK_TOKEN__STATUS) {
        int status = 0;
        for (char ch : value) {
            status = status * 10 + (ch - '0');
        }
        static_cast<Exchange*>(stream)->status = status;
    }
}

void QuicClient::on_body(h3::Connection& c, int64_t stream_id, void*, const uint8_t*, size_t len) {
    c.consume(stream_id, len);
}

void QuicClient::on_response_end(h3::Connection& c, void* stream) {
    auto* e = static_cast<Exchange*>(stream);
    e->complete = true;
    --in_flight_;
    bench_.request_done(*this, *e, true);
    if ((goaway_ || bench_.config().new_connection) && in_flight_ == 0) {
        closing_ = true;
        c.close();
    }
}

void QuicClient::on_stream_closed(h3::Connection& c, void* stream, uint64_t) {
    auto* e = static_cast<Exchange*>(stream);
    if (!e->complete) {
        e->complete = true;
        --in_flight_;
        bench_.request_done(*this, *e, false);
    }
    pool_.release(e);
    if ((goaway_ || bench_.config().new_connection) && in_flight_ == 0 && !closing_) {
        closing_ = true;
        c.close();
    }
}

void QuicClient::on_goaway(h3::Connection& c) {
    // Finish what runs, then reconnect (Bench does, when the close is reported).
    goaway_ = true;
    if (in_flight_ == 0) {
        closing_ = true;
        c.close();
    }
}

void QuicClient::on_early_data_rejected(h3::Connection&) {
    // h3load never sends 0-RTT; nothing to redo.
}

void QuicClient::on_closed(h3::Connection& c) {
    pool_.for_each_in_use([&](Exchange& e) {
        if (!e.complete) {
            e.complete = true;
            bench_.request_done(*this, e, false); // lost with its connection
        }
        pool_.release(&e);
    });
    in_flight_ = 0;
    closed_traffic_ += traffic_of(c);
    bool established = c.handshake_completed();
    bool expected = closing_;
    std::string reason = c.close_reason();
    if (!established && bench_.config().new_connection) {
        bench_.connect_failed(c.started_at());
    }
    conn_.reset(); // allowed: on_closed is the connection's last event
    bench_.connection_closed(*this, established, expected, reason);
}

} // namespace h3load
