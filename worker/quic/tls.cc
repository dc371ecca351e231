#include "worker/quic/tls.h"

#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include "common/log.h"
#include "common/module.h"
#include "worker/quic/application.h"

namespace wraith::quic {

namespace {

// RFC 9001 §4.2: TLS 1.3 only; AEADs ngtcp2_crypto_gnutls implements (http3.cipher_suites
// may narrow them), the same groups as TCP.
std::string priority_for(const Http3Config& http3) {
    std::string ciphers;
    auto add = [&](std::string_view iana, const char* gnutls) {
        if (http3.cipher_suites.empty() ||
            std::find(http3.cipher_suites.begin(), http3.cipher_suites.end(), iana) !=
                http3.cipher_suites.end())
            ciphers += gnutls;
    };
    add("TLS_AES_128_GCM_SHA256", ":+AES-128-GCM");
    add("TLS_AES_256_GCM_SHA384", ":+AES-256-GCM");
    add("TLS_CHACHA20_POLY1305_SHA256", ":+CHACHA20-POLY1305");
    return "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL" + ciphers +
           ":-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%DISABLE_TLS13_COMPAT_MODE";
}

// At most this many applications are offered in ALPN.
constexpr size_t kMaxAlpn = 8;

// 0-RTT replay window: a ClientHello seen once in this worker is refused a second time. Replays
// that reach another worker are not caught here; only safe methods are served from early
// data (everything else gets 425), which is what makes that acceptable (RFC 8470 §3).
std::unordered_map<std::string, time_t>& replay_seen() {
    static std::unordered_map<std::string, time_t> seen;
    return seen;
}

int replay_add(void*, time_t expires, const gnutls_datum_t* key, const gnutls_datum_t*) {
    auto& seen = replay_seen();
    time_t now = time(nullptr);
    if (seen.size() > 100000)
        std::erase_if(seen, [&](const auto& e) { return e.second < now; });
    auto [it, fresh] =
        seen.emplace(std::string(reinterpret_cast<const char*>(key->data), key->size), expires);
    return fresh ? 0 : GNUTLS_E_DB_ENTRY_EXISTS;
}

} // namespace

TlsContext::~TlsContext() {
    for (auto& [site, sc] : sites_)
        gnutls_certificate_free_credentials(sc.creds);
    if (priority_)
        gnutls_priority_deinit(priority_);
    if (anti_replay_)
        gnutls_anti_replay_deinit(anti_replay_);
}

std::shared_ptr<const TlsContext> TlsContext::build(const Config& config, Diagnostics& diag,
                                                    bool* failed) {
    bool any = false;
    for (const ListenConfig& l : config.listeners)
        any = any || l.quic();
    if (!any)
        return nullptr;
    std::shared_ptr<TlsContext> ctx(new TlsContext(config));
    const char* where = nullptr;
    if (int rv = gnutls_priority_init(&ctx->priority_, priority_for(config.http3).c_str(), &where);
        rv < 0) {
        diag.error(config.listeners.front().pos,
                   std::string("QUIC TLS priority rejected by GnuTLS: ") + gnutls_strerror(rv));
        *failed = true;
        return nullptr;
    }
    for (const auto& site : config.sites) {
        if (!site->tls || site->tls->certificates.empty())
            continue;
        SiteCreds sc;
        sc.site = site.get();
        gnutls_certificate_allocate_credentials(&sc.creds);
        for (const TlsCertificate& c : site->tls->certificates) {
            int rv = gnutls_certificate_set_x509_key_file2(sc.creds, c.cert.c_str(), c.key.c_str(),
                                                           GNUTLS_X509_FMT_PEM, nullptr, 0);
            if (rv < 0) {
                diag.error(c.pos, "site.tls: GnuTLS (used for HTTP/3) cannot load " + c.cert +
                                      " with " + c.key + ": " + gnutls_strerror(rv));
                *failed = true;
            }
        }
        const SiteTls& tls = *site->tls;
        if (tls.client_auth != SiteTls::ClientAuth::off && !tls.client_ca.empty()) {
            int rv = gnutls_certificate_set_x509_trust_file(sc.creds, tls.client_ca.c_str(),
                                                            GNUTLS_X509_FMT_PEM);
            if (rv <= 0) {
                diag.error(tls.client_ca_pos, "site.tls: GnuTLS cannot load client_ca " +
                                                  tls.client_ca + ": " +
                                                  (rv < 0 ? gnutls_strerror(rv) : "no certificate"));
                *failed = true;
            }
            if (!tls.crl.empty()) {
                rv = gnutls_certificate_set_x509_crl_file(sc.creds, tls.crl.c_str(),
                                                          GNUTLS_X509_FMT_PEM);
                if (rv < 0) {
                    diag.error(tls.client_ca_pos, "site.tls: GnuTLS cannot load crl " + tls.crl +
                                                      ": " + gnutls_strerror(rv));
                    *failed = true;
                }
            }
            gnutls_certificate_set_verify_function(sc.creds, verify_client);
            sc.request = tls.client_auth == SiteTls::ClientAuth::require ? GNUTLS_CERT_REQUIRE
                                                                          : GNUTLS_CERT_REQUEST;
        }
        ctx->any_early_data_ = ctx->any_early_data_ || tls.early_data;
        ctx->sites_[site.get()] = sc;
    }
    if (ctx->sites_.empty())
        return nullptr; // config validation already said a TLS listener needs a certificate
    const Site* def = ctx->router_.site_for("");
    auto it = def ? ctx->sites_.find(def) : ctx->sites_.end();
    ctx->default_ = it != ctx->sites_.end() ? &it->second : &ctx->sites_.begin()->second;
    if (ctx->any_early_data_) {
        gnutls_anti_replay_init(&ctx->anti_replay_);
        gnutls_anti_replay_set_add_function(ctx->anti_replay_, replay_add);
        gnutls_anti_replay_set_window(ctx->anti_replay_, 10000); // ms
    }
    return ctx;
}

const TlsContext::SiteCreds* TlsContext::creds_for(std::string_view sni) const {
    char lower[256];
    size_t n = std::min(sni.size(), sizeof(lower));
    for (size_t i = 0; i < n; ++i)
        lower[i] = static_cast<char>(sni[i] >= 'A' && sni[i] <= 'Z' ? sni[i] + 32 : sni[i]);
    const Site* site = router_.site_for({lower, n});
    auto it = site ? sites_.find(site) : sites_.end();
    return it != sites_.end() ? &it->second : default_;
}

bool TlsContext::init_session(gnutls_session_t* out, SessionOwner* owner,
                              const std::array<uint8_t, 32>& secret, const ListenConfig& listen,
                              std::string* error) const {
    unsigned flags = GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA;
    if (any_early_data_)
        flags |= GNUTLS_ENABLE_EARLY_DATA;
    gnutls_session_t s = nullptr;
    if (int rv = gnutls_init(&s, flags); rv < 0) {
        *error = std::string("gnutls_init: ") + gnutls_strerror(rv);
        return false;
    }
    owner->tls = this;
    auto fail = [&](const char* what, int rv) {
        *error = std::string(what) + ": " + gnutls_strerror(rv);
        gnutls_deinit(s);
        return false;
    };
    if (int rv = gnutls_priority_set(s, priority_); rv < 0)
        return fail("gnutls_priority_set", rv);
    // Ticket key: derived from the master's secret, so every worker of every generation
    // issues and accepts the same tickets; GnuTLS rotates keys from it on its own schedule.
    uint8_t key[64];
    static constexpr char kLabel[] = "wraith quic session tickets";
    uint8_t material[32 + sizeof(kLabel)];
    std::memcpy(material, secret.data(), 32);
    std::memcpy(material + 32, kLabel, sizeof(kLabel));
    gnutls_hash_fast(GNUTLS_DIG_SHA512, material, sizeof(material), key);
    gnutls_datum_t ticket_key{key, sizeof(key)};
    if (int rv = gnutls_session_ticket_enable_server(s, &ticket_key); rv < 0)
        return fail("gnutls_session_ticket_enable_server", rv);
    gnutls_handshake_set_post_client_hello_function(s, on_client_hello);
    if (ngtcp2_crypto_gnutls_configure_server_session(s) != 0)
        return fail("ngtcp2_crypto_gnutls_configure_server_session", GNUTLS_E_INTERNAL_ERROR);
    if (any_early_data_) {
        gnutls_anti_replay_enable(s, anti_replay_);
        gnutls_record_set_max_early_data_size(s, 0xffffffffu); // RFC 9001 §4.6.1
    }
    gnutls_session_set_ptr(s, owner);
    if (int rv = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, default_->creds); rv < 0)
        return fail("gnutls_credentials_set", rv);
    // The registered applications this listener answers, in registration order (the server's
    // preference): "h3" (and test applications) where it carries "h3", a module's protocol
    // ("doq") where it names it. With MANDATORY, a client that offers none of them gets
    // no_application_protocol (RFC 9001 §8.1).
    gnutls_datum_t alpn[kMaxAlpn];
    unsigned nalpn = 0;
    const ModuleRegistry& modules = ModuleRegistry::instance();
    for (const ApplicationSpec& a : applications()) {
        if (nalpn == kMaxAlpn)
            break;
        const ModuleSpec* m = modules.find(a.alpn);
        if (!listen.quic_offers(a.alpn, m && m->quic_application))
            continue;
        alpn[nalpn++] = {reinterpret_cast<unsigned char*>(const_cast<char*>(a.alpn.data())),
                         static_cast<unsigned>(a.alpn.size())};
    }
    gnutls_alpn_set_protocols(s, alpn, nalpn, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE);
    *out = s;
    return true;
}

