// OCSP stapling: checking responses, and the jobs of the master's fetcher
// (master/ocsp_fetcher.h), which publishes into the shared slots of common/ocsp_cache.h that
// every worker's handshakes read. A handshake never waits for any of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "common/ocsp_cache.h"

typedef struct x509_st X509;

namespace wraith {

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
