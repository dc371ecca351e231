#include "bench/h3load/h2_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tools/h3/clock.h"

namespace h3load {

namespace {

// Large windows, as h2load uses: flow control must not be what is measured.
constexpr int32_t kStreamWindow = (1 << 30) - 1;
constexpr int32_t kConnectionWindow = (1 << 30) - 1;
constexpr size_t kWriteChunk = 64 * 1024;

std::string ssl_error_text() {
    unsigned long code = ERR_get_error();
    if (code == 0) {
        return "connection closed";
    }
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    ERR_clear_error();
    return text;
}

nghttp2_nv nv(const std::string& name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

} // namespace

// nghttp2's callbacks, forwarding to the H2Client in `user_data`.
struct H2Callbacks {
    static H2Client* of(void* user) { return static_cast<H2Client*>(user); }

    static Exchange* exchange(nghttp2_session* session, int32_t stream_id) {
        return static_cast<Exchange*>(nghttp2_session_get_stream_user_data(session, stream_id));
    }

    static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                         void* user) {
        auto* c = of(user);
        if (frame->hd.type != NGHTTP2_HEADERS) {
            return 0;
        }
        if (!c->first_byte_seen_) {
            c->first_byte_seen_ = true;
            c->bench_.first_byte(h3::now_ns() - c->started_at_);
        }
        c->traffic_.headers_decoded += namelen + valuelen;
        auto* e = exchange(session, frame->hd.stream_id);
        if (e && namelen == 7 && std::memcmp(name, ":status", 7) == 0) {
            int status = 0;
            for (size_t i = 0; i < valuelen; ++i) {
                status = status * 10 + (value[i] - '0');
            }
            e->status = status;
        }
        return 0;
    }

    static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
        auto* c = of(user);
        switch (frame->hd.type) {
        case NGHTTP2_HEADERS:
            c->traffic_.headers += frame->hd.length;
            break;
        case NGHTTP2_GOAWAY:
            c->goaway_ = true;
            return 0;
        case NGHTTP2_DATA:
            break;
        default:
            return 0;
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            auto* e = exchange(session, frame->hd.stream_id);
            if (e && !e->complete) {
                e->complete = true;
                --c->in_flight_;
                c->bench_.request_done(*c, *e, true);
            }
        }
        return 0;
    }

    static int on_data_chunk(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t len,
                             void* user) {
        of(user)->traffic_.data += len;
        return 0;
    }

    static int on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t, void* user) {
        auto* c = of(user);
        auto* e = exchange(session, stream_id);
        if (!e) {
            return 0;
        }
        if (!e->complete) {
            e->complete = true;
            --c->in_flight_;
            c->bench_.request_done(*c, *e, false);
        }
        c->pool_.release(e);
        return 0;
    }
};

H2Shared::~H2Shared() {
    if (callbacks) {
        nghttp2_session_callbacks_del(callbacks);
    }
    if (ctx) {
        SSL_CTX_free(ctx);
    }
}

