#include "worker/tls/ocsp.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "common/log.h"

namespace wraith {

// ---- shared slots --------------------------------------------------------------------------

int OcspCache::slot_for(const unsigned char fingerprint[32]) {
    int free_slot = -1;
    for (int i = 0; i < kSlots; ++i) {
        if (slots[i].used && std::memcmp(slots[i].fingerprint, fingerprint, 32) == 0)
            return i;
        if (!slots[i].used && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        OcspSlot& s = slots[free_slot];
        std::memcpy(s.fingerprint, fingerprint, 32);
        s.used = true;
        s.len = 0;
    }
    return free_slot;
}

void OcspCache::publish(int slot, const std::vector<unsigned char>& der, time_t next_update) {
    if (slot < 0 || der.size() > OcspSlot::kMaxResponse)
        return;
    OcspSlot& s = slots[slot];
    uint32_t g = s.seq.load(std::memory_order_relaxed);
    s.seq.store(g + 1, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(s.der, der.data(), der.size());
    s.len = static_cast<uint32_t>(der.size());
    s.next_update = next_update;
    std::atomic_thread_fence(std::memory_order_release);
    s.seq.store(g + 2, std::memory_order_release);
}

size_t OcspCache::read(int slot, unsigned char* out, size_t cap, time_t* next_update) const {
    if (slot < 0)
        return 0;
    const OcspSlot& s = slots[slot];
    for (int attempt = 0; attempt < 100; ++attempt) {
        uint32_t before = s.seq.load(std::memory_order_acquire);
        if (before & 1)
            continue;
        std::atomic_thread_fence(std::memory_order_acquire);
        size_t len = std::min<size_t>(s.len, cap);
        std::memcpy(out, s.der, len);
        *next_update = s.next_update;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s.seq.load(std::memory_order_acquire) == before)
            return len;
    }
    return 0; // the master keeps writing: staple nothing this time
}

// ---- checking ------------------------------------------------------------------------------

std::string check_ocsp_response(const std::vector<unsigned char>& der, X509* leaf, X509* issuer,
                                time_t* next_update) {
    *next_update = 0;
    const unsigned char* p = der.data();
    OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
    if (!resp)
        return "not a DER OCSP response";
    std::string problem;
    OCSP_BASICRESP* basic = nullptr;
    OCSP_CERTID* id = nullptr;
    X509_STORE* store = X509_STORE_new();
    STACK_OF(X509)* certs = sk_X509_new_null();
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        problem = "the response is not successful";
    } else if (!(basic = OCSP_response_get1_basic(resp))) {
        problem = "the response has no basic response";
    } else if (!leaf || !issuer) {
        problem = "the certificate chain must include the issuer of the certificate";
    } else {
        // The signer must be the issuer, or a responder certificate the issuer signed.
        X509_STORE_add_cert(store, issuer);
        sk_X509_push(certs, issuer);
        int status = -1, reason = 0;
        ASN1_GENERALIZEDTIME *produced = nullptr, *this_update = nullptr, *next = nullptr;
        id = OCSP_cert_to_id(nullptr, leaf, issuer);
        if (OCSP_basic_verify(basic, certs, store, OCSP_TRUSTOTHER) != 1)
            problem = "the response's signature does not verify against the issuer";
        else if (!id || OCSP_resp_find_status(basic, id, &status, &reason, &produced, &this_update,
                                              &next) != 1)
            problem = "the response is not about this certificate";
        else if (status != V_OCSP_CERTSTATUS_GOOD)
            problem = status == V_OCSP_CERTSTATUS_REVOKED
                          ? "the response says the certificate is revoked"
                          : "the response says the certificate's status is unknown";
        else if (OCSP_check_validity(this_update, next, 300, -1) != 1)
            problem = "the response has expired or is not valid yet";
        else if (next) {
            struct tm tm;
            if (ASN1_TIME_to_tm(next, &tm) == 1)
                *next_update = timegm(&tm);
        }
    }
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    sk_X509_free(certs);
    X509_STORE_free(store);
    ERR_clear_error();
    return problem;
}

std::string ocsp_responder_url(X509* leaf) {
    std::string url;
    STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(leaf);
    for (int i = 0; urls && i < sk_OPENSSL_STRING_num(urls); ++i) {
        std::string u = sk_OPENSSL_STRING_value(urls, i);
        if (u.rfind("http://", 0) == 0) {
            url = u;
            break;
        }
    }
    X509_email_free(urls);
    return url;
}

// ---- fetching ------------------------------------------------------------------------------

namespace {

constexpr int kTimeoutMs = 10000;

// Blocking HTTP/1.0 POST with timeouts; only the fetcher thread calls it.
bool http_post(const std::string& url, const std::vector<unsigned char>& body,
               std::vector<unsigned char>* response, std::string* problem) {
    std::string rest = url.substr(7); // after "http://"
    size_t slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
    std::string host = hostport, port = "80";
    if (!hostport.empty() && hostport[0] == '[') {
        size_t close = hostport.find(']');
        host = hostport.substr(1, close - 1);
        if (close + 1 < hostport.size() && hostport[close + 1] == ':')
            port = hostport.substr(close + 2);
    } else if (size_t colon = hostport.rfind(':'); colon != std::string::npos) {
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
    }
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
        *problem = "cannot resolve " + host + ": " + gai_strerror(rc);
        return false;
    }
    int fd = -1;
    for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            ::close(fd);
            fd = -1;
            continue;
        }
        pollfd pfd{fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof(err);
        if (poll(&pfd, 1, kTimeoutMs) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            ::close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        *problem = "cannot connect to " + hostport;
        return false;
    }
    std::string head = "POST " + path + " HTTP/1.0\r\nHost: " + hostport +
                       "\r\nContent-Type: application/ocsp-request\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nUser-Agent: wraith\r\n\r\n";
    std::string out = head + std::string(body.begin(), body.end());
    size_t sent = 0;
    while (sent < out.size()) {
        pollfd pfd{fd, POLLOUT, 0};
        if (poll(&pfd, 1, kTimeoutMs) != 1)
            break;
        ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += n;
    }
    std::string in;
    while (sent == out.size() && in.size() < (1 << 16)) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, kTimeoutMs) != 1)
            break;
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        in.append(buf, n);
    }
    ::close(fd);
    size_t end = in.find("\r\n\r\n");
    if (sent != out.size() || end == std::string::npos) {
        *problem = "no complete answer from " + hostport;
        return false;
    }
    if (in.compare(0, 9, "HTTP/1.0 ") != 0 && in.compare(0, 9, "HTTP/1.1 ") != 0) {
        *problem = "not an HTTP answer from " + hostport;
        return false;
    }
    if (in.compare(9, 3, "200") != 0) {
        *problem = hostport + " answered " + in.substr(9, 3);
        return false;
    }
    response->assign(in.begin() + end + 4, in.end());
    return true;
}

} // namespace

