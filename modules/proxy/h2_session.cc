#include "modules/proxy/h2_session.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "modules/proxy/h2_upstream.h"
#include "modules/proxy/health.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/upstream_tls.h"

namespace wraith::proxy {

namespace {

constexpr int32_t kStreamWindow = 256 * 1024; // per response: what a slow client may owe
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
constexpr uint32_t kAssumedStreams = 100; // until the server's SETTINGS say otherwise

} // namespace

H2Session::H2Session(H2Sessions& owner, UpstreamPool& pool, struct ev_loop* loop,
                     const UpstreamConfig& up, size_t server)
    : owner_(owner), pool_(pool), up_(up), server_(server), loop_(loop), connector_(loop) {
    io_init(io_, on_io, this);
    ev_init(&timer_, on_timer);
    timer_.data = this;
}

H2Session::~H2Session() {
    connector_.cancel();
    if (dns_wait_)
        pool_.cancel_wait(up_, server_, dns_wait_);
    io_stop(loop_, io_);
    ev_timer_stop(loop_, &timer_);
    if (h2_)
        nghttp2_session_del(h2_);
}

bool H2Session::has_room() const {
    uint32_t max = kAssumedStreams;
    if (h2_)
        max = nghttp2_session_get_remote_settings(h2_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return open_.size() + waiting_.size() < max;
}

void H2Session::start() {
    started_us_ = monotonic_us();
    const double deadline = static_cast<double>(up_.connect_timeout.count()) / 1000.0;
    ev_timer_set(&timer_, deadline, 0.);
    ev_timer_start(loop_, &timer_);
    const UpstreamServer& s = up_.servers[server_];
    if (s.host.empty())
        return connect({s.addr});
    auto* addrs = pool_.addresses(
        loop_, up_, server_,
        [this](const std::string& error) {
            dns_wait_ = 0;
            if (!error.empty())
                return die("cannot resolve " + up_.servers[server_].address + ": " + error);
            uint64_t unused = 0;
            auto* list = pool_.addresses(loop_, up_, server_, nullptr, &unused);
            connect(list ? *list : std::vector<sockaddr_storage>{});
        },
        &dns_wait_);
    if (addrs)
        connect(*addrs);
}

void H2Session::add(H2Exchange* x) {
    if (state_ == State::ready) {
        ev_timer_stop(loop_, &timer_); // not idle any more
        x->session_ready(*this);
        return;
    }
    waiting_.push_back(x); // served when the server's SETTINGS arrived (the deadline runs)
}

void H2Session::remove(H2Exchange* x) {
    std::erase(waiting_, x);
    maybe_idle();
}

int32_t H2Session::submit(H2Exchange* x, const std::vector<nghttp2_nv>& nva, bool body) {
    nghttp2_data_provider prd{};
    prd.source.ptr = x;
    prd.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
        return static_cast<H2Exchange*>(src->ptr)->read_body(buf, len, flags);
    };
    int32_t id =
        nghttp2_submit_request(h2_, nullptr, nva.data(), nva.size(), body ? &prd : nullptr, x);
    if (id < 0)
        return -1;
    open_[id] = x;
    // keepalive_requests: this session takes no more; it closes once they are done.
    if (++streams_opened_ >= up_.keepalive_requests)
        goaway_ = true;
    schedule_flush();
    return id;
}

void H2Session::resume(int32_t id) {
    if (h2_ && nghttp2_session_resume_data(h2_, id) == 0)
        schedule_flush();
}

void H2Session::consume(int32_t id, size_t n) {
    if (h2_ && n) {
        nghttp2_session_consume(h2_, id, n);
        schedule_flush();
    }
}

void H2Session::cancel(int32_t id) {
    auto it = open_.find(id);
    if (it == open_.end())
        return;
    it->second = nullptr; // the stream's callbacks now reach no one
    if (h2_) {
        nghttp2_session_set_stream_user_data(h2_, id, nullptr);
        nghttp2_submit_rst_stream(h2_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        schedule_flush();
    }
}

void H2Session::connect(const std::vector<sockaddr_storage>& addrs) {
    const double timeout = static_cast<double>(up_.connect_timeout.count()) / 1000.0;
    connector_.start(addrs, timeout, [this](int fd, const std::string& error) {
        if (fd < 0)
            return die("connect to " + up_.servers[server_].address + ": " + error);
        if (up_.tls && up_.tls->context)
            conn_ = up_.tls->context->connect(fd, up_.servers[server_],
                                              pool_.tls_session(up_, server_));
        else
            conn_ = std::make_unique<UpstreamTransport>(fd);
        if (!conn_)
            return die("out of memory");
        state_ = State::handshaking;
        handshake();
    });
}

void H2Session::handshake() {
    int r = conn_->handshake();
    if (r < 0)
        return die("TLS handshake with upstream \"" + up_.name + "\" server " +
                   up_.servers[server_].address + " failed: " + conn_->error());
    if (r == 0) {
        watch(conn_->wait_events(true) | conn_->wait_events(false));
        return;
    }
    if (!start_http2())
        return die("cannot start an HTTP/2 session");
    state_ = State::settling; // the connect deadline still runs
    flush();
}

bool H2Session::start_http2() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return false;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Flow control follows the client: DATA is acknowledged once the client took it.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, kAssumedStreams);
    int rv = nghttp2_session_client_new2(&h2_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return false;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow}};
    nghttp2_submit_settings(h2_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    nghttp2_session_set_local_window_size(h2_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    return true;
}

void H2Session::watch(int events) {
    if (events == io_events_ && ev_is_active(&io_.io))
        return;
    io_events_ = events;
    if (conn_)
        io_set(loop_, io_, conn_->fd(), events);
    else
        io_stop(loop_, io_);
}

void H2Session::on_io(struct ev_loop*, ev_io* w, int revents) {
    auto* s = static_cast<H2Session*>(w->data);
    if (s->state_ == State::handshaking)
        return s->handshake();
    if (!s->live())
        return;
    if (revents & s->conn_->wait_events(true))
        s->read_ready();
    if (s->live())
        s->flush();
}

void H2Session::on_timer(struct ev_loop*, ev_timer* w, int) {
    auto* s = static_cast<H2Session*>(w->data);
    if (s->state_ != State::ready)
        return s->die("connecting to upstream \"" + s->up_.name + "\" server " +
                      s->up_.servers[s->server_].address + " timed out");
    s->die({}); // idle for keepalive_timeout
}

void H2Session::read_ready() {
    char buf[16384];
    in_io_ = true;
    for (;;) {
        ssize_t n = conn_->read(buf, sizeof buf);
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            in_io_ = false;
            std::string why =
                n == 0 ? "closed the connection"
                       : (conn_->error().empty() ? std::strerror(errno) : conn_->error());
            return die(open_.empty() && waiting_.empty()
                           ? std::string()
                           : "upstream \"" + up_.name + "\" server " +
                                 up_.servers[server_].address + ": " + why);
        }
        ssize_t rv =
            nghttp2_session_mem_recv(h2_, reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n));
        if (rv < 0) {
            in_io_ = false;
            return die("upstream \"" + up_.name + "\" server " + up_.servers[server_].address +
                           " broke HTTP/2: " + nghttp2_strerror(static_cast<int>(rv)),
                       Failure::protocol);
        }
        if (!live())
            break;
    }
    in_io_ = false;
    if (state_ == State::settling && settled_) {
        state_ = State::ready;
        ev_timer_stop(loop_, &timer_);
        UpstreamMetrics& metrics = owner_.metrics();
        metrics.observe_connect(metrics.slots(up_).upstream, monotonic_us() - started_us_);
    }
    serve_waiting();
}

