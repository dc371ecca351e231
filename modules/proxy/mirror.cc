#include "modules/proxy/mirror.h"

#include <random>

#include "common/log.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/proxy_worker.h"

namespace wraith::proxy {

MirrorExchange::MirrorExchange(ProxyWorker& worker, const Request& parent,
                               const ProxyHandler& shadow)
    : worker_(worker), shadow_(shadow), out_(arena_, 0, [this] {
          ev_timer_set(&done_timer_, 0., 0.);
          ev_timer_start(worker_.loop(), &done_timer_);
      }) {
    init_subrequest(req_, parent, arena_, parent.method, parent.path, parent.query);
    // The client's connection may close before the mirror ends: a copy of what it said.
    if (parent.conn) {
        const ConnectionInfo& c = *parent.conn;
        conn_.peer = c.peer;
        conn_.local = c.local;
        conn_.id = c.id;
        if (c.tls) {
            tls_ = *c.tls;
            tls_.sni = arena_.copy(c.tls->sni);
            tls_.alpn = arena_.copy(c.tls->alpn);
            tls_.client_subject = arena_.copy(c.tls->client_subject);
            tls_.client_issuer = arena_.copy(c.tls->client_issuer);
            tls_.client_sans = arena_.copy(c.tls->client_sans);
            tls_.client_fingerprint = arena_.copy(c.tls->client_fingerprint);
            conn_.tls = &tls_; // version and cipher are static strings
        }
        conn_.peer_text = arena_.copy(c.peer_text);
        conn_.peer_ip = arena_.copy(c.peer_ip);
        req_.conn = &conn_;
    } else {
        req_.conn = nullptr;
    }
    req_.loop = worker.loop();
    ev_init(&done_timer_, on_done);
    done_timer_.data = this;
}

MirrorExchange::~MirrorExchange() {
    ev_timer_stop(worker_.loop(), &done_timer_);
    out_.abort();   // an exchange still under way stops (worker exit)
    arena_.reset(); // the proxy exchange inside goes first, while req_ and out_ still live
}

void MirrorExchange::start() {
    shadow_.handle(req_, body_, out_);
}

void MirrorExchange::on_done(struct ev_loop*, ev_timer* w, int) {
    auto* self = static_cast<MirrorExchange*>(w->data);
    if (self->out_.failed || self->out_.status >= 500)
        WLOG_DEBUG("mirror: %.*s %.*s to %s: %s %d", static_cast<int>(self->req_.method.size()),
                   self->req_.method.data(), static_cast<int>(self->req_.target.size()),
                   self->req_.target.data(), self->shadow_.upstream().name.c_str(),
                   self->out_.failed ? "failed" : "answered", self->out_.status);
    self->worker_.mirrors().remove(self); // deletes self
}

MirrorSet::~MirrorSet() {
    // Each destructor may not touch the set: take them out first.
    auto live = std::move(live_);
    live.clear();
}

MirrorExchange* MirrorSet::add(std::unique_ptr<MirrorExchange> m) {
    MirrorExchange* p = m.get();
    live_.emplace(p, std::move(m));
    return p;
}

void MirrorSet::remove(MirrorExchange* m) {
    auto it = live_.find(m);
    if (it == live_.end())
        return;
    std::unique_ptr<MirrorExchange> gone = std::move(it->second);
    live_.erase(it);
}

Mirror::Mirror(std::unique_ptr<ProxyHandler> shadow, uint32_t percent)
    : shadow_(std::move(shadow)), percent_(percent) {}

Mirror::~Mirror() = default;

void Mirror::send(const Request& req, ProxyWorker& worker) const {
    if (req.has_body || !req.upgrade.empty() || !req.loop)
        return;
    if (percent_ < 100) {
        thread_local std::minstd_rand rng{std::random_device{}()};
        if (rng() % 100 >= percent_)
            return;
    }
    if (worker.mirrors().full()) {
        ErrorLog::limited(LogLevel::warn, "mirror: %zu copies in flight to %s; skipping one",
                          worker.mirrors().size(), shadow_->upstream().name.c_str());
        return;
    }
    MirrorExchange* m =
        worker.mirrors().add(std::make_unique<MirrorExchange>(worker, req, *shadow_));
    m->start();
}

} // namespace wraith::proxy