OcspFetcher::OcspFetcher(struct ev_loop* loop, OcspCache* cache) : loop_(loop), cache_(cache) {
    ev_init(&timer_, on_timer);
    timer_.data = this;
    ev_async_init(&done_, on_done);
    done_.data = this;
    ev_async_start(loop_, &done_);
    thread_ = std::thread([this] { thread_main(); });
}

OcspFetcher::~OcspFetcher() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    ev_timer_stop(loop_, &timer_);
    ev_async_stop(loop_, &done_);
    release(entries_);
}

void OcspFetcher::release(std::vector<Entry>& entries) {
    for (Entry& e : entries) {
        X509_free(e.job.leaf);
        X509_free(e.job.issuer);
    }
    entries.clear();
}

void OcspFetcher::set_jobs(std::vector<Job> jobs) {
    release(entries_);
    ++epoch_; // results of earlier jobs are dropped
    for (Job& j : jobs) {
        Entry e;
        e.job = j;
        entries_.push_back(e);
    }
    dispatch_due();
}

void OcspFetcher::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<OcspFetcher*>(w->data)->dispatch_due();
}

void OcspFetcher::dispatch_due() {
    time_t now = time(nullptr);
    std::vector<Request> batch;
    for (size_t i = 0; i < entries_.size(); ++i) {
        Entry& e = entries_[i];
        if (e.in_flight || e.due > now)
            continue;
        OCSP_REQUEST* req = OCSP_REQUEST_new();
        OCSP_CERTID* id = OCSP_cert_to_id(nullptr, e.job.leaf, e.job.issuer);
        Request r{epoch_, i, e.job.url, {}};
        if (req && id && OCSP_request_add0_id(req, id)) {
            id = nullptr; // owned by req
            int len = i2d_OCSP_REQUEST(req, nullptr);
            if (len > 0) {
                r.body.resize(len);
                unsigned char* p = r.body.data();
                i2d_OCSP_REQUEST(req, &p);
            }
        }
        OCSP_CERTID_free(id);
        OCSP_REQUEST_free(req);
        ERR_clear_error();
        if (r.body.empty()) {
            e.due = now + 3600;
            continue;
        }
        e.in_flight = true;
        batch.push_back(std::move(r));
    }
    if (!batch.empty()) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (Request& r : batch)
            requests_.push_back(std::move(r));
        wake_.notify_all();
    }
    schedule();
}

