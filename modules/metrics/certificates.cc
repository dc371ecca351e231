// Certificates of the serving configuration and their expiry, for the status object and the
// scrape: read from each site's certificate files once per generation (a reload is what
// changes them), not at every poll.
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/json.h"
#include "common/metrics_text.h"
#include "modules/metrics/metrics.h"

namespace wraith::metrics {

namespace {

struct CertInfo {
    std::string site;               // its label (first host name)
    std::vector<std::string> names; // DNS names of the leaf (SAN, else CN)
    int64_t not_after = 0;          // Unix time; 0: the file could not be read
};

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
                for (const TlsCertificate& c : site->tls->certificates)
                    cached.push_back(read_certificate(site_label(site.get()), c.cert));
        cached_config = &ctx.config;
        cached_generation = ctx.generation;
    }
    return cached;
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
               ",\"days_left\":" + std::to_string(left) + "}";
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
}

} // namespace wraith::metrics