bool H2Shared::init(const Config& config, std::string& error) {
    const auto& first = config.urls[0];
    if (!h3::resolve(first.host, first.port, config.resolves, remote, error)) {
        return false;
    }
    local = config.local;
    if (config.sni_given) {
        sni = config.sni;
    } else if (!h3::is_ip_literal(first.host)) {
        sni = first.host;
    }
    verify_name = config.sni_given ? config.sni : first.host;
    verify = !config.insecure;

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        error = "SSL_CTX_new: " + ssl_error_text();
        return false;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
        int ok = config.cacert.empty()
                     ? SSL_CTX_set_default_verify_paths(ctx)
                     : SSL_CTX_load_verify_locations(ctx, config.cacert.c_str(), nullptr);
        if (ok != 1) {
            error = "cannot load trust anchors: " + ssl_error_text();
            return false;
        }
    }
    std::string alpn(1, static_cast<char>(config.alpn.size()));
    alpn += config.alpn;
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.data()),
                            static_cast<unsigned>(alpn.size()));

    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, H2Callbacks::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, H2Callbacks::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                              H2Callbacks::on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, H2Callbacks::on_stream_close);

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
    bool has_agent = false;
    std::vector<std::pair<const std::string*, const std::string*>> extra;
    for (const auto& [name, value] : config.headers) {
        has_agent |= name == "user-agent";
        extra.emplace_back(&keep(name), &keep(value));
    }
    for (const auto& url : config.urls) {
        std::vector<nghttp2_nv> fields{nv(method_name, method), nv(scheme_name, scheme),
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
    read_buffer.resize(64 * 1024);
    return true;
}

H2Client::H2Client(Bench& bench, H2Shared& shared) : Client(bench), shared_(shared) {
    ev_io_init(&io_, io_cb, -1, EV_READ);
    io_.data = this;
}

H2Client::~H2Client() {
    teardown();
}

void H2Client::connect() {
    started_at_ = h3::now_ns();
    established_ = false;
    first_byte_seen_ = false;
    goaway_ = closing_ = failed_ = false;
    reason_.clear();
    fd_ = socket(shared_.remote.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        fail(std::string("socket: ") + std::strerror(errno));
        report_close();
        return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (shared_.local.len != 0 && ::bind(fd_, shared_.local.get(), shared_.local.len) != 0) {
        fail(std::string("bind: ") + std::strerror(errno));
        report_close();
        return;
    }
    if (::connect(fd_, shared_.remote.get(), shared_.remote.len) != 0 && errno != EINPROGRESS) {
        fail(std::string("connect: ") + std::strerror(errno));
        report_close();
        return;
    }
    state_ = State::Connecting;
    ev_io_set(&io_, fd_, EV_WRITE);
    ev_io_start(bench_.loop(), &io_);
}

void H2Client::io_cb(struct ev_loop*, ev_io* w, int revents) {
    static_cast<H2Client*>(w->data)->on_io(revents);
}

void H2Client::on_io(int revents) {
    bool ok = true;
    if (state_ == State::Connecting) {
        ok = finish_tcp_connect() && do_handshake();
    } else if (state_ == State::Handshaking) {
        ok = do_handshake();
    } else if (state_ == State::Established) {
        ok = (!(revents & EV_READ) || read_tls()) && write_tls();
        if (ok) {
            submit_more();
            ok = write_tls();
        }
        if (ok && goaway_ && in_flight_ == 0 && !closing_) {
            closing_ = true;
            failed_ = true; // close now; a fresh connection takes over
        }
        if (ok && !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
            fail("the server ended the session");
        }
    }
    if (!ok || failed_) {
        report_close();
    }
}

bool H2Client::finish_tcp_connect() {
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
        fail(std::string("connect: ") + std::strerror(error));
        return false;
    }
    ssl_ = SSL_new(shared_.ctx);
    SSL_set_fd(ssl_, fd_);
    SSL_set_connect_state(ssl_);
    if (!shared_.sni.empty()) {
        SSL_set_tlsext_host_name(ssl_, shared_.sni.c_str());
    }
    if (shared_.verify) {
        if (h3::is_ip_literal(shared_.verify_name)) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), shared_.verify_name.c_str());
        } else {
            SSL_set1_host(ssl_, shared_.verify_name.c_str());
        }
    }
    state_ = State::Handshaking;
    return true;
}

bool H2Client::do_handshake() {
    int rv = SSL_do_handshake(ssl_);
    if (rv != 1) {
        int error = SSL_get_error(ssl_, rv);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            update_watcher(error == SSL_ERROR_WANT_WRITE);
            return true;
        }
        long verify = SSL_get_verify_result(ssl_);
        fail(verify != X509_V_OK ? std::string("certificate verification failed: ") +
                                       X509_verify_cert_error_string(verify)
                                 : "TLS handshake failed: " + ssl_error_text());
        return false;
    }
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
        fail("the server did not select ALPN h2");
        return false;
    }
    // Named like h2load does: "X25519 253 bits", "ECDH P-256 256 bits".
    std::string group = "?";
    EVP_PKEY* key = nullptr;
    if (SSL_get_peer_tmp_key(ssl_, &key) == 1) {
        char curve[64] = "";
        size_t curve_len = 0;
        if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
            EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                           &curve_len) == 1) {
            const char* nist = EC_curve_nid2nist(OBJ_sn2nid(curve));
            group = std::string("ECDH ") + (nist ? nist : curve);
        } else {
            const char* name = OBJ_nid2sn(EVP_PKEY_get_base_id(key));
            group = name ? name : "?";
        }
        group += ' ';
        group += std::to_string(EVP_PKEY_get_bits(key));
        group += " bits";
        EVP_PKEY_free(key);
    }
    established_ = true;
    state_ = State::Established;
    bench_.handshake_done(*this, h3::now_ns() - started_at_, SSL_get_version(ssl_),
                          SSL_get_cipher_name(ssl_), group, "h2");
    return start_session();
}