void OcspFetcher::schedule() {
    time_t next = 0;
    for (const Entry& e : entries_)
        if (!e.in_flight && (next == 0 || e.due < next))
            next = e.due;
    ev_timer_stop(loop_, &timer_);
    if (next) {
        double wait = std::max<double>(1.0, static_cast<double>(next - time(nullptr)));
        ev_timer_set(&timer_, wait, 0.);
        ev_timer_start(loop_, &timer_);
    }
}

void OcspFetcher::on_done(struct ev_loop*, ev_async* w, int) {
    auto* self = static_cast<OcspFetcher*>(w->data);
    std::vector<Result> results;
    {
        std::lock_guard<std::mutex> lock(self->mutex_);
        results.swap(self->results_);
    }
    for (Result& r : results)
        self->finish(r);
    self->schedule();
}

void OcspFetcher::finish(Result& r) {
    if (r.epoch != epoch_ || r.index >= entries_.size())
        return; // the jobs changed while this was in flight
    Entry& e = entries_[r.index];
    e.in_flight = false;
    time_t next_update = 0;
    if (r.ok) {
        r.problem = check_ocsp_response(r.der, e.job.leaf, e.job.issuer, &next_update);
        if (r.problem.empty() && r.der.size() > OcspSlot::kMaxResponse)
            r.problem = "the response is larger than " + std::to_string(OcspSlot::kMaxResponse);
        r.ok = r.problem.empty();
    }
    time_t now = time(nullptr);
    if (r.ok) {
        cache_->publish(e.job.slot, r.der, next_update);
        e.failures = 0;
        // Refresh half-way to nextUpdate (at least a minute, at most 12 hours away).
        e.due =
            now + (next_update ? std::clamp<time_t>((next_update - now) / 2, 60, 12 * 3600) : 3600);
        WLOG_INFO("OCSP staple for %s fetched from %s", e.job.name.c_str(), e.job.url.c_str());
    } else {
        e.failures = std::min(e.failures + 1, 6);
        e.due = now + (30 << e.failures); // 1 minute, doubling to 32
        WLOG_WARN("OCSP staple for %s from %s: %s; retrying in %d s", e.job.name.c_str(),
                  e.job.url.c_str(), r.problem.c_str(), 30 << e.failures);
    }
}

void OcspFetcher::thread_main() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stop_ || !requests_.empty(); });
        if (stop_)
            return;
        Request req = std::move(requests_.front());
        requests_.erase(requests_.begin());
        lock.unlock();
        Result res{req.epoch, req.index, false, {}, {}};
        res.ok = http_post(req.url, req.body, &res.der, &res.problem);
        lock.lock();
        results_.push_back(std::move(res));
        ev_async_send(loop_, &done_);
    }
}

} // namespace wraith
