#include "worker/tls/context.h"

#include "worker/protocols.h"

#include <cstring>
#include <ctime>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace wraith {

namespace {

// TLS 1.2 suites: forward secret AEAD only (TLS 1.3 suites are all AEAD).
constexpr const char* kTls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";

int listener_index_slot() {
    static int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return slot;
}
int contexts_slot() {
    static int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return slot;
}

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e)
        return "unknown error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    // "error:0A00018F:SSL routines::ee key too small" -> the reason after the last colon
    std::string s(buf);
    size_t colon = s.rfind(':');
    return colon == std::string::npos ? s : s.substr(colon + 1);
}

// The host_name of a ClientHello's server_name extension (RFC 6066 §3), or empty.
std::string_view sni_from_hello(SSL* ssl) {
    const unsigned char* p;
    size_t len;
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 5)
        return {};
    size_t list = (size_t(p[0]) << 8) | p[1];
    if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
        return {};
    size_t name = (size_t(p[3]) << 8) | p[4];
    if (name + 5 > len || name == 0 || name > 255)
        return {};
    return {reinterpret_cast<const char*>(p + 5), name};
}

} // namespace

// ---- ticket keys ---------------------------------------------------------------------------

void TicketKeys::rotate() {
    Key fresh;
    RAND_bytes(fresh.name, sizeof(fresh.name));
    RAND_bytes(fresh.aes, sizeof(fresh.aes));
    RAND_bytes(fresh.hmac, sizeof(fresh.hmac));
    uint32_t g = generation.load(std::memory_order_relaxed);
    generation.store(g + 1, std::memory_order_release); // odd: writing
    std::atomic_thread_fence(std::memory_order_release);
    if (g > 0) {
        previous = current;
        has_previous = true;
    }
    current = fresh;
    std::atomic_thread_fence(std::memory_order_release);
    generation.store(g + 2, std::memory_order_release);
}

void TicketKeys::snapshot(Key& cur, Key& prev, bool& has_prev) const {
    for (;;) {
        uint32_t before = generation.load(std::memory_order_acquire);
        if (before & 1)
            continue;
        std::atomic_thread_fence(std::memory_order_acquire);
        cur = current;
        prev = previous;
        has_prev = has_previous;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (generation.load(std::memory_order_acquire) == before)
            return;
    }
}

// ---- contexts --------------------------------------------------------------------------------

TlsContexts::~TlsContexts() {
    for (auto& [site, ctx] : site_ctx_)
        SSL_CTX_free(ctx);
    for (auto& j : jobs_) {
        X509_free(j.leaf);
        X509_free(j.issuer);
    }
}

std::vector<OcspJob> TlsContexts::ocsp_jobs() const {
    std::vector<OcspJob> out = jobs_;
    for (auto& j : out) {
        X509_up_ref(j.leaf);
        X509_up_ref(j.issuer);
    }
    return out;
}

namespace {

// The certificate in `ctx`'s chain that issued its leaf, or null.
X509* issuer_of(SSL_CTX* ctx, X509* leaf) {
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    for (int i = 0; chain && i < sk_X509_num(chain); ++i)
        if (X509_check_issued(sk_X509_value(chain, i), leaf) == X509_V_OK)
            return sk_X509_value(chain, i);
    return nullptr;
}

} // namespace

