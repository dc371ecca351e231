#include "worker/tls/ocsp.h"

#include <algorithm>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "common/log.h"

namespace wraith {

// ---- checking ------------------------------------------------------------------------------

std::string check_ocsp_response(const std::vector<unsigned char>& der, X509* leaf, X509* issuer,
                                time_t* next_update) {
    *next_update = 0;
    const unsigned char* p = der.data();
    OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
    if (!resp)
        return "not a DER OCSP response";
    std::string problem;
    OCSP_BASICRESP* basic = nullptr;
    OCSP_CERTID* id = nullptr;
    X509_STORE* store = X509_STORE_new();
    STACK_OF(X509)* certs = sk_X509_new_null();
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        problem = "the response is not successful";
    } else if (!(basic = OCSP_response_get1_basic(resp))) {
        problem = "the response has no basic response";
    } else if (!leaf || !issuer) {
        problem = "the certificate chain must include the issuer of the certificate";
    } else {
        // The signer must be the issuer, or a responder certificate the issuer signed.
        X509_STORE_add_cert(store, issuer);
        sk_X509_push(certs, issuer);
        int status = -1, reason = 0;
        ASN1_GENERALIZEDTIME *produced = nullptr, *this_update = nullptr, *next = nullptr;
        id = OCSP_cert_to_id(nullptr, leaf, issuer);
        if (OCSP_basic_verify(basic, certs, store, OCSP_TRUSTOTHER) != 1)
            problem = "the response's signature does not verify against the issuer";
        else if (!id || OCSP_resp_find_status(basic, id, &status, &reason, &produced, &this_update,
                                              &next) != 1)
            problem = "the response is not about this certificate";
        else if (status != V_OCSP_CERTSTATUS_GOOD)
            problem = status == V_OCSP_CERTSTATUS_REVOKED
                          ? "the response says the certificate is revoked"
                          : "the response says the certificate's status is unknown";
        else if (OCSP_check_validity(this_update, next, 300, -1) != 1)
            problem = "the response has expired or is not valid yet";
        else if (next) {
            struct tm tm;
            if (ASN1_TIME_to_tm(next, &tm) == 1)
                *next_update = timegm(&tm);
        }
    }
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    sk_X509_free(certs);
    X509_STORE_free(store);
    ERR_clear_error();
    return problem;
}

std::string ocsp_responder_url(X509* leaf) {
    std::string url;
    STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(leaf);
    for (int i = 0; urls && i < sk_OPENSSL_STRING_num(urls); ++i) {
        std::string u = sk_OPENSSL_STRING_value(urls, i);
        if (u.rfind("http://", 0) == 0) {
            url = u;
            break;
        }
    }
    X509_email_free(urls);
    return url;
}

} // namespace wraith
