#include "modules/proxy/h2_upstream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "common/log.h"
#include "common/loop.h"
#include "modules/module.h"
#include "modules/proxy/health.h"
#include "modules/proxy/pool.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/upstream_request.h"
#include "modules/proxy/upstream_tls.h"
#include "modules/proxy/upstream_transport.h"

namespace wraith::proxy {

namespace {

constexpr int32_t kStreamWindow = 256 * 1024;       // per response: what a slow client may owe
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
constexpr uint32_t kAssumedStreams = 100;           // until the server's SETTINGS say otherwise

nghttp2_nv nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
            NGHTTP2_NV_FLAG_NONE};
}

} // namespace

// One connection to one server, its streams shared by the requests of this worker.
class H2Session {
public:
    H2Session(struct ev_loop* loop, const UpstreamConfig& up, size_t server)
        : up_(up), server_(server), loop_(loop), connector_(loop) {
        io_init(io_, on_io, this);
        ev_init(&timer_, on_timer);
        timer_.data = this;
    }

    ~H2Session() {
        connector_.cancel();
        if (dns_wait_)
            UpstreamPool::instance().cancel_wait(up_, server_, dns_wait_);
        io_stop(loop_, io_);
        ev_timer_stop(loop_, &timer_);
        if (h2_)
            nghttp2_session_del(h2_);
    }

    const UpstreamConfig& upstream() const { return up_; }
    size_t server() const { return server_; }
    bool usable() const { return state_ != State::dead && !goaway_; }
    bool has_room() const {
        uint32_t max = kAssumedStreams;
        if (h2_)
            max = nghttp2_session_get_remote_settings(h2_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        return open_.size() + waiting_.size() < max;
    }
    bool tls() const { return up_.tls != nullptr; }

    void start() {
        const double deadline = static_cast<double>(up_.connect_timeout.count()) / 1000.0;
        ev_timer_set(&timer_, deadline, 0.);
        ev_timer_start(loop_, &timer_);
        const UpstreamServer& s = up_.servers[server_];
        if (s.host.empty())
            return connect({s.addr});
        auto* addrs = UpstreamPool::instance().addresses(
            loop_, up_, server_,
            [this](const std::string& error) {
                dns_wait_ = 0;
                if (!error.empty())
                    return die("cannot resolve " + up_.servers[server_].address + ": " + error);
                uint64_t unused = 0;
                auto* list = UpstreamPool::instance().addresses(loop_, up_, server_, nullptr, &unused);
                connect(list ? *list : std::vector<sockaddr_storage>{});
            },
            &dns_wait_);
        if (addrs)
            connect(*addrs);
    }

    // A request for a stream: served at once when the session is ready, else when it is.
    void add(H2Exchange* x) {
        if (state_ == State::ready) {
            ev_timer_stop(loop_, &timer_); // not idle any more
            x->session_ready(*this);
            return;
        }
        waiting_.push_back(x); // served when the server's SETTINGS arrived (the deadline runs)
    }

    void remove(H2Exchange* x) {
        std::erase(waiting_, x);
        maybe_idle();
    }

    // Opens a stream for `x` with the request fields `nva`; -1 when nghttp2 refused.
    int32_t submit(H2Exchange* x, const std::vector<nghttp2_nv>& nva, bool body) {
        nghttp2_data_provider prd{};
        prd.source.ptr = x;
        prd.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len,
                               uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
            return static_cast<H2Exchange*>(src->ptr)->read_body(buf, len, flags);
        };
        int32_t id = nghttp2_submit_request(h2_, nullptr, nva.data(), nva.size(),
                                            body ? &prd : nullptr, x);
        if (id < 0)
            return -1;
        open_[id] = x;
        // keepalive_requests: this session takes no more; it closes once they are done.
        if (++streams_opened_ >= up_.keepalive_requests)
            goaway_ = true;
        schedule_flush();
        return id;
    }

    void resume(int32_t id) {
        if (h2_ && nghttp2_session_resume_data(h2_, id) == 0)
            schedule_flush();
    }

    void consume(int32_t id, size_t n) {
        if (h2_ && n) {
            nghttp2_session_consume(h2_, id, n);
            schedule_flush();
        }
    }

