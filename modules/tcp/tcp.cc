// The `tcp` stream protocol: a listener that relays each connection's bytes to an upstream
// address, both ways, with backpressure and half-close; over TLS when the listener has
// `tls = true` (TLS offload: the upstream speaks plain TCP). The smallest stream module, and
// the example the stream layer's documentation follows (docs/decisions.md).
//
//   [[listen]]
//   address = "[::]:5433"
//   protocols = ["tcp"]
//   tcp = { pass = "127.0.0.1:5432", connect_timeout = "5s", idle_timeout = "10m" }
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>

#include "common/config_values.h"
#include "common/connector.h"
#include "common/log.h"
#include "common/module.h"
#include "common/resolver.h"

namespace wraith {

namespace {

constexpr size_t kChunk = 64 * 1024; // upstream bytes read per turn

struct TcpOptions {
    std::string pass; // as written, for messages
    std::string host; // a name to resolve, or empty for an IP literal
    uint16_t port = 0;
    sockaddr_storage addr{}; // the IP literal's address
    Duration connect_timeout{5000};
    Duration idle_timeout{600000}; // no byte either way this long: the relay closes
};

// The module's per-worker state: the resolver for upstream names.
class TcpWorker final : public ModuleWorker {
public:
    explicit TcpWorker(struct ev_loop* loop) : resolver(loop, "", 2000) {}
    Resolver resolver;
};

// One relayed connection, in the connection's arena.
class Relay {
public:
    Relay(const TcpOptions& opt, StreamSession& s, TcpWorker* worker)
        : opt_(opt), conn_(s.conn), in_(s.in), out_(s.out), loop_(s.loop), worker_(worker),
          connector_(s.loop), alive_(std::make_shared<Relay*>(this)) {
        ev_init(&io_, on_io);
        io_.data = this;
        ev_init(&idle_, on_idle);
        idle_.data = this;
        out_.on_abort([this] { close_upstream(); });
        in_.pause(); // nothing is read from the client before the upstream is there
    }

    ~Relay() {
        close_upstream();
        ev_timer_stop(loop_, &idle_);
    }