// After the ClientHello: the site by SNI picks the credentials (and client certificate policy).
int TlsContext::on_client_hello(gnutls_session_t session) {
    auto* owner = static_cast<SessionOwner*>(gnutls_session_get_ptr(session));
    char name[256];
    size_t len = sizeof(name);
    unsigned type = 0;
    std::string_view sni;
    if (gnutls_server_name_get(session, name, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS)
        sni = {name, std::strlen(name)};
    const SiteCreds* sc = owner->tls->creds_for(sni);
    owner->site = sc->site;
    if (sc != owner->tls->default_)
        gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, sc->creds);
    if (sc->request != GNUTLS_CERT_IGNORE) {
        gnutls_certificate_server_set_request(session, sc->request);
        gnutls_certificate_send_x509_rdn_sequence(session, 0);
    }
    // RFC 9001 §8.1: without ALPN agreement the handshake fails (no_application_protocol).
    gnutls_datum_t alpn;
    if (gnutls_alpn_get_selected_protocol(session, &alpn) != 0)
        return GNUTLS_E_NO_APPLICATION_PROTOCOL;
    owner->application =
        find_application({reinterpret_cast<const char*>(alpn.data), alpn.size});
    return owner->application ? 0 : GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

// Client certificates: chain to client_ca (and not revoked by the CRL). No certificate is fine
// for "optional"; "require" fails the handshake in GnuTLS before we are asked.
int TlsContext::verify_client(gnutls_session_t session) {
    unsigned count = 0;
    if (!gnutls_certificate_get_peers(session, &count) || count == 0)
        return 0;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0) {
        ErrorLog::limited(LogLevel::info, "quic: client certificate rejected (status 0x%x)",
                          status);
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    return 0;
}

void TlsContext::describe_peer(gnutls_session_t session, PeerTls* out) {
    char name[256];
    size_t len = sizeof(name);
    unsigned type = 0;
    if (gnutls_server_name_get(session, name, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS)
        out->sni.assign(name, strnlen(name, len));
    // A certificate is only here when verify_client accepted it (or none was asked for).
    unsigned count = 0;
    const gnutls_datum_t* chain = gnutls_certificate_get_peers(session, &count);
    if (!chain || count == 0)
        return;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return;
    if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0) {
        gnutls_datum_t dn{};
        if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
            out->client_subject.assign(reinterpret_cast<const char*>(dn.data), dn.size);
            gnutls_free(dn.data);
        }
        for (unsigned i = 0; i < 64; ++i) {
            char value[512];
            size_t vlen = sizeof(value);
            int kind = gnutls_x509_crt_get_subject_alt_name(crt, i, value, &vlen, nullptr);
            if (kind == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                break;
            const char* prefix = kind == GNUTLS_SAN_DNSNAME      ? "DNS:"
                                 : kind == GNUTLS_SAN_RFC822NAME ? "email:"
                                 : kind == GNUTLS_SAN_URI        ? "URI:"
                                                                 : nullptr;
            if (!prefix) // another kind, or one too long for the buffer
                continue;
            if (!out->client_sans.empty())
                out->client_sans += ", ";
            out->client_sans += prefix;
            out->client_sans.append(value, vlen);
        }
    }
    gnutls_x509_crt_deinit(crt);
    unsigned char md[32];
    size_t md_len = sizeof(md);
    if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &chain[0], md, &md_len) == 0) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < md_len; ++i) {
            out->client_fingerprint += hex[md[i] >> 4];
            out->client_fingerprint += hex[md[i] & 15];
        }
    }
}

} // namespace wraith::quic
