#include "master/ocsp_fetcher.h"

#include <algorithm>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/resolver.h"
#include "common/http_fetch.h"

namespace wraith {

namespace {

constexpr int kResolverTimeoutMs = 5000;

// The DER OCSP request for `leaf` (RFC 6960 §4.1), or "" when OpenSSL cannot make one.
std::string ocsp_request(X509* leaf, X509* issuer) {
    std::string out;
    OCSP_REQUEST* req = OCSP_REQUEST_new();
    OCSP_CERTID* id = OCSP_cert_to_id(nullptr, leaf, issuer);
    if (req && id && OCSP_request_add0_id(req, id)) {
        id = nullptr; // owned by req
        int len = i2d_OCSP_REQUEST(req, nullptr);
        if (len > 0) {
            out.resize(static_cast<size_t>(len));
            auto* p = reinterpret_cast<unsigned char*>(out.data());
            i2d_OCSP_REQUEST(req, &p);
        }
    }
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    ERR_clear_error();
    return out;
}

} // namespace

OcspFetcher::OcspFetcher(struct ev_loop* loop, OcspCache* cache)
    : loop_(loop), cache_(cache),
      resolver_(std::make_unique<Resolver>(loop, std::string(), kResolverTimeoutMs)) {
    ev_init(&timer_, on_timer);
    timer_.data = this;
}

OcspFetcher::~OcspFetcher() {
    ev_timer_stop(loop_, &timer_);
    release();
}

void OcspFetcher::release() {
    for (Entry& e : entries_) {
        e.fetch.reset();
        X509_free(e.job.leaf);
        X509_free(e.job.issuer);
    }
    entries_.clear();
}

void OcspFetcher::set_jobs(std::vector<OcspJob> jobs) {
    release();
    entries_.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i)
        entries_[i].job = std::move(jobs[i]);
    dispatch_due();
}

void OcspFetcher::on_timer(struct ev_loop*, ev_timer* w, int) {
    static_cast<OcspFetcher*>(w->data)->dispatch_due();
}

void OcspFetcher::dispatch_due() {
    time_t now = time(nullptr);
    for (size_t i = 0; i < entries_.size(); ++i) {
        Entry& e = entries_[i];
        if (e.fetch || e.due > now)
            continue;
        HttpFetch::Options options;
        options.body = ocsp_request(e.job.leaf, e.job.issuer);
        options.content_type = "application/ocsp-request";
        if (options.body.empty()) {
            e.due = now + 3600;
            continue;
        }
        e.fetch = std::make_unique<HttpFetch>(
            loop_, *resolver_, e.job.url, std::move(options), [this, i](HttpFetch::Result r) {
                fetched(i, r.ok, r.body, std::move(r.problem));
            });
    }
    schedule();
}

void OcspFetcher::fetched(size_t index, bool ok, const std::string& der, std::string problem) {
    Entry& e = entries_[index];
    // The fetch is over: keep its object alive until this call returns (it called us).
    std::unique_ptr<HttpFetch> done = std::move(e.fetch);
    time_t next_update = 0;
    std::vector<unsigned char> bytes(der.begin(), der.end());
    if (ok) {
        problem = check_ocsp_response(bytes, e.job.leaf, e.job.issuer, &next_update);
        if (problem.empty() && bytes.size() > OcspSlot::kMaxResponse)
            problem = "the response is larger than " + std::to_string(OcspSlot::kMaxResponse);
        ok = problem.empty();
    }
    time_t now = time(nullptr);
    if (ok) {
        cache_->publish(e.job.slot, bytes, next_update);
        e.failures = 0;
        // Refresh half-way to nextUpdate (at least a minute, at most 12 hours away).
        e.due =
            now + (next_update ? std::clamp<time_t>((next_update - now) / 2, 60, 12 * 3600) : 3600);
        WLOG_INFO("OCSP staple for %s fetched from %s", e.job.name.c_str(), e.job.url.c_str());
    } else {
        e.failures = std::min(e.failures + 1, 6);
        e.due = now + (30 << e.failures); // 1 minute, doubling to 32
        WLOG_WARN("OCSP staple for %s from %s: %s; retrying in %d s", e.job.name.c_str(),
                  e.job.url.c_str(), problem.c_str(), 30 << e.failures);
    }
    schedule();
    // `done` (the finished HttpFetch) is destroyed on return: HttpFetch touches nothing of
    // itself after calling back.
}

void OcspFetcher::schedule() {
    time_t next = 0;
    for (const Entry& e : entries_)
        if (!e.fetch && (next == 0 || e.due < next))
            next = e.due;
    ev_timer_stop(loop_, &timer_);
    if (next) {
        double wait = std::max<double>(1.0, static_cast<double>(next - time(nullptr)));
        ev_timer_set(&timer_, wait, 0.);
        ev_timer_start(loop_, &timer_);
    }
}

} // namespace wraith
