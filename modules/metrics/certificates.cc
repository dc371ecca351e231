// Certificates of the serving configuration and their expiry, for the status object and the
// scrape: read from each site's certificate files once per generation (a reload is what
// changes them), not at every poll.
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/json.h"
#include "common/metrics_text.h"
#include "common/ocsp_cache.h"
#include "modules/metrics/metrics.h"

namespace wraith::metrics {

namespace {

struct CertInfo {
    std::string site;               // its label (first host name)
    std::vector<std::string> names; // DNS names of the leaf (SAN, else CN)
    int64_t not_after = 0;          // Unix time; 0: the file could not be read
    // OCSP stapling: a configured staple file's response (read once), or the SHA-256 that
    // finds the master's fetched staple in the "tls.ocsp" zone.
    bool stapling = false;
    std::vector<unsigned char> staple_file;
    bool has_fingerprint = false;
    unsigned char fingerprint[32] = {};
};

int64_t unix_time(const ASN1_GENERALIZEDTIME* t) {
    struct tm tm {};
    return t && ASN1_TIME_to_tm(t, &tm) == 1 ? static_cast<int64_t>(timegm(&tm)) : 0;
}

// thisUpdate and nextUpdate (0: none) of a DER OCSP response's first answer; false when it
// is not one.
bool staple_times(const unsigned char* der, size_t len, int64_t* this_update,
                  int64_t* next_update) {
    const unsigned char* p = der;
    OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(len));
    if (!resp)
        return false;
    OCSP_BASICRESP* basic = OCSP_response_get1_basic(resp);
    OCSP_SINGLERESP* single = basic ? OCSP_resp_get0(basic, 0) : nullptr;
    ASN1_GENERALIZEDTIME *revoked = nullptr, *this_upd = nullptr, *next_upd = nullptr;
    int reason = 0;
    const bool ok =
        single && OCSP_single_get0_status(single, &reason, &revoked, &this_upd, &next_upd) >= 0;
    if (ok) {
        *this_update = unix_time(this_upd);
        *next_update = unix_time(next_upd);
    }
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    return ok && *this_update != 0;
}

std::vector<unsigned char> read_file(const std::string& path) {
    std::vector<unsigned char> data;
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f)
        return data;
    unsigned char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0 && data.size() < (1u << 20))
        data.insert(data.end(), buf, buf + n);
    return data;
}

std::vector<std::string> dns_names(X509* leaf) {
    std::vector<std::string> names;
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
        if (n->type == GEN_DNS)
            names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                               static_cast<size_t>(ASN1_STRING_length(n->d.dNSName)));
        else if (n->type == GEN_IPADD && n->d.iPAddress->length == 4) {
            const unsigned char* a = n->d.iPAddress->data;
            names.push_back(std::to_string(a[0]) + "." + std::to_string(a[1]) + "." +
                            std::to_string(a[2]) + "." + std::to_string(a[3]));
        }
    }
    GENERAL_NAMES_free(sans);
    if (names.empty()) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)) >
            0)
            names.emplace_back(cn);
    }
    return names;
}

CertInfo read_certificate(const std::string& site, const std::string& path) {
    CertInfo info{site, {}, 0};
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "r"), std::fclose);
    if (!f)
        return info;
    X509* leaf = PEM_read_X509(f.get(), nullptr, nullptr, nullptr);
    if (!leaf)
        return info;
    struct tm tm {};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1)
        info.not_after = static_cast<int64_t>(timegm(&tm));
    info.names = dns_names(leaf);
    unsigned int fp_len = 0;
    info.has_fingerprint = X509_digest(leaf, EVP_sha256(), info.fingerprint, &fp_len) == 1;
    X509_free(leaf);
    return info;
}

// The certificates of `config`, read once per generation (one process serves one config at
// a time; the master asks for its serving generation's).
const std::vector<CertInfo>& certificates(const MetricsExport& ctx) {
    static const Config* cached_config = nullptr;
    static uint32_t cached_generation = 0;
    static std::vector<CertInfo> cached;
    if (cached_config != &ctx.config || cached_generation != ctx.generation) {
        cached.clear();
        for (const auto& site : ctx.config.sites)
            if (site->tls)
                for (const TlsCertificate& c : site->tls->certificates) {
                    CertInfo info = read_certificate(site_label(site.get()), c.cert);
                    const bool first = &c == &site->tls->certificates.front();
                    if (first && !site->tls->ocsp_staple.empty()) {
                        info.stapling = true;
                        info.staple_file = read_file(site->tls->ocsp_staple);
                    } else {
                        info.stapling = site->tls->ocsp_fetch;
                    }
                    cached.push_back(std::move(info));
                }
        cached_config = &ctx.config;
        cached_generation = ctx.generation;
    }
    return cached;
}

