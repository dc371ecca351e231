#include "worker/tls/transport.h"

#include <cerrno>
#include <cstring>
#include <ev.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/counters.h"

namespace wraith::tls {

namespace {
constexpr size_t kRecord = 16384; // one full TLS record of plaintext

// Scratch space shared by every connection of the process (a worker is one thread, and each
// use ends within the call): pieces gathered or read from a file, and a record being
// assembled. Connections keep only their corked bytes, so an idle TLS connection holds no
// 16 KiB buffers of ours.
char g_gather[kRecord];
char g_record[kRecord];
} // namespace

TlsTransport::TlsTransport(int fd, SSL* ssl) : Transport(fd), ssl_(ssl) {
    SSL_set_fd(ssl_, fd);
    SSL_set_accept_state(ssl_);
}

TlsTransport::~TlsTransport() {
    SSL_free(ssl_);
}

ssize_t TlsTransport::fail(int ret) {
    int err = SSL_get_error(ssl_, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        want_ = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        want_ = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; // close_notify
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0 || errno == EAGAIN)
            errno = ECONNRESET; // EOF without close_notify (truncation) or odd state
        return -1;
    default:
        error_code_ = ERR_peek_error();
        error_ = ERR_reason_error_string(error_code_);
        if (!error_)
            error_ = "TLS protocol error";
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

int TlsTransport::handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        want_ = 0;
        ktls_send_ = BIO_get_ktls_send(SSL_get_wbio(ssl_));
        read_client_certificate();
        fill_info();
        return 1;
    }
    errno = 0;
    if (fail(r) < 0 && errno == EAGAIN)
        return 0;
    if (!*error_)
        error_ = errno ? strerror(errno) : "connection closed during the handshake";
    return -1;
}

int TlsTransport::failure_counter() const {
    if (!error_code_)
        return counters::tls_fail_closed; // EOF or reset mid-handshake
    switch (ERR_GET_REASON(error_code_)) {
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return counters::tls_fail_closed;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_UNKNOWN_PROTOCOL:
        return counters::tls_fail_version;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
        return counters::tls_fail_cipher;
    case SSL_R_NO_APPLICATION_PROTOCOL:
        return counters::tls_fail_alpn;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_NO_CERTIFICATES_RETURNED:
        return counters::tls_fail_certificate;
    default:
        return counters::tls_fail_other;
    }
}

bool TlsTransport::resumed() const {
    return SSL_session_reused(ssl_) == 1;
}

ssize_t TlsTransport::read(char* buf, size_t len) {
    ERR_clear_error();
    size_t n = 0;
    int r = SSL_read_ex(ssl_, buf, len, &n);
    if (r == 1) {
        want_ = 0;
        return static_cast<ssize_t>(n);
    }
    errno = 0;
    return fail(0);
}

// Sends one record made of the corked bytes followed by up to kRecord of `data`; returns how
// many bytes of `data` went out (the corked ones are always part of it), or -1 with errno.
// After WANT_WRITE the caller offers the same bytes again, and the record is rebuilt from the
// same cork and the same data (OpenSSL requires the retry to repeat the write).
ssize_t TlsTransport::write_record(const char* data, size_t len) {
    const size_t corked = cork_.size();
    size_t take = std::min(len, kRecord - corked);
    if (retry_len_)
        take = std::min(take, retry_len_ - corked);
    const char* record = data;
    size_t record_len = take;
    if (corked) {
        std::memcpy(g_record, cork_.data(), corked);
        std::memcpy(g_record + corked, data, take);
        record = g_record;
        record_len = corked + take;
    }
    ERR_clear_error();
    size_t n = 0;
    if (SSL_write_ex(ssl_, record, record_len, &n) == 1) {
        retry_len_ = 0;
        want_ = 0;
        cork_.clear();
        if (cork_.capacity() > 4096)
            std::string().swap(cork_); // a rare big head: do not keep its buffer
        return static_cast<ssize_t>(n - corked);
    }
    errno = 0;
    ssize_t f = fail(0);
    if (f < 0 && errno == EAGAIN)
        retry_len_ = record_len;
    return f;
}

