// TLS over TCP as a Transport. The handshake is driven by tls::Handshake (handshake.h); once it
// is done the protocol reads and writes through SSL_read/SSL_write, and static files go out with
// SSL_sendfile when the kernel took over the record layer (kTLS), or through a bounce buffer.
#pragma once

#include <memory>
#include <string>

#include "worker/transport.h"

typedef struct ssl_st SSL;

namespace wraith::tls {

class TlsTransport final : public Transport {
public:
    TlsTransport(int fd, SSL* ssl); // takes ownership of ssl
    ~TlsTransport() override;

    // One step of the server handshake: 1 done, 0 call again when wait_events(...) fire,
    // -1 failed (`error()` says why).
    int handshake();
    const char* error() const { return error_; }
    // Why the handshake failed, as a core counter (common/counters.h); the transport was the
    // one that failed it (not a timeout or plain HTTP).
    int failure_counter() const;
    // Whether the completed handshake resumed a session.
    bool resumed() const;

    ssize_t read(char* buf, size_t len) override;
    ssize_t write(const iovec* iov, int count, bool more) override;
    ssize_t send_file(int file_fd, off_t* offset, size_t len) override;
    int wait_events(bool reading) const override;
    void shutdown_write() override;
    const TlsInfo* tls_info() const override { return &info_; }
    size_t buffered() const override;
    bool ktls_send() const { return ktls_send_; }

private:
    // Maps an SSL result to the recv/send conventions, remembering what OpenSSL waits for.
    ssize_t fail(int ret);
    ssize_t write_record(const char* data, size_t len);

    SSL* ssl_;
    int want_ = 0;         // EV_READ or EV_WRITE after WANT_READ / WANT_WRITE
    size_t retry_len_ = 0; // a write that hit WANT_WRITE must be retried with these bytes
    bool ktls_send_ = false;
    const char* error_ = "";
    unsigned long error_code_ = 0; // OpenSSL's, for failure_counter(); 0: not a TLS error
    // A verified client certificate, read once after the handshake (ConnectionInfo views).
    std::string client_subject_;
    std::string client_issuer_;
    std::string client_sans_;
    std::string client_fingerprint_;
    void read_client_certificate();
    void fill_info(); // after the handshake
    TlsInfo info_;    // views of the strings above and of OpenSSL's static names
    std::string cork_; // head bytes held by MSG_MORE until the body's first record
};

} // namespace wraith::tls
