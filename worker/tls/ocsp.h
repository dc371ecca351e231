// OCSP stapling: checking responses, and the shared slots that carry responses the master
// fetched (master/ocsp_fetcher.h) to every worker. A handshake never waits for any of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <string>
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

// A certificate whose staple the master's fetcher (master/ocsp_fetcher.h) keeps fresh.
struct OcspJob {
    int slot = -1;        // its OcspCache slot
    std::string url;      // the responder (AIA), http://
    std::string name;     // for logs: the certificate file
    X509* leaf = nullptr; // referenced (X509_up_ref); released by whoever holds the job
    X509* issuer = nullptr;
};

} // namespace wraith