void H2Session::schedule_flush() {
    if (!in_io_ && live())
        flush();
}

void H2Session::flush() {
    if (!live())
        return;
    for (;;) {
        if (pending_off_ < pending_.size()) {
            ssize_t n =
                conn_->write(pending_.data() + pending_off_, pending_.size() - pending_off_);
            if (n < 0 && errno == EAGAIN)
                break;
            if (n < 0)
                return die("writing to upstream \"" + up_.name + "\": " +
                           (conn_->error().empty() ? std::strerror(errno) : conn_->error()));
            pending_off_ += static_cast<size_t>(n);
            continue;
        }
        pending_.clear();
        pending_off_ = 0;
        const uint8_t* data = nullptr;
        in_io_ = true;
        ssize_t len = nghttp2_session_mem_send(h2_, &data);
        in_io_ = false;
        if (len < 0)
            return die(std::string("HTTP/2 session error: ") +
                           nghttp2_strerror(static_cast<int>(len)),
                       Failure::protocol);
        if (len == 0)
            break;
        ssize_t n = conn_->write(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
        if (n < 0 && errno != EAGAIN)
            return die("writing to upstream \"" + up_.name +
                       "\": " + (conn_->error().empty() ? std::strerror(errno) : conn_->error()));
        size_t done = n < 0 ? 0 : static_cast<size_t>(n);
        if (done < static_cast<size_t>(len))
            pending_.assign(reinterpret_cast<const char*>(data) + done,
                            static_cast<size_t>(len) - done);
    }
    int events = 0;
    if (nghttp2_session_want_read(h2_) || !open_.empty())
        events |= conn_->wait_events(true);
    if (pending_off_ < pending_.size())
        events |= conn_->wait_events(false);
    if (!nghttp2_session_want_read(h2_) && !nghttp2_session_want_write(h2_) && pending_.empty() &&
        open_.empty())
        return die({}); // GOAWAY done and nothing left
    watch(events);
    // TLS may hold decrypted records no socket event will announce.
    if (conn_->buffered() && !in_io_) {
        read_ready();
        return flush();
    }
    if (!in_io_)
        serve_waiting(); // a stream that closed while sending (a cancel) may leave it idle
}

void H2Session::serve_waiting() {
    while (state_ == State::ready && usable() && !waiting_.empty() && has_room_for_open()) {
        H2Exchange* x = waiting_.front();
        waiting_.erase(waiting_.begin());
        x->session_ready(*this);
    }
    if (!waiting_.empty() && !usable()) {
        // A GOAWAY came: the waiting go to another session.
        std::vector<H2Exchange*> moved = std::move(waiting_);
        waiting_.clear();
        for (H2Exchange* x : moved)
            x->session_failed({});
    }
    maybe_idle();
}

bool H2Session::has_room_for_open() const {
    return open_.size() <
           nghttp2_session_get_remote_settings(h2_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void H2Session::maybe_idle() {
    if (state_ != State::ready || !open_.empty() || !waiting_.empty())
        return;
    if (goaway_ || up_.keepalive == 0)
        return die({});
    ev_timer_stop(loop_, &timer_);
    ev_timer_set(&timer_, static_cast<double>(up_.keepalive_timeout.count()) / 1000.0, 0.);
    ev_timer_start(loop_, &timer_);
}

void H2Session::die(const std::string& why, Failure kind) {
    if (state_ == State::dead)
        return;
    if (state_ != State::ready)
        kind = Failure::connect; // the session never carried a request
    state_ = State::dead;
    connector_.cancel();
    io_stop(loop_, io_);
    ev_timer_stop(loop_, &timer_);
    std::vector<H2Exchange*> waiting = std::move(waiting_);
    waiting_.clear();
    auto open = std::move(open_);
    open_.clear();
    for (H2Exchange* x : waiting)
        x->session_failed(why.empty() ? "the session closed" : why, kind);
    for (auto& [id, x] : open)
        if (x)
            x->on_stream_closed(NGHTTP2_INTERNAL_ERROR, why.empty() ? "the session closed" : why,
                                kind);
    owner_.closed(this);
}

H2Exchange* H2Session::exchange_of(nghttp2_session* s, int32_t id) {
    return static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(s, id));
}

int H2Session::on_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (H2Exchange* x = exchange_of(s, frame->hd.stream_id))
        x->on_field({reinterpret_cast<const char*>(name), namelen},
                    {reinterpret_cast<const char*>(value), valuelen});
    return 0;
}

int H2Session::on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<H2Session*>(user);
    const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (H2Exchange* x = exchange_of(s, frame->hd.stream_id))
            x->on_headers_end(end);
        break;
    case NGHTTP2_DATA:
        if (end)
            if (H2Exchange* x = exchange_of(s, frame->hd.stream_id))
                x->on_stream_end();
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
            self->settled_ = true;
        break;
    case NGHTTP2_GOAWAY:
        self->goaway_ = true; // streams above last_stream_id close with REFUSED_STREAM
        break;
    default:
        break;
    }
    return 0;
}