SSL_CTX* TlsContexts::make_ctx(const Site& site, Diagnostics& diag, bool* failed) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        diag.error(site.tls->pos, "site.tls: cannot create a TLS context: " + openssl_error());
        *failed = true;
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx, site.tls->min_version);
    // OpenSSL 3 refuses client-initiated renegotiation unless ALLOW_CLIENT_RENEGOTIATION.
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
    // AES-128 first: as strong in practice, and cheaper than AES-256/SHA-384 per handshake.
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                                  "TLS_AES_256_GCM_SHA384");
    SSL_CTX_set1_groups_list(ctx, kGroups);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_max_early_data(ctx, 0);                      // 0-RTT stays off on TCP
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); // tickets only: stateless
    static const unsigned char sid_ctx[] = "wraith";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_ex_data(ctx, contexts_slot(), this);
    SSL_CTX_set_client_hello_cb(ctx, on_client_hello, this);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, this);
    if (keys_)
        SSL_CTX_set_tlsext_ticket_key_evp_cb(
            ctx, reinterpret_cast<int (*)(SSL*, unsigned char*, unsigned char*, EVP_CIPHER_CTX*,
                                          EVP_MAC_CTX*, int)>(on_ticket_key));

    for (const TlsCertificate& c : site.tls->certificates) {
        auto bad = [&](const std::string& what) {
            diag.error(c.pos, "site.tls: " + what);
            *failed = true;
        };
        if (SSL_CTX_use_certificate_chain_file(ctx, c.cert.c_str()) != 1) {
            bad("cannot load certificate chain " + c.cert + ": " + openssl_error());
            continue;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, c.key.c_str(), SSL_FILETYPE_PEM) != 1) {
            bad("cannot load private key " + c.key + ": " + openssl_error());
            continue;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            bad("private key " + c.key + " does not match certificate " + c.cert);
            ERR_clear_error();
            continue;
        }
        X509* leaf = SSL_CTX_get0_certificate(ctx);
        if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
            bad("certificate " + c.cert + " has expired");
        else if (leaf && X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
            bad("certificate " + c.cert + " is not valid yet");
        else if (leaf && must_staple(leaf) && site.tls->ocsp_staple.empty() &&
                 (!site.tls->ocsp_fetch || ocsp_responder_url(leaf).empty()))
            bad("certificate " + c.cert +
                " requires OCSP stapling (must-staple) and names no "
                "OCSP responder to fetch from: set ocsp_staple to a current response");
    }
    const SiteTls& tls = *site.tls;
    if (tls.client_auth != SiteTls::ClientAuth::off && !tls.client_ca.empty()) {
        auto bad = [&](const std::string& what) {
            diag.error(tls.client_ca_pos, "site.tls: " + what);
            *failed = true;
        };
        if (SSL_CTX_load_verify_locations(ctx, tls.client_ca.c_str(), nullptr) != 1) {
            bad("cannot load client_ca " + tls.client_ca + ": " + openssl_error());
        } else {
            SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(tls.client_ca.c_str()));
            int mode = SSL_VERIFY_PEER;
            if (tls.client_auth == SiteTls::ClientAuth::require)
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            SSL_CTX_set_verify(ctx, mode, nullptr);
            SSL_CTX_set_verify_depth(ctx, 8);
        }
        if (!tls.crl.empty()) {
            X509_STORE* store = SSL_CTX_get_cert_store(ctx);
            X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
            if (!lookup || X509_load_crl_file(lookup, tls.crl.c_str(), X509_FILETYPE_PEM) <= 0)
                bad("cannot load crl " + tls.crl + ": " + openssl_error());
            else
                X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
        }
    }
    if (!tls.ocsp_staple.empty()) {
        load_staple(ctx, site, diag, failed);
    } else if (tls.ocsp_fetch && ocsp_) {
        X509* leaf = SSL_CTX_get0_certificate(ctx);
        X509* issuer = leaf ? issuer_of(ctx, leaf) : nullptr;
        std::string url = leaf ? ocsp_responder_url(leaf) : "";
        unsigned char fp[32];
        unsigned int fp_len = 0;
        if (issuer && !url.empty() && X509_digest(leaf, EVP_sha256(), fp, &fp_len) == 1) {
            int slot = ocsp_->slot_for(fp);
            if (slot >= 0) {
                staples_[ctx].slot = slot;
                X509_up_ref(leaf);
                X509_up_ref(issuer);
                jobs_.push_back({slot, url, site.tls->certificates.front().cert, leaf, issuer});
                SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
                SSL_CTX_set_tlsext_status_arg(ctx, this);
            }
        }
    }
    return ctx;
}

bool TlsContexts::must_staple(X509* leaf) {
    // RFC 7633 TLS Feature extension listing status_request (5).
    int idx = X509_get_ext_by_NID(leaf, NID_tlsfeature, -1);
    if (idx < 0)
        return false;
    ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(leaf, idx));
    const unsigned char* p = ASN1_STRING_get0_data(data);
    int len = ASN1_STRING_length(data);
    // SEQUENCE OF INTEGER: look for the one-byte INTEGER 5.
    for (int i = 0; i + 2 < len; ++i)
        if (p[i] == 0x02 && p[i + 1] == 0x01 && p[i + 2] == 0x05)
            return true;
    return false;
}