bool H2Client::start_session() {
    if (nghttp2_session_client_new(&session_, shared_.callbacks, this) != 0) {
        fail("nghttp2_session_client_new failed");
        return false;
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    submit_more();
    return write_tls();
}

void H2Client::submit_more() {
    if (!session_ || goaway_) {
        return;
    }
    size_t limit = bench_.idle_mode() ? 1 : bench_.config().streams;
    auto remote_max =
        nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (remote_max < limit) {
        limit = remote_max;
    }
    while (in_flight_ < limit) {
        uint32_t url;
        if (!bench_.next_request(*this, url)) {
            break;
        }
        Exchange* e = pool_.acquire();
        e->url = url;
        e->start_ns = h3::now_ns();
        const auto& fields = shared_.requests[url];
        if (nghttp2_submit_request(session_, nullptr, fields.data(), fields.size(), nullptr, e) <
            0) {
            pool_.release(e);
            bench_.unissue(*this);
            break;
        }
        ++in_flight_;
    }
}

bool H2Client::read_tls() {
    auto& buffer = shared_.read_buffer;
    for (int round = 0; round < 16; ++round) {
        int n = SSL_read(ssl_, buffer.data(), static_cast<int>(buffer.size()));
        if (n <= 0) {
            int error = SSL_get_error(ssl_, n);
            if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
                return true;
            }
            fail(error == SSL_ERROR_ZERO_RETURN || error == SSL_ERROR_SYSCALL
                     ? "the server closed the connection"
                     : "TLS error: " + ssl_error_text());
            return false;
        }
        traffic_.total += static_cast<uint64_t>(n);
        auto rv = nghttp2_session_mem_recv(session_, buffer.data(), static_cast<size_t>(n));
        if (rv < 0) {
            fail(std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(rv)));
            return false;
        }
        if (static_cast<size_t>(n) < buffer.size() && SSL_pending(ssl_) == 0) {
            return true;
        }
    }
    return true;
}

bool H2Client::write_tls() {
    for (;;) {
        if (out_offset_ == out_.size()) {
            out_.clear();
            out_offset_ = 0;
            while (out_.size() < kWriteChunk) {
                const uint8_t* data = nullptr;
                auto n = nghttp2_session_mem_send(session_, &data);
                if (n < 0) {
                    fail(std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(n)));
                    return false;
                }
                if (n == 0) {
                    break;
                }
                out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
            }
            if (out_.empty()) {
                update_watcher(false);
                return true;
            }
        }
        int n =
            SSL_write(ssl_, out_.data() + out_offset_, static_cast<int>(out_.size() - out_offset_));
        if (n <= 0) {
            int error = SSL_get_error(ssl_, n);
            if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
                update_watcher(true);
                return true;
            }
            fail("TLS write error: " + ssl_error_text());
            return false;
        }
        out_offset_ += static_cast<size_t>(n);
    }
}

void H2Client::update_watcher(bool want_write) {
    int events = EV_READ | (want_write ? EV_WRITE : 0);
    if ((io_.events & (EV_READ | EV_WRITE)) != events || !ev_is_active(&io_)) {
        ev_io_stop(bench_.loop(), &io_);
        ev_io_set(&io_, fd_, events);
        ev_io_start(bench_.loop(), &io_);
    }
}

void H2Client::fail(std::string reason) {
    if (reason_.empty()) {
        reason_ = std::move(reason);
    }
    failed_ = true;
}

void H2Client::teardown() {
    ev_io_stop(bench_.loop(), &io_);
    if (session_) {
        nghttp2_session_del(session_);
        session_ = nullptr;
    }
    if (ssl_) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    out_.clear();
    out_offset_ = 0;
    state_ = State::Idle;
}

void H2Client::report_close() {
    pool_.for_each_in_use([&](Exchange& e) {
        if (!e.complete) {
            e.complete = true;
            bench_.request_done(*this, e, false); // lost with its connection
        }
        pool_.release(&e);
    });
    in_flight_ = 0;
    bool established = established_;
    bool expected = closing_;
    std::string reason = reason_;
    teardown();
    bench_.connection_closed(*this, established, expected, reason);
}

void H2Client::stop() {
    if (session_ && state_ == State::Established) {
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        write_tls();
    }
    teardown();
}

void H2Client::abandon_in_flight() {
    pool_.for_each_in_use([&](Exchange& e) {
        if (!e.complete) {
            bench_.request_abandoned(e);
            e.complete = true;
        }
    });
    in_flight_ = 0;
}

} // namespace h3load
