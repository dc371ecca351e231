// OCSP stapling: checking responses, the shared slots that carry fetched responses from the
// master to every worker, and the master's background fetcher that asks each certificate's
// responder (AIA) and refreshes before nextUpdate. A handshake never waits for any of it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <ev.h>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

typedef struct x509_st X509;

namespace wraith {

// One fetched response, published by the master with a seqlock; workers copy it out.
struct OcspSlot {
    static constexpr size_t kMaxResponse = 8192;
    std::atomic<uint32_t> seq{0};       // odd while the master writes
    unsigned char fingerprint[32] = {}; // SHA-256 of the certificate this slot belongs to
    bool used = false;
    uint32_t len = 0; // 0: nothing fetched (yet)
    int64_t next_update = 0;
    unsigned char der[kMaxResponse];
};

// Lives in MAP_SHARED memory made by the master before the first fork, so responses fetched
// after a worker started still reach it, and survive reloads (slots are keyed by certificate).
struct OcspCache {
    static constexpr int kSlots = 64;
    OcspSlot slots[kSlots];

    // Master: the slot for this certificate (same one across reloads), or -1 if full.
    int slot_for(const unsigned char fingerprint[32]);
    void publish(int slot, const std::vector<unsigned char>& der, time_t next_update);
    // Worker: copies the current response; returns its length (0: none).
    size_t read(int slot, unsigned char* out, size_t cap, time_t* next_update) const;
};

// Checks a DER OCSP response for `leaf` issued by `issuer`: successful, signed by the issuer
// (or a responder it delegated to), status good, within thisUpdate..nextUpdate. Returns "" or
// the problem; sets *next_update (0 when the response gives none).
std::string check_ocsp_response(const std::vector<unsigned char>& der, X509* leaf, X509* issuer,
                                time_t* next_update);

// The http:// OCSP responder named in the certificate's Authority Information Access, or "".
std::string ocsp_responder_url(X509* leaf);

// Master side: fetches and refreshes staples. Scheduling, OCSP encoding and checking run on
// the master's loop; only the HTTP exchange (DNS, connect, read, with timeouts) runs on a
// helper thread, which touches no OpenSSL state, so forking workers stays safe.
class OcspFetcher {
public:
    struct Job {
        int slot = -1;
        std::string url;
        std::string name;     // for logs: the certificate file
        X509* leaf = nullptr; // referenced (X509_up_ref); released by the fetcher
        X509* issuer = nullptr;
    };

    OcspFetcher(struct ev_loop* loop, OcspCache* cache);
    ~OcspFetcher();
    // Replaces the jobs (every start and reload); due ones are fetched at once.
    void set_jobs(std::vector<Job> jobs);

private:
    struct Entry {
        Job job;
        time_t due = 0;
        int failures = 0;
        bool in_flight = false;
    };
    struct Request {
        uint64_t epoch; // set_jobs() generation it belongs to
        size_t index;
        std::string url;
        std::vector<unsigned char> body;
    };
    struct Result {
        uint64_t epoch;
        size_t index;
        bool ok;
        std::vector<unsigned char> der;
        std::string problem;
    };
    static void on_timer(struct ev_loop* loop, ev_timer* w, int revents);
    static void on_done(struct ev_loop* loop, ev_async* w, int revents);
    void schedule();
    void dispatch_due();
    void finish(Result& r);
    void thread_main();
    static void release(std::vector<Entry>& entries);

    struct ev_loop* loop_;
    OcspCache* cache_;
    std::vector<Entry> entries_;
    uint64_t epoch_ = 0;
    ev_timer timer_;
    ev_async done_;
    // Shared with the thread.
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<Request> requests_;
    std::vector<Result> results_;
    bool stop_ = false;
    std::thread thread_;
};

} // namespace wraith
