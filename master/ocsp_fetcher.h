// The master's OCSP staple fetcher: asks each certificate's responder (AIA) and refreshes the
// staple half-way to its nextUpdate, publishing into the shared OcspCache that every worker's
// handshakes read (worker/tls/ocsp.h). Scheduling, encoding, checking and the HTTP exchanges
// all run on the master's loop (common/http_fetch.h): no thread, nothing blocks.
#pragma once

#include <ev.h>

#include <ctime>
#include <memory>
#include <vector>

#include "worker/tls/ocsp.h"

namespace wraith {

class HttpFetch;
class Resolver;

class OcspFetcher {
public:
    OcspFetcher(struct ev_loop* loop, OcspCache* cache);
    ~OcspFetcher();
    OcspFetcher(const OcspFetcher&) = delete;
    OcspFetcher& operator=(const OcspFetcher&) = delete;

    // Replaces the jobs (every start and reload; the fetcher releases their certificate
    // references); due ones are fetched at once. Fetches of the old jobs are abandoned.
    void set_jobs(std::vector<OcspJob> jobs);

private:
    struct Entry {
        OcspJob job;
        time_t due = 0;
        int failures = 0;
        std::unique_ptr<HttpFetch> fetch; // in flight
    };

    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    void dispatch_due();
    void fetched(size_t index, bool ok, const std::string& der, std::string problem);
    void schedule();
    void release();

    struct ev_loop* loop_;
    OcspCache* cache_;
    std::unique_ptr<Resolver> resolver_;
    std::vector<Entry> entries_;
    ev_timer timer_;
};

} // namespace wraith