// The staple this certificate is served with now: its thisUpdate and nextUpdate. False when
// none is held (not fetched yet, the responder unreachable, or no stapling).
bool current_staple(const MetricsExport& ctx, const CertInfo& c, int64_t* this_update,
                    int64_t* next_update) {
    if (!c.stapling)
        return false;
    if (!c.staple_file.empty())
        return staple_times(c.staple_file.data(), c.staple_file.size(), this_update, next_update);
    const auto* cache = ctx.zones.get<OcspCache>(kOcspZone);
    const int slot = cache && c.has_fingerprint ? cache->find(c.fingerprint) : -1;
    if (slot < 0)
        return false;
    static unsigned char der[OcspSlot::kMaxResponse];
    time_t unused = 0;
    const size_t len = cache->read(slot, der, sizeof der, &unused);
    return len > 0 && staple_times(der, len, this_update, next_update);
}

} // namespace

void export_certificate_status(const MetricsExport& ctx, std::string& out) {
    const time_t now = time(nullptr);
    out += ",\"certificates\":[";
    bool first = true;
    for (const CertInfo& c : certificates(ctx)) {
        out += first ? "{\"site\":" : ",{\"site\":";
        first = false;
        append_json_string(out, c.site);
        out += ",\"names\":[";
        for (size_t i = 0; i < c.names.size(); ++i) {
            if (i)
                out += ',';
            append_json_string(out, c.names[i]);
        }
        const int64_t left = c.not_after ? (c.not_after - now) / 86400 : 0;
        out += "],\"not_after\":" + std::to_string(c.not_after) +
               ",\"days_left\":" + std::to_string(left);
        int64_t this_update = 0, next_update = 0;
        if (current_staple(ctx, c, &this_update, &next_update))
            out += ",\"ocsp_age\":" + std::to_string(now - this_update);
        out += '}';
    }
    out += ']';
}

void export_certificate_metrics(const MetricsExport& ctx, std::string& out) {
    const std::vector<CertInfo>& certs = certificates(ctx);
    if (certs.empty())
        return;
    metric_header(out, ctx.openmetrics, "wraith_certificate_expiry_timestamp_seconds", "gauge",
                  "When each site certificate expires (Unix time; 0: its file could not be "
                  "read), by site and the certificate's first name.");
    for (const CertInfo& c : certs) {
        out += "wraith_certificate_expiry_timestamp_seconds{site=\"";
        metric_label_value(out, c.site);
        out += "\",name=\"";
        metric_label_value(out, c.names.empty() ? std::string_view() : c.names.front());
        out += "\"} " + std::to_string(c.not_after) + "\n";
    }
    // Staples: only the certificates that hold one now.
    struct Staple {
        const CertInfo* cert;
        int64_t this_update, next_update;
    };
    std::vector<Staple> staples;
    for (const CertInfo& c : certs) {
        Staple s{&c, 0, 0};
        if (current_staple(ctx, c, &s.this_update, &s.next_update))
            staples.push_back(s);
    }
    if (staples.empty())
        return;
    auto labels = [&out](const CertInfo& c) {
        out += "{site=\"";
        metric_label_value(out, c.site);
        out += "\",name=\"";
        metric_label_value(out, c.names.empty() ? std::string_view() : c.names.front());
        out += "\"} ";
    };
    const time_t now = time(nullptr);
    metric_header(out, ctx.openmetrics, "wraith_ocsp_staple_age_seconds", "gauge",
                  "Age of the OCSP response stapled to each certificate (now minus its "
                  "thisUpdate); absent while none is held.");
    for (const Staple& s : staples) {
        out += "wraith_ocsp_staple_age_seconds";
        labels(*s.cert);
        out += std::to_string(now - s.this_update) + "\n";
    }
    metric_header(out, ctx.openmetrics, "wraith_ocsp_staple_next_update_timestamp_seconds", "gauge",
                  "When each stapled OCSP response stops being valid (its nextUpdate, Unix "
                  "time; 0: it names none).");
    for (const Staple& s : staples) {
        out += "wraith_ocsp_staple_next_update_timestamp_seconds";
        labels(*s.cert);
        out += std::to_string(s.next_update) + "\n";
    }
}

} // namespace wraith::metrics