    // The request is over on our side (client gone, timeout): RST_STREAM(CANCEL).
    void cancel(int32_t id) {
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

private:
    // settling: the session is up, but requests wait for the server's first SETTINGS (its
    // stream limit), so a burst is not refused by a server that allows few streams.
    enum class State { connecting, handshaking, settling, ready, dead };

    void connect(const std::vector<sockaddr_storage>& addrs) {
        const double timeout = static_cast<double>(up_.connect_timeout.count()) / 1000.0;
        connector_.start(addrs, timeout, [this](int fd, const std::string& error) {
            if (fd < 0)
                return die("connect to " + up_.servers[server_].address + ": " + error);
            if (up_.tls && up_.tls->context)
                conn_ = up_.tls->context->connect(
                    fd, up_.servers[server_], UpstreamPool::instance().tls_session(up_, server_));
            else
                conn_ = std::make_unique<UpstreamTransport>(fd);
            if (!conn_)
                return die("out of memory");
            state_ = State::handshaking;
            handshake();
        });
    }

    void handshake() {
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

    bool live() const { return state_ == State::settling || state_ == State::ready; }

    bool start_http2() {
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

    void watch(int events) {
        if (events == io_events_ && ev_is_active(&io_.io))
            return;
        io_events_ = events;
        if (conn_)
            io_set(loop_, io_, conn_->fd(), events);
        else
            io_stop(loop_, io_);
    }

    static void on_io(struct ev_loop*, ev_io* w, int revents) {
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

    static void on_timer(struct ev_loop*, ev_timer* w, int) {
        auto* s = static_cast<H2Session*>(w->data);
        if (s->state_ != State::ready)
            return s->die("connecting to upstream \"" + s->up_.name + "\" server " +
                          s->up_.servers[s->server_].address + " timed out");
        s->die({}); // idle for keepalive_timeout
    }

    void read_ready() {
        char buf[16384];
        in_io_ = true;
        for (;;) {
            ssize_t n = conn_->read(buf, sizeof buf);
            if (n < 0 && errno == EAGAIN)
                break;
            if (n <= 0) {
                in_io_ = false;
                std::string why = n == 0 ? "closed the connection"
                                         : (conn_->error().empty() ? std::strerror(errno)
                                                                   : conn_->error());
                return die(open_.empty() && waiting_.empty()
                               ? std::string()
                               : "upstream \"" + up_.name + "\" server " +
                                     up_.servers[server_].address + ": " + why);
            }
            ssize_t rv = nghttp2_session_mem_recv(h2_, reinterpret_cast<uint8_t*>(buf),
                                                  static_cast<size_t>(n));
            if (rv < 0) {
                in_io_ = false;
                return die("upstream \"" + up_.name + "\" server " +
                           up_.servers[server_].address + " broke HTTP/2: " +
                           nghttp2_strerror(static_cast<int>(rv)));
            }
            if (!live())
                break;
        }
        in_io_ = false;
        if (state_ == State::settling && settled_) {
            state_ = State::ready;
            ev_timer_stop(loop_, &timer_);
        }
        serve_waiting();
    }

    void schedule_flush() {
        if (!in_io_ && live())
            flush();
    }

    // Writes what nghttp2 has to send; keeps a refused remainder for the next EV_WRITE.
    void flush() {
        if (!live())
            return;
        for (;;) {
            if (pending_off_ < pending_.size()) {
                ssize_t n = conn_->write(pending_.data() + pending_off_,
                                         pending_.size() - pending_off_);
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
                           nghttp2_strerror(static_cast<int>(len)));
            if (len == 0)
                break;
            ssize_t n = conn_->write(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
            if (n < 0 && errno != EAGAIN)
                return die("writing to upstream \"" + up_.name + "\": " +
                           (conn_->error().empty() ? std::strerror(errno) : conn_->error()));
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
        if (!nghttp2_session_want_read(h2_) && !nghttp2_session_want_write(h2_) &&
            pending_.empty() && open_.empty())
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

    void serve_waiting() {
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

    bool has_room_for_open() const {
        return open_.size() <
               nghttp2_session_get_remote_settings(h2_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    }

    void maybe_idle() {
        if (state_ != State::ready || !open_.empty() || !waiting_.empty())
            return;
        if (goaway_ || up_.keepalive == 0)
            return die({});
        ev_timer_stop(loop_, &timer_);
        ev_timer_set(&timer_, static_cast<double>(up_.keepalive_timeout.count()) / 1000.0, 0.);
        ev_timer_start(loop_, &timer_);
    }

    // The session is over: every request on it or waiting for it hears why (empty: a quiet
    // close with nothing in flight), and the session is destroyed after this callback.
    void die(const std::string& why) {
        if (state_ == State::dead)
            return;
        state_ = State::dead;
        connector_.cancel();
        io_stop(loop_, io_);
        ev_timer_stop(loop_, &timer_);
        std::vector<H2Exchange*> waiting = std::move(waiting_);
        waiting_.clear();
        auto open = std::move(open_);
        open_.clear();
        for (H2Exchange* x : waiting)
            x->session_failed(why.empty() ? "the session closed" : why);
        for (auto& [id, x] : open)
            if (x)
                x->on_stream_closed(NGHTTP2_INTERNAL_ERROR,
                                    why.empty() ? "the session closed" : why);
        H2Sessions::instance().closed(this);
    }

    static H2Exchange* exchange_of(nghttp2_session* s, int32_t id) {
        return static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(s, id));
    }

    static int on_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                         void*) {
        if (H2Exchange* x = exchange_of(s, frame->hd.stream_id))
            x->on_field({reinterpret_cast<const char*>(name), namelen},
                        {reinterpret_cast<const char*>(value), valuelen});
        return 0;
    }

    static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
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

    static int on_data_chunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data,
                             size_t len, void*) {
        if (H2Exchange* x = exchange_of(s, id))
            x->on_data(data, len);
        else
            nghttp2_session_consume(s, id, len); // a cancelled stream's leftovers
        return 0;
    }

    static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* user) {
        auto* self = static_cast<H2Session*>(user);
        auto it = self->open_.find(id);
        if (it == self->open_.end())
            return 0;
        H2Exchange* x = it->second;
        self->open_.erase(it);
        if (x)
            x->on_stream_closed(error, {});
        return 0;
    }

    const UpstreamConfig& up_;
    size_t server_;
    struct ev_loop* loop_;
    State state_ = State::connecting;
    Connector connector_;
    uint64_t dns_wait_ = 0;
    std::unique_ptr<UpstreamTransport> conn_;
    nghttp2_session* h2_ = nullptr;
    OrderedIo io_; // common/loop.h: served in readiness order
    int io_events_ = 0;
    ev_timer timer_; // the connect deadline, then the idle timeout
    std::vector<H2Exchange*> waiting_;
    std::unordered_map<int32_t, H2Exchange*> open_; // null: cancelled, its frames dropped
    std::string pending_;
    size_t pending_off_ = 0;
    bool goaway_ = false;  // the server's GOAWAY, or keepalive_requests reached
    uint32_t streams_opened_ = 0;
    bool settled_ = false; // the server's SETTINGS arrived
    bool in_io_ = false; // inside nghttp2: writes wait for the end of the callback
};

// ---- the sessions of this worker -------------------------------------------------------

H2Sessions& H2Sessions::instance() {
    static H2Sessions sessions;
    return sessions;
}

H2Session* H2Sessions::session_for(struct ev_loop* loop, const UpstreamConfig& up, size_t server) {
    if (!loop_) {
        loop_ = loop;
        ev_prepare_init(&reaper_, on_reap);
        reaper_.data = this;
    }
    for (auto& [key, s] : sessions_)
        if (key.up == &up && key.server == server && s->usable() && s->has_room())
            return s.get();
    sessions_.emplace_back(Key{&up, server}, std::make_unique<H2Session>(loop, up, server));
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

size_t H2Sessions::count() const {
    return sessions_.size();
}

void H2Sessions::on_reap(struct ev_loop* loop, ev_prepare* w, int) {
    auto* self = static_cast<H2Sessions*>(w->data);
    self->dead_.clear();
    ev_prepare_stop(loop, w);
}

// ---- one request -------------------------------------------------------------------------

H2Exchange::H2Exchange(const ProxyHandler& handler, Request& req, BodyReader& body,
                       ResponseWriter& out)
    : handler_(handler), req_(req), body_(body), out_(out), loop_(req.loop) {
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_init(&total_timer_, on_total_timer);
    total_timer_.data = this;
}

H2Exchange::~H2Exchange() {
    finished_ = true;
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
    if (holding_)
        UpstreamPool::instance().release(handler_.upstream(), server_);
}

std::string H2Exchange::describe() const {
    return handler_.upstream().servers[server_].address;
}

void H2Exchange::start() {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = UpstreamPool::instance();
    pool.count_request(up);
    tried_.assign(up.servers.size(), false);
    out_.on_abort([this] { client_aborted(); });
    if (!req_.upgrade.empty()) {
        if (req_.extended_connect()) {
            finished_ = true;
            body_.discard();
            return send_error(req_, out_, 501,
                              "proxy: WebSockets to an HTTP/2 upstream (\"" + up.name +
                                  "\") are not supported; use protocol = \"http/1.1\"");
        }
        req_.upgrade = {}; // an HTTP/1.1 Upgrade: served as a plain request
    }
    if (up.total_timeout.count() > 0) {
        ev_timer_set(&total_timer_, static_cast<double>(up.total_timeout.count()) / 1000.0, 0.);
        ev_timer_start(loop_, &total_timer_);
    }
    request_id_ = assign_request_id(handler_, req_);
    if (req_.has_body && handler_.options().buffer_request_body) {
        spooling_ = true;
        const char* tmp = std::getenv("TMPDIR");
        spool_ = std::make_unique<BodySpool>(tmp && *tmp == '/' ? tmp : "/tmp");
        body_.on_data([this] { spool_more(); });
        return spool_more();
    }
    if (req_.has_body)
        body_.on_data([this] {
            if (finished_)
                return;
            if (body_.failed())
                return client_aborted();
            if (session_ && stream_ >= 0)
                session_->resume(stream_);
        });
    pick_and_go();
}

void H2Exchange::spool_more() {
    if (finished_)
        return;
    if (body_.failed())
        return client_aborted();
    std::string error;
    BodySpool::Fill step = spool_->fill(body_, error);
    if (step == BodySpool::Fill::more)
        return;
    body_.on_data(nullptr);
    if (step == BodySpool::Fill::failed)
        return fail(500, "proxy: buffer_request_body: " + error);
    spooling_ = false;
    pick_and_go();
}

void H2Exchange::pick_and_go(int chosen) {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = UpstreamPool::instance();
    int pick = chosen >= 0 ? chosen : pool.pick(up, req_, tried_);
    if (pick < 0) {
        finished_ = true;
        if (!spool_)
            body_.discard();
        ErrorLog::limited(LogLevel::warn, "proxy: upstream \"%s\" has no server available",
                          up.name.c_str());
        return send_error(req_, out_, 503,
                          "proxy: no server of upstream \"" + up.name + "\" is available");
    }
    if (holding_)
        pool.release(up, server_);
    server_ = static_cast<size_t>(pick);
    pool.acquire(up, server_);
    holding_ = true;
    session_ = H2Sessions::instance().session_for(loop_, up, server_);
    session_->add(this);
}

void H2Exchange::session_ready(H2Session& session) {
    if (finished_)
        return;
    session_ = &session;
    UpstreamRequest r;
    build_upstream_request(handler_, req_, server_, false, r);
    std::vector<nghttp2_nv> nva;
    nva.reserve(r.fields.size() + 6);
    nva.push_back(nv(":method", r.method));
    nva.push_back(nv(":scheme", session.tls() ? "https" : "http"));
    nva.push_back(nv(":authority", r.host));
    nva.push_back(nv(":path", r.target));
    std::string length;
    if (spool_)
        length = std::to_string(spool_->size());
    else if (req_.has_body && req_.content_length >= 0)
        length = std::to_string(req_.content_length);
    else if (!req_.has_body && req_.content_length == 0)
        length = "0";
    if (!length.empty())
        nva.push_back(nv("content-length", length));
    for (const Header& h : r.fields)
        nva.push_back(nv(h.name, h.value));
    const bool body = spool_ ? spool_->size() > 0 : req_.has_body;
    stream_ = session.submit(this, nva, body);
    if (stream_ < 0) {
        session_ = nullptr;
        return fail(502, "proxy: cannot open a stream to upstream " + describe());
    }
    arm_timer();
}

void H2Exchange::session_failed(const std::string& why) {
    session_ = nullptr;
    stream_ = -1;
    if (finished_)
        return;
    if (why.empty()) {
        // The session stopped taking streams (GOAWAY) before ours opened: another session.
        session_ = H2Sessions::instance().session_for(loop_, handler_.upstream(), server_);
        session_->add(this);
        return;
    }
    if (!retry_elsewhere(why))
        fail(502, "proxy: " + why);
}

void H2Exchange::on_field(std::string_view name, std::string_view value) {
    if (finished_)
        return;
    if (name == ":status") {
        status_ = 0;
        for (char c : value)
            status_ = c >= '0' && c <= '9' && status_ < 1000 ? status_ * 10 + (c - '0') : 1000;
        return;
    }
    if (name.empty() || name.front() == ':')
        return;
    Headers& into = head_done_ ? trailers_ : fields_;
    into.add(req_.arena->copy(name), req_.arena->copy(value));
}

void H2Exchange::on_headers_end(bool end_stream) {
    if (finished_)
        return;
    got_response_ = true;
    if (head_done_) { // trailers
        if (end_stream)
            on_stream_end();
        return;
    }
    if (status_ < 100 || status_ > 599 || status_ == 101) {
        return fail(502, "proxy: upstream " + describe() +
                             " sent an HTTP/2 response with status " + std::to_string(status_));
    }
    if (status_ < 200) { // 1xx: the final response follows
        fields_.clear();
        status_ = 0;
        return;
    }
    const UpstreamConfig& up = handler_.upstream();
    if (std::find(up.fail_statuses.begin(), up.fail_statuses.end(), status_) !=
        up.fail_statuses.end()) {
        // A failure by configuration: another server if the request can go again, else the
        // answer is passed on.
        const int32_t stream = stream_;
        H2Session* session = session_;
        if (retry_elsewhere("upstream " + describe() + " answered " + std::to_string(status_),
                            true)) {
            if (session && stream >= 0)
                session->cancel(stream);
            return;
        }
    }
    head_done_ = true;
    Health::table().success(Health::key(handler_.upstream().name, describe()));
    auto* head = req_.arena->make<ResponseHead>();
    head->status = status_;
    build_client_head(handler_, req_, server_, request_id_, fields_, *head);
    std::string_view length = fields_.get("content-length");
    if (!length.empty() && length.size() <= 18 &&
        std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; }))
        head->content_length = std::stoll(std::string(length));
    out_.send_headers(*head, end_stream);
    if (end_stream)
        return finish_ok();
    arm_timer();
}

void H2Exchange::on_data(const uint8_t* data, size_t len) {
    if (finished_ || !head_done_) {
        if (session_ && stream_ >= 0)
            session_->consume(stream_, len);
        return;
    }
    auto r = out_.send_body({reinterpret_cast<const char*>(data), len}, false);
    if (r == ResponseWriter::Result::closed)
        return client_aborted();
    if (r == ResponseWriter::Result::blocked) {
        // The client is full: this window's credit waits until it drains (backpressure).
        owed_ += len;
        if (!client_blocked_) {
            client_blocked_ = true;
            out_.on_writable([this] {
                client_blocked_ = false;
                if (session_ && stream_ >= 0 && owed_)
                    session_->consume(stream_, owed_);
                owed_ = 0;
                arm_timer();
            });
        }
    } else {
        session_->consume(stream_, len);
    }
    arm_timer();
}

void H2Exchange::on_stream_end() {
    if (finished_)
        return;
    if (!head_done_)
        return fail(502, "proxy: upstream " + describe() + " ended the stream without a response");
    Headers* pass = nullptr;
    for (const Header& h : trailers_) {
        if (!trailer_allowed(h.name))
            continue;
        if (!pass)
            pass = req_.arena->make<Headers>();
        pass->add(h.name, h.value);
    }
    if (pass)
        out_.send_trailers(*pass);
    else
        out_.send_body({}, true);
    finish_ok();
}

void H2Exchange::finish_ok() {
    finished_ = true;
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
}

void H2Exchange::on_stream_closed(uint32_t error_code, const std::string& session_error) {
    session_ = nullptr;
    stream_ = -1;
    if (finished_)
        return;
    std::string why = !session_error.empty()
                          ? session_error
                          : "upstream " + describe() + " reset the stream (" +
                                nghttp2_http2_strerror(error_code) + ")";
    if (!head_done_) {
        // REFUSED_STREAM (a GOAWAY, or over the server's limit): not processed, safe anywhere.
        if (error_code == NGHTTP2_REFUSED_STREAM && !got_response_ &&
            (body_consumed_ == 0 || spool_) && refusals_ < 3) {
            ++refusals_;
            spool_sent_ = 0;
            session_ = H2Sessions::instance().session_for(loop_, handler_.upstream(), server_);
            session_->add(this);
            return;
        }
        if (!retry_elsewhere(why))
            fail(502, "proxy: " + why);
        return;
    }
    fail(502, "proxy: " + why);
}

long H2Exchange::read_body(uint8_t* buf, size_t len, uint32_t* flags) {
    if (spool_) {
        std::string chunk;
        std::string error;
        if (!spool_->read(spool_sent_, len, chunk, error))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        std::memcpy(buf, chunk.data(), chunk.size());
        spool_sent_ += chunk.size();
        if (spool_sent_ >= spool_->size())
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<long>(chunk.size());
    }
    if (finished_ || body_.failed())
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::string_view data = body_.peek();
    size_t n = std::min(len, data.size());
    if (n) {
        std::memcpy(buf, data.data(), n);
        body_.consume(n);
        body_consumed_ += n;
    }
    if (body_.finished() && body_.peek().empty()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        body_done_ = true;
        body_.on_data(nullptr);
        return static_cast<long>(n);
    }
    return n ? static_cast<long>(n) : static_cast<long>(NGHTTP2_ERR_DEFERRED);
}

bool H2Exchange::retry_elsewhere(const std::string& why, bool answered) {
    const UpstreamConfig& up = handler_.upstream();
    UpstreamPool& pool = UpstreamPool::instance();
    pool.note_failure(up, server_, why);
    if (finished_ || out_.headers_sent() || (got_response_ && !answered) ||
        (body_consumed_ > 0 && !spool_))
        return false;
    int next = pool.retry_server(up, req_, server_, tried_, &tries_, why);
    if (next < 0)
        return false;
    spool_sent_ = 0;
    fields_.clear();
    status_ = 0;
    got_response_ = false;
    session_ = nullptr; // the old stream, if any, is the caller's to cancel
    stream_ = -1;
    pick_and_go(next);
    return true;
}

void H2Exchange::fail(int status, const std::string& reason) {
    if (finished_)
        return;
    finished_ = true;
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
    if (req_.has_body && !spool_) {
        body_.on_data(nullptr);
        if (!out_.headers_sent() && !body_done_)
            body_.discard();
    }
    fail_response(req_, out_, status, reason);
}

void H2Exchange::client_aborted() {
    finished_ = true;
    ev_timer_stop(loop_, &timer_);
    ev_timer_stop(loop_, &total_timer_);
    detach();
}

void H2Exchange::detach() {
    if (!session_)
        return;
    if (stream_ >= 0)
        session_->cancel(stream_);
    else
        session_->remove(this);
    session_ = nullptr;
    stream_ = -1;
}

void H2Exchange::arm_timer() {
    ev_timer_stop(loop_, &timer_);
    if (finished_ || stream_ < 0 || client_blocked_)
        return;
    const UpstreamConfig& up = handler_.upstream();
    Duration d = !head_done_ && up.first_byte_timeout.count() > 0 ? up.first_byte_timeout
                                                                  : up.read_timeout;
    ev_timer_set(&timer_, static_cast<double>(d.count()) / 1000.0, 0.);
    ev_timer_start(loop_, &timer_);
}

void H2Exchange::on_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<H2Exchange*>(w->data);
    if (self->finished_)
        return;
    std::string why = "upstream " + self->describe() + " timed out " +
                      (self->head_done_ ? "in the middle of the body" : "before responding");
    if (self->session_ && self->stream_ >= 0)
        self->session_->cancel(self->stream_);
    self->session_ = nullptr;
    self->stream_ = -1;
    if (!self->head_done_ && self->retry_elsewhere(why))
        return;
    self->fail(504, "proxy: " + why);
}

void H2Exchange::on_total_timer(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<H2Exchange*>(w->data);
    if (self->finished_)
        return;
    const UpstreamConfig& up = self->handler_.upstream();
    self->fail(504, "proxy: upstream \"" + up.name + "\" (" + self->describe() +
                        ") did not finish within total_timeout (" +
                        std::to_string(up.total_timeout.count()) + " ms)");
}

} // namespace wraith::proxy
