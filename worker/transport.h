// The byte stream under an HTTP protocol: plain TCP, or TLS over TCP (worker/tls). Protocol
// adapters (worker/http1, worker/http2) read and write through it and never touch the socket,
// so each protocol works over both. All calls are non-blocking with the errno conventions of
// recv(2)/sendmsg(2)/sendfile(2).
#pragma once

#include <cstddef>
#include <memory>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/http.h"

namespace wraith {

class Transport {
public:
    // Runs its destructor when the transport (the connection) goes away: how the accept phase
    // learns that a connection it counted has ended, whichever stage or protocol held it last.
    class CloseHook {
    public:
        virtual ~CloseHook() = default;
    };

    explicit Transport(int fd) : fd_(fd) {}
    virtual ~Transport();
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;

    int fd() const { return fd_; }
    // >0: bytes read; 0: the peer closed; -1: errno (EAGAIN: wait for wait_events()).
    virtual ssize_t read(char* buf, size_t len) = 0;
    // Writes from `iov`; `more` says more data follows at once (the kernel may hold a
    // partial segment). Returns bytes written or -1 with errno.
    virtual ssize_t write(const iovec* iov, int count, bool more) = 0;
    // Writes up to `len` bytes of `file_fd` from *offset and advances it.
    virtual ssize_t send_file(int file_fd, off_t* offset, size_t len) = 0;
    // After EAGAIN, the libev events to wait for: EV_READ for reads and EV_WRITE for writes on
    // TCP; TLS may need the other direction (a handshake message or key update in between).
    virtual int wait_events(bool reading) const;
    // Ends our direction (TLS: close_notify first). Reading may continue.
    virtual void shutdown_write() = 0;
    // What the TLS handshake settled (SNI, ALPN, client certificate); null without TLS. Lives
    // as long as the transport.
    virtual const TlsInfo* tls_info() const { return nullptr; }
    // Bytes received and decoded but not yet returned by read() (TLS records buffered
    // inside the library): readable without a socket event.
    virtual size_t buffered() const { return 0; }

    void set_close_hook(std::unique_ptr<CloseHook> hook) { close_hook_ = std::move(hook); }
    // The address the client connected to when a PROXY header named it (worker/peer.cc uses
    // it instead of the socket's own); null otherwise.
    void set_local(const sockaddr_storage& local) {
        local_ = local;
        has_local_ = true;
    }
    const sockaddr_storage* local() const { return has_local_ ? &local_ : nullptr; }

protected:
    int fd_;
    sockaddr_storage local_{};
    bool has_local_ = false;
    std::unique_ptr<CloseHook> close_hook_;
};

// Plain TCP: recv, sendmsg (MSG_MORE corks headers in front of a sendfile), sendfile.
class TcpTransport final : public Transport {
public:
    using Transport::Transport;
    ssize_t read(char* buf, size_t len) override;
    ssize_t write(const iovec* iov, int count, bool more) override;
    ssize_t send_file(int file_fd, off_t* offset, size_t len) override;
    void shutdown_write() override;
};

} // namespace wraith
