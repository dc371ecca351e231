// TLS server contexts of one config generation (OpenSSL 3): one SSL_CTX per site with
// certificates, chosen per handshake from the ClientHello's SNI; ALPN from the listener's
// protocols; hardened defaults; session tickets whose keys live in shared memory so any worker
// (of any generation) resumes a session another one started. Built and validated by the master
// (and `wraith check`) before workers fork.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "modules/router/router.h"
#include "worker/tls/ocsp.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct x509_st X509;

namespace wraith {

// Session ticket keys shared by the master and all workers (MAP_SHARED). The master writes a
// new current key on rotation; the previous one still decrypts, so tickets stay valid for two
// rotation periods.
struct TicketKeys {
    struct Key {
        unsigned char name[16];
        unsigned char aes[32];
        unsigned char hmac[32];
    };
    std::atomic<uint32_t> generation{0}; // odd while the master writes (seqlock)
    Key current;
    Key previous;
    bool has_previous = false;

    // Master side: a fresh random current key; the old current becomes previous.
    void rotate();
    // Worker side: a consistent copy.
    void snapshot(Key& current_out, Key& previous_out, bool& has_previous_out) const;
};

// Maps each listener to what its handshakes need.
struct TlsListener {
    const ListenConfig* listen = nullptr;
    std::vector<unsigned char> alpn; // wire format, server preference order
};

class TlsContexts {
public:
    ~TlsContexts();
    // Loads and checks every site certificate (parse, key match, expiry); problems go to
    // `diag` with the site's position. Returns nullptr when the config has no TLS listener.
    // `keys` may be null (wraith check): tickets then use OpenSSL's own per-context keys.
    // `ocsp` may be null too: then no responses are fetched (only files are stapled).
    static std::shared_ptr<const TlsContexts>
    build(const Config& config, Diagnostics& diag, TicketKeys* keys, OcspCache* ocsp, bool* failed);

    // What the master's OcspFetcher should fetch for this generation (references taken).
    std::vector<OcspJob> ocsp_jobs() const;

    // A server SSL for a connection accepted on `listener_index`; nullptr if out of memory.
    SSL* new_ssl(size_t listener_index) const;

private:
    explicit TlsContexts(const Config& config) : router_(config) {}
    SSL_CTX* make_ctx(const Site& site, Diagnostics& diag, bool* failed);
    void load_staple(SSL_CTX* ctx, const Site& site, Diagnostics& diag, bool* failed);
    static bool must_staple(X509* leaf);
    static int on_status_request(SSL* ssl, void* arg);
    static int on_client_hello(SSL* ssl, int* alert, void* arg);
    static int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                       const unsigned char* in, unsigned int inlen, void* arg);
    static int on_ticket_key(SSL* ssl, unsigned char* name, unsigned char* iv, void* cipher_ctx,
                             void* mac_ctx, int enc);

    Router router_;
    std::map<const Site*, SSL_CTX*> site_ctx_;
    SSL_CTX* default_ctx_ = nullptr;     // the default site's, or the first site with a certificate
    std::vector<TlsListener> listeners_; // parallel to config.listeners
    TicketKeys* keys_ = nullptr;
    // A verified OCSP response per site context, stapled when the client asks.
    struct Staple {
        std::vector<unsigned char> der; // from ocsp_staple (a file)
        time_t next_update = 0;         // 0: none given
        int slot = -1;                  // else: fetched responses arrive in this OcspCache slot
    };
    OcspCache* ocsp_ = nullptr;
    std::vector<OcspJob> jobs_;
    std::map<SSL_CTX*, Staple> staples_;
};

} // namespace wraith
