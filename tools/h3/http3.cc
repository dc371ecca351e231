// The HTTP/3 half of Connection: nghttp3 setup, request submission and its callbacks.
#include "tools/h3/connection.h"

namespace h3 {

// nghttp3's callbacks, forwarding to the Connection in `conn_user_data`.
struct HttpCallbacks {
    static Connection* of(void* user) { return static_cast<Connection*>(user); }

    static int stream_close(nghttp3_conn*, int64_t stream_id, uint64_t app_error, void* user,
                            void* stream) {
        auto* c = of(user);
        if (ngtcp2_is_bidi_stream(stream_id)) {
            c->handler_.on_stream_closed(*c, stream, app_error);
        } else {
            ngtcp2_conn_extend_max_streams_uni(c->conn_, 1);
        }
        return 0;
    }

    static int recv_data(nghttp3_conn*, int64_t stream_id, const uint8_t* data, size_t len,
                         void* user, void* stream) {
        auto* c = of(user);
        c->counters_.body_bytes += len;
        c->handler_.on_body(*c, stream_id, stream, data, len);
        return 0;
    }

    // Bytes nghttp3 held back (QPACK-blocked headers) and has now consumed.
    static int deferred_consume(nghttp3_conn*, int64_t stream_id, size_t consumed, void* user,
                                void*) {
        of(user)->consume(stream_id, consumed);
        return 0;
    }

    static int recv_header(nghttp3_conn*, int64_t, int32_t token, nghttp3_rcbuf* name,
                           nghttp3_rcbuf* value, uint8_t, void* user, void* stream) {
        auto* c = of(user);
        auto n = nghttp3_rcbuf_get_buf(name);
        auto v = nghttp3_rcbuf_get_buf(value);
        c->counters_.header_bytes += n.len + v.len;
        c->handler_.on_header(*c, stream, token, {reinterpret_cast<const char*>(n.base), n.len},
                              {reinterpret_cast<const char*>(v.base), v.len});
        return 0;
    }

    static int end_headers(nghttp3_conn*, int64_t, int, void* user, void* stream) {
        auto* c = of(user);
        c->handler_.on_headers_end(*c, stream);
        return 0;
    }

    static int end_stream(nghttp3_conn*, int64_t, void* user, void* stream) {
        auto* c = of(user);
        c->handler_.on_response_end(*c, stream);
        return 0;
    }

    static int stop_sending(nghttp3_conn*, int64_t stream_id, uint64_t app_error, void* user,
                            void*) {
        auto* c = of(user);
        int rv = ngtcp2_conn_shutdown_stream_read(c->conn_, 0, stream_id, app_error);
        return rv == 0 || rv == NGTCP2_ERR_STREAM_NOT_FOUND ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
    }

    static int reset_stream(nghttp3_conn*, int64_t stream_id, uint64_t app_error, void* user,
                            void*) {
        auto* c = of(user);
        int rv = ngtcp2_conn_shutdown_stream_write(c->conn_, 0, stream_id, app_error);
        return rv == 0 || rv == NGTCP2_ERR_STREAM_NOT_FOUND ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
    }

    // GOAWAY (RFC 9114 §5.2): finish what runs, start nothing new here.
    static int shutdown(nghttp3_conn*, int64_t, void* user) {
        auto* c = of(user);
        c->goaway_ = true;
        c->handler_.on_goaway(*c);
        return 0;
    }

    static nghttp3_ssize read_body(nghttp3_conn*, int64_t, nghttp3_vec* vec, size_t veccnt,
                                   uint32_t* flags, void* user, void* stream) {
        auto* c = of(user);
        // The whole body at once: it stays valid until the stream closes, so nghttp3 can
        // keep pointing into it until the data is acknowledged.
        auto body = c->handler_.request_body(*c, stream);
        *flags |= NGHTTP3_DATA_FLAG_EOF;
        if (body.empty() || veccnt == 0) {
            return 0;
        }
        vec[0].base = const_cast<uint8_t*>(body.data());
        vec[0].len = body.size();
        return 1;
    }