int H2Session::on_data_chunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                             size_t len, void*) {
    if (H2Exchange* x = exchange_of(s, id))
        x->on_data(data, len);
    else
        nghttp2_session_consume(s, id, len); // a cancelled stream's leftovers
    return 0;
}

int H2Session::on_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* user) {
    auto* self = static_cast<H2Session*>(user);
    auto it = self->open_.find(id);
    if (it == self->open_.end())
        return 0;
    H2Exchange* x = it->second;
    self->open_.erase(it);
    if (x)
        x->on_stream_closed(error, {}, Failure::reset);
    return 0;
}

// ---- the sessions of this worker -------------------------------------------------------------

H2Sessions::H2Sessions(struct ev_loop* loop, UpstreamPool& pool, UpstreamMetrics& metrics)
    : loop_(loop), pool_(pool), metrics_(metrics) {
    ev_prepare_init(&reaper_, on_reap);
    reaper_.data = this;
}

H2Sessions::~H2Sessions() {
    ev_prepare_stop(loop_, &reaper_);
    sessions_.clear();
    dead_.clear();
}

H2Session* H2Sessions::session_for(const UpstreamConfig& up, size_t server) {
    for (auto& [key, s] : sessions_)
        if (key.up == &up && key.server == server && s->usable() && s->has_room())
            return s.get();
    sessions_.emplace_back(Key{&up, server},
                           std::make_unique<H2Session>(*this, pool_, loop_, up, server));
    H2Session* s = sessions_.back().second.get();
    s->start();
    return s;
}

void H2Sessions::closed(H2Session* s) {
    auto it = std::find_if(sessions_.begin(), sessions_.end(),
                           [s](const auto& p) { return p.second.get() == s; });
    if (it == sessions_.end())
        return;
    dead_.push_back(std::move(it->second));
    sessions_.erase(it);
    ev_prepare_start(loop_, &reaper_);
}

void H2Sessions::on_reap(struct ev_loop* loop, ev_prepare* w, int) {
    auto* self = static_cast<H2Sessions*>(w->data);
    self->dead_.clear();
    ev_prepare_stop(loop, w);
}

} // namespace wraith::proxy