ssize_t TlsTransport::write(const iovec* iov, int count, bool more) {
    size_t total = 0;
    for (int i = 0; i < count; ++i)
        total += iov[i].iov_len;
    // MSG_MORE's meaning: a file follows at once. Hold small pieces (the response head) so
    // head and body leave in one record instead of two.
    if (more && !retry_len_ && cork_.size() + total < kRecord) {
        for (int i = 0; i < count; ++i)
            cork_.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
        return static_cast<ssize_t>(total);
    }
    if (count == 1 || iov[0].iov_len >= kRecord)
        return write_record(static_cast<const char*>(iov[0].iov_base), iov[0].iov_len);
    // Several small pieces (chunk framing around data): gather a record's worth.
    size_t len = 0;
    for (int i = 0; i < count && len < kRecord - cork_.size(); ++i) {
        size_t take = std::min(iov[i].iov_len, kRecord - cork_.size() - len);
        std::memcpy(g_gather + len, iov[i].iov_base, take);
        len += take;
    }
    return write_record(g_gather, len);
}

ssize_t TlsTransport::send_file(int file_fd, off_t* offset, size_t len) {
    if (ktls_send_ && !retry_len_ && cork_.empty()) {
        ERR_clear_error();
        ossl_ssize_t n = SSL_sendfile(ssl_, file_fd, *offset, len, 0);
        if (n > 0) {
            *offset += n;
            return n;
        }
        errno = 0;
        return fail(static_cast<int>(n));
    }
    // Without kTLS: read a record's worth (after any corked head) and encrypt it here.
    size_t want = std::min(len, kRecord - cork_.size());
    if (retry_len_)
        want = std::min(want, retry_len_ - cork_.size());
    ssize_t got = ::pread(file_fd, g_gather, want, *offset);
    if (got <= 0)
        return got; // 0: the file shrank; the caller treats it as an error
    ssize_t n = write_record(g_gather, static_cast<size_t>(got));
    if (n > 0)
        *offset += n;
    return n;
}

int TlsTransport::wait_events(bool reading) const {
    if (want_)
        return want_;
    return reading ? EV_READ : EV_WRITE;
}

void TlsTransport::shutdown_write() {
    if (!cork_.empty())
        write_record("", 0); // a held head still goes out before close_notify
    ERR_clear_error();
    SSL_shutdown(ssl_); // close_notify; the reply is not awaited
    ERR_clear_error();
    ::shutdown(fd_, SHUT_WR);
}

void TlsTransport::read_client_certificate() {
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (!cert || SSL_get_verify_result(ssl_) != X509_V_OK)
        return;
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
        char* data;
        long len = BIO_get_mem_data(bio, &data);
        client_subject_.assign(data, len);
        BIO_free(bio);
    }
    if (BIO* bio = BIO_new(BIO_s_mem())) {
        X509_NAME_print_ex(bio, X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253);
        char* data;
        long len = BIO_get_mem_data(bio, &data);
        client_issuer_.assign(data, len);
        BIO_free(bio);
    }
    if (auto* names = static_cast<GENERAL_NAMES*>(
            X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
            const char* kind = nullptr;
            const ASN1_STRING* value = nullptr;
            if (n->type == GEN_DNS) {
                kind = "DNS:";
                value = n->d.dNSName;
            } else if (n->type == GEN_EMAIL) {
                kind = "email:";
                value = n->d.rfc822Name;
            } else if (n->type == GEN_URI) {
                kind = "URI:";
                value = n->d.uniformResourceIdentifier;
            }
            if (!kind)
                continue;
            if (!client_sans_.empty())
                client_sans_ += ", ";
            client_sans_ += kind;
            client_sans_.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                                ASN1_STRING_length(value));
        }
        GENERAL_NAMES_free(names);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned i = 0; i < md_len; ++i) {
            client_fingerprint_ += hex[md[i] >> 4];
            client_fingerprint_ += hex[md[i] & 15];
        }
    }
}

void TlsTransport::fill_info() {
    info_.version = SSL_get_version(ssl_); // static strings, as the cipher's name
    if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_))
        info_.cipher = SSL_CIPHER_standard_name(cipher);
    info_.resumed = SSL_session_reused(ssl_) == 1;
    info_.client_subject = client_subject_;
    info_.client_issuer = client_issuer_;
    info_.client_sans = client_sans_;
    info_.client_fingerprint = client_fingerprint_;
    if (const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name))
        info_.sni = sni;
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
    if (alpn)
        info_.alpn = {reinterpret_cast<const char*>(alpn), alpn_len};
}

size_t TlsTransport::buffered() const {
    // Decrypted bytes of the current record, or (read-ahead) records read from the socket and
    // not yet processed: either way readable without a socket event.
    size_t n = static_cast<size_t>(SSL_pending(ssl_));
    return n ? n : SSL_has_pending(ssl_) ? 1 : 0;
}

} // namespace wraith::tls