    static nghttp3_ssize read_body_part(nghttp3_conn*, int64_t, nghttp3_vec* vec, size_t veccnt,
                                        uint32_t* flags, void* user, void* stream) {
        auto* c = of(user);
        bool eof = false;
        auto part = c->handler_.request_body_part(*c, stream, &eof);
        if (eof) {
            *flags |= NGHTTP3_DATA_FLAG_EOF;
        } else if (part.empty()) {
            return NGHTTP3_ERR_WOULDBLOCK;
        }
        if (part.empty() || veccnt == 0) {
            return 0;
        }
        vec[0].base = const_cast<uint8_t*>(part.data());
        vec[0].len = part.size();
        return 1;
    }

    static nghttp3_callbacks make() {
        nghttp3_callbacks cb{};
        cb.stream_close = stream_close;
        cb.recv_data = recv_data;
        cb.deferred_consume = deferred_consume;
        cb.recv_header = recv_header;
        cb.recv_trailer = recv_header; // trailer fields reach on_header after the body
        cb.end_headers = end_headers;
        cb.stop_sending = stop_sending;
        cb.end_stream = end_stream;
        cb.reset_stream = reset_stream;
        cb.shutdown = shutdown;
        return cb;
    }
};

bool Connection::setup_http() {
    if (http_) {
        return true;
    }
    if (!settings_.raw && ngtcp2_conn_get_streams_uni_left(conn_) < 3) {
        fail("the server allows fewer than the 3 unidirectional streams HTTP/3 needs");
        return false;
    }
    static const nghttp3_callbacks callbacks = HttpCallbacks::make();
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 100;
    if (settings_.raw) {
        // Raw mode (raw.h): no dynamic table either way, so the server's responses decode
        // without its encoder stream and nothing of ours follows raw encoder-stream bytes.
        settings.qpack_max_dtable_capacity = 0;
        settings.qpack_encoder_max_dtable_capacity = 0;
        settings.qpack_blocked_streams = 0;
    }
    if (int rv =
            nghttp3_conn_client_new(&http_, &callbacks, &settings, nghttp3_mem_default(), this);
        rv != 0) {
        fail(std::string("nghttp3_conn_client_new: ") + nghttp3_strerror(rv));
        return false;
    }
    if (settings_.raw) {
        return setup_raw_streams();
    }
    // Control stream and the QPACK encoder/decoder pair (RFC 9114 §6.2, RFC 9204 §4.2).
    int64_t control, encoder, decoder;
    if (ngtcp2_conn_open_uni_stream(conn_, &control, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &encoder, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &decoder, nullptr) != 0) {
        fail("cannot open the HTTP/3 control streams");
        return false;
    }
    if (nghttp3_conn_bind_control_stream(http_, control) != 0 ||
        nghttp3_conn_bind_qpack_streams(http_, encoder, decoder) != 0) {
        fail("cannot bind the HTTP/3 control streams");
        return false;
    }
    return true;
}

void Connection::resume_body(int64_t stream_id) {
    if (http_ && !closed_) {
        nghttp3_conn_resume_stream(http_, stream_id);
        schedule_write();
    }
}

void Connection::teardown_http() {
    if (http_) {
        nghttp3_conn_del(http_);
        http_ = nullptr;
    }
}

int64_t Connection::submit(const nghttp3_nv* headers, size_t count, bool has_body, void* stream,
                           bool streamed) {
    if (!can_submit()) {
        return -1;
    }
    int64_t stream_id;
    if (ngtcp2_conn_open_bidi_stream(conn_, &stream_id, stream) != 0) {
        return -1;
    }
    static const nghttp3_data_reader body_reader{HttpCallbacks::read_body};
    static const nghttp3_data_reader part_reader{HttpCallbacks::read_body_part};
    const nghttp3_data_reader* reader = streamed ? &part_reader : &body_reader;
    if (int rv = nghttp3_conn_submit_request(http_, stream_id, headers, count,
                                             has_body ? reader : nullptr, stream);
        rv != 0) {
        set_app_error(rv);
        fail(std::string("cannot submit a request: ") + nghttp3_strerror(rv));
        schedule_write();
        return -1;
    }
    return stream_id;
}

} // namespace h3