// Reads a DER OCSP response and staples it only if it is a successful, current answer about
// this site's certificate, signed for its issuer; anything else is a config error, so a stale
// or mismatching response is never stapled.
void TlsContexts::load_staple(SSL_CTX* ctx, const Site& site, Diagnostics& diag, bool* failed) {
    const SiteTls& tls = *site.tls;
    auto bad = [&](const std::string& what) {
        diag.error(tls.ocsp_staple_pos, "site.tls.ocsp_staple: " + what);
        *failed = true;
    };
    FILE* f = fopen(tls.ocsp_staple.c_str(), "rb");
    if (!f)
        return bad("cannot read " + tls.ocsp_staple);
    std::vector<unsigned char> der;
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && der.size() < (1 << 20))
        der.insert(der.end(), buf, buf + n);
    fclose(f);
    X509* leaf = SSL_CTX_get0_certificate(ctx);
    time_t next_update = 0;
    std::string problem =
        check_ocsp_response(der, leaf, leaf ? issuer_of(ctx, leaf) : nullptr, &next_update);
    if (!problem.empty())
        return bad(problem);
    staples_[ctx].next_update = next_update;
    staples_[ctx].der = std::move(der);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status_request);
    SSL_CTX_set_tlsext_status_arg(ctx, this);
}

int TlsContexts::on_status_request(SSL* ssl, void* arg) {
    auto* self = static_cast<TlsContexts*>(arg);
    auto it = self->staples_.find(SSL_get_SSL_CTX(ssl));
    if (it == self->staples_.end())
        return SSL_TLSEXT_ERR_NOACK;
    const Staple& staple = it->second;
    unsigned char fetched[OcspSlot::kMaxResponse];
    const unsigned char* der = staple.der.data();
    size_t len = staple.der.size();
    time_t next_update = staple.next_update;
    if (staple.slot >= 0 && self->ocsp_) {
        len = self->ocsp_->read(staple.slot, fetched, sizeof(fetched), &next_update);
        der = fetched;
    }
    // Nothing yet, or past nextUpdate (it proves nothing then): staple nothing rather than lie.
    if (len == 0 || (next_update && time(nullptr) >= next_update))
        return SSL_TLSEXT_ERR_NOACK;
    auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(len));
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    std::memcpy(copy, der, len);
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(len));
    return SSL_TLSEXT_ERR_OK;
}

std::shared_ptr<const TlsContexts> TlsContexts::build(const Config& config, Diagnostics& diag,
                                                      TicketKeys* keys, OcspCache* ocsp,
                                                      bool* failed) {
    *failed = false;
    bool any_tls = false;
    for (const ListenConfig& l : config.listeners)
        any_tls |= l.tls;
    if (!any_tls)
        return nullptr;
    std::shared_ptr<TlsContexts> set(new TlsContexts(config));
    set->keys_ = keys;
    set->ocsp_ = ocsp;
    const Site* fallback = nullptr;
    for (const auto& site : config.sites) {
        if (!site->tls || site->tls->certificates.empty())
            continue;
        SSL_CTX* ctx = set->make_ctx(*site, diag, failed);
        if (!ctx)
            continue;
        set->site_ctx_[site.get()] = ctx;
        if (!fallback || site->is_default)
            fallback = site.get();
    }
    // Clients without SNI (or naming a site without a certificate) get the default site's
    // certificate, or the first site's that has one.
    const Site* default_site = set->router_.site_for("");
    if (default_site && set->site_ctx_.count(default_site))
        fallback = default_site;
    if (fallback)
        set->default_ctx_ = set->site_ctx_[fallback];
    for (const ListenConfig& l : config.listeners) {
        TlsListener tl;
        tl.listen = &l;
        for (const std::string& p : l.protocols) {
            // A stream protocol is offered by its ALPN id (none: it is the only protocol and
            // the handshake names none).
            const ListenStream* stream = nullptr;
            for (const ListenStream& s : l.streams)
                if (s.protocol == p)
                    stream = &s;
            const std::string& id = stream ? stream->alpn : p;
            if (id.empty() || !offers_alpn(l, id))
                continue;
            tl.alpn.push_back(static_cast<unsigned char>(id.size()));
            tl.alpn.insert(tl.alpn.end(), id.begin(), id.end());
        }
        set->listeners_.push_back(std::move(tl));
    }
    return set;
}