    void start() {
        touch();
        if (opt_.host.empty())
            return connect({opt_.addr});
        if (!worker_)
            return fail("no resolver in this process");
        std::weak_ptr<Relay*> weak = alive_;
        worker_->resolver.resolve(opt_.host, opt_.port, [weak](const Resolver::Result& r) {
            if (auto alive = weak.lock()) {
                Relay* self = *alive;
                if (!r.ok)
                    return self->fail("cannot resolve " + self->opt_.host + ": " + r.error);
                self->connect(r.addrs);
            }
        });
    }

private:
    void connect(std::vector<sockaddr_storage> addrs) {
        connector_.start(std::move(addrs), opt_.connect_timeout.count() / 1000.0,
                         [this](int fd, const std::string& error) {
                             if (fd < 0)
                                 return fail(error);
                             up_ = fd;
                             int one = 1;
                             setsockopt(up_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                             in_.on_data([this] { client_bytes(); });
                             out_.on_writable([this] {
                                 client_blocked_ = false; // the client took our bytes
                                 watch();
                             });
                             in_.resume();
                             watch();
                         });
    }

    void fail(const std::string& why) {
        ErrorLog::limited(LogLevel::warn, "tcp: client %.*s to %s: %s", (int)conn_.peer_text.size(),
                          conn_.peer_text.data(), opt_.pass.c_str(), why.c_str());
        close_upstream();
        out_.reset();
    }

    void touch() {
        idle_.repeat = static_cast<double>(opt_.idle_timeout.count()) / 1000.0;
        ev_timer_again(loop_, &idle_); // (re)starts the idle clock
    }

    static void on_idle(struct ev_loop*, ev_timer* w, int) {
        auto* self = static_cast<Relay*>(w->data);
        self->fail("idle for " + std::to_string(self->opt_.idle_timeout.count() / 1000) + " s");
    }

    // Upstream interest: read while the client takes our bytes and the upstream has not ended;
    // write while client bytes wait.
    void watch() {
        if (up_ < 0)
            return;
        int events = 0;
        if (!up_eof_ && !client_blocked_)
            events |= EV_READ;
        if (!pending_.empty())
            events |= EV_WRITE;
        if (events != events_) {
            ev_io_stop(loop_, &io_);
            events_ = events;
            if (events) {
                ev_io_set(&io_, up_, events);
                ev_io_start(loop_, &io_);
            }
        }
    }

    static void on_io(struct ev_loop*, ev_io* w, int revents) {
        auto* self = static_cast<Relay*>(w->data);
        if (revents & EV_WRITE)
            self->write_upstream();
        if ((revents & EV_READ) && self->up_ >= 0)
            self->read_upstream();
    }

    // Client to upstream: what the client sent goes up; its FIN becomes ours upstream.
    void client_bytes() {
        if (up_ < 0)
            return;
        if (in_.failed())
            return fail("the client's side broke");
        std::string_view data = in_.peek();
        if (!data.empty() && pending_.empty()) {
            touch();
            ssize_t n = ::send(up_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return fail(std::string("upstream write: ") + std::strerror(errno));
            size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
            if (sent < data.size())
                pending_.assign(data.substr(sent)); // the rest waits for EV_WRITE
            in_.consume(data.size());
            if (!pending_.empty())
                in_.pause(); // backpressure: no more from the client until this is out
        }
        if (in_.finished() && pending_.empty() && !up_shut_) {
            up_shut_ = true;
            ::shutdown(up_, SHUT_WR);
        }
        watch();
    }

    void write_upstream() {
        while (!pending_.empty()) {
            ssize_t n = ::send(up_, pending_.data(), pending_.size(), MSG_NOSIGNAL);
            if (n > 0) {
                pending_.erase(0, static_cast<size_t>(n));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (n < 0 && errno == EINTR)
                continue;
            return fail(std::string("upstream write: ") + std::strerror(errno));
        }
        touch();
        in_.resume();
        watch();
    }

    // Upstream to client: the upstream's bytes go to the client; its FIN becomes ours.
    void read_upstream() {
        char buf[kChunk];
        ssize_t n = ::recv(up_, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            return fail(std::string("upstream read: ") + std::strerror(errno));
        }
        touch();
        ResponseWriter::Result r = out_.send_body({buf, static_cast<size_t>(n)}, n == 0);
        if (n == 0)
            up_eof_ = true;
        if (r == ResponseWriter::Result::closed)
            return close_upstream();
        client_blocked_ = r == ResponseWriter::Result::blocked;
        watch();
    }

    void close_upstream() {
        connector_.cancel();
        if (up_ >= 0) {
            ev_io_stop(loop_, &io_);
            ::close(up_);
            up_ = -1;
        }
        ev_timer_stop(loop_, &idle_);
        alive_.reset(); // a resolver answer still on its way finds nobody
    }

    const TcpOptions& opt_;
    const ConnectionInfo& conn_;
    BodyReader& in_;
    ResponseWriter& out_;
    struct ev_loop* loop_;
    TcpWorker* worker_;
    Connector connector_;
    std::shared_ptr<Relay*> alive_;
    int up_ = -1;
    ev_io io_{};
    ev_timer idle_{};
    int events_ = 0;
    std::string pending_;         // client bytes the upstream did not take yet
    bool client_blocked_ = false; // the client's writer said `blocked`: wait for on_writable
    bool up_eof_ = false;
    bool up_shut_ = false;
};

class TcpHandler final : public StreamHandler {
public:
    TcpHandler(TcpOptions options, size_t module_index)
        : opt_(std::move(options)), module_index_(module_index) {}
    void handle(StreamSession& s) const override {
        TcpWorker* worker = s.modules ? s.modules->get<TcpWorker>(module_index_) : nullptr;
        s.arena.make<Relay>(opt_, s, worker)->start();
    }

private:
    TcpOptions opt_;
    size_t module_index_;
};

std::shared_ptr<const StreamHandler> build_tcp(TableReader& r, BuildContext& ctx) {
    TcpOptions o;
    std::optional<std::string> pass = r.string("pass");
    if (!pass) {
        if (!r.has("pass"))
            r.diag().error(r.table_pos(), "listen.tcp.pass: required, the upstream's address, "
                                          "e.g. tcp = { pass = \"127.0.0.1:5432\" }");
        return nullptr;
    }
    o.pass = *pass;
    // "IP:PORT", "[v6]:PORT", or "name:PORT" (resolved by each worker).
    size_t colon = pass->rfind(':');
    std::string_view host = std::string_view(*pass).substr(0, colon);
    std::string_view port =
        colon == std::string::npos ? std::string_view{} : std::string_view(*pass).substr(colon + 1);
    unsigned value = 0;
    auto pr = std::from_chars(port.data(), port.data() + port.size(), value);
    if (host.empty() || port.empty() || pr.ec != std::errc{} ||
        pr.ptr != port.data() + port.size() || value == 0 || value > 65535) {
        r.error("pass", "expected HOST:PORT such as \"127.0.0.1:5432\", \"[::1]:5432\" or "
                        "\"db.internal:5432\", got " +
                            in_quotes(*pass));
        return nullptr;
    }
    o.port = static_cast<uint16_t>(value);
    ListenConfig literal;
    if (config_values::parse_listen_address(*pass, literal).empty() && host != "*") {
        o.addr = literal.addr;
    } else if (host.front() == '[' ||
               host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789.-") != std::string_view::npos) {
        r.error("pass", "expected HOST:PORT, got " + in_quotes(*pass));
        return nullptr;
    } else {
        o.host = std::string(host);
    }
    read_positive(r, "connect_timeout", o.connect_timeout);
    read_positive(r, "idle_timeout", o.idle_timeout);
    return std::make_shared<TcpHandler>(std::move(o), ctx.module_index);
}

} // namespace

// Relays a listener's connections to an upstream address (TCP, or TLS offloaded).
const ModuleSpec& tcp_module() {
    static const ModuleSpec spec{
        .key = "tcp",
        .build_stream = build_tcp,
        .worker_start = [](const WorkerContext& ctx) -> std::unique_ptr<ModuleWorker> {
            return std::make_unique<TcpWorker>(ctx.loop);
        }};
    return spec;
}

} // namespace wraith