SSL* TlsContexts::new_ssl(size_t listener_index) const {
    if (!default_ctx_)
        return nullptr;
    SSL* ssl = SSL_new(default_ctx_);
    if (ssl) {
        SSL_set_ex_data(ssl, listener_index_slot(),
                        const_cast<TlsListener*>(&listeners_[listener_index]));
        // One read(2) takes everything that has arrived, not a record header and then its
        // body: one system call per request instead of two. Protocols then ask buffered()
        // before waiting for the socket.
        SSL_set_read_ahead(ssl, 1);
    }
    return ssl;
}

// Runs first in a handshake: picks the site's context from SNI before version negotiation,
// so a site's min_version applies.
int TlsContexts::on_client_hello(SSL* ssl, int* alert, void* arg) {
    auto* self = static_cast<TlsContexts*>(arg);
    std::string_view sni = sni_from_hello(ssl);
    char lower[256];
    size_t n = std::min(sni.size(), sizeof(lower));
    for (size_t i = 0; i < n; ++i)
        lower[i] = static_cast<char>(sni[i] >= 'A' && sni[i] <= 'Z' ? sni[i] + 32 : sni[i]);
    // A listener with a site of its own ([admin]) shows that site's certificate whatever the
    // name asked for.
    auto* l = static_cast<TlsListener*>(SSL_get_ex_data(ssl, listener_index_slot()));
    const Site* site = l && l->listen && l->listen->site ? l->listen->site
                                                         : self->router_.site_for({lower, n});
    auto it = site ? self->site_ctx_.find(site) : self->site_ctx_.end();
    SSL_CTX* ctx = it != self->site_ctx_.end() ? it->second : self->default_ctx_;
    if (ctx != SSL_get_SSL_CTX(ssl)) {
        SSL_set_SSL_CTX(ssl, ctx);
        // SSL_set_SSL_CTX swaps certificates only; carry over the site's policy.
        SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx));
        SSL_set_options(ssl, SSL_CTX_get_options(ctx));
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), nullptr);
        if (STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(ctx))
            SSL_set_client_CA_list(ssl, SSL_dup_CA_list(names));
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

int TlsContexts::on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void*) {
    auto* l = static_cast<TlsListener*>(SSL_get_ex_data(ssl, listener_index_slot()));
    if (!l || l->alpn.empty())
        return SSL_TLSEXT_ERR_NOACK;
    // Server preference: the first of our protocols the client offers.
    const unsigned char* ours = l->alpn.data();
    size_t ours_len = l->alpn.size();
    for (size_t i = 0; i < ours_len; i += 1 + ours[i]) {
        for (unsigned int j = 0; j < inlen; j += 1 + in[j]) {
            if (in[j] == ours[i] && j + 1 + in[j] <= inlen &&
                std::memcmp(in + j + 1, ours + i + 1, ours[i]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    // RFC 7301 §3.2: no protocol in common is a fatal no_application_protocol alert.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int TlsContexts::on_ticket_key(SSL* ssl, unsigned char* name, unsigned char* iv, void* cipher,
                               void* mac, int enc) {
    SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
    auto* self = static_cast<TlsContexts*>(SSL_CTX_get_ex_data(ctx, contexts_slot()));
    TicketKeys::Key cur, prev;
    bool has_prev;
    self->keys_->snapshot(cur, prev, has_prev);
    auto* cctx = static_cast<EVP_CIPHER_CTX*>(cipher);
    auto* hctx = static_cast<EVP_MAC_CTX*>(mac);
    auto set_mac = [&](const TicketKeys::Key& k) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
            OSSL_PARAM_construct_end()};
        return EVP_MAC_CTX_set_params(hctx, params) == 1 &&
               EVP_MAC_init(hctx, k.hmac, sizeof(k.hmac), nullptr) == 1;
    };
    if (enc) {
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        std::memcpy(name, cur.name, sizeof(cur.name));
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, cur.aes, iv) != 1 || !set_mac(cur))
            return -1;
        return 1;
    }
    const TicketKeys::Key* key = nullptr;
    int result = 1;
    if (std::memcmp(name, cur.name, sizeof(cur.name)) == 0) {
        key = &cur;
    } else if (has_prev && std::memcmp(name, prev.name, sizeof(prev.name)) == 0) {
        key = &prev;
        result = 2; // valid, but issue a ticket under the current key
    }
    if (!key)
        return 0; // unknown key: full handshake
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key->aes, iv) != 1 || !set_mac(*key))
        return -1;
    return result;
}

} // namespace wraith
