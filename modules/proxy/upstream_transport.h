// The byte stream of one upstream connection: plain TCP here, or TLS over it
// (upstream_tls.h). The exchange and the pool read, write and keep connections through it and
// never call recv/send themselves, so everything they do works over both. Non-blocking, with
// the errno conventions of recv(2)/send(2).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace wraith::proxy {

class UpstreamTransport {
public:
    explicit UpstreamTransport(int fd) : fd_(fd) {}
    virtual ~UpstreamTransport(); // closes the socket
    UpstreamTransport(const UpstreamTransport&) = delete;
    UpstreamTransport& operator=(const UpstreamTransport&) = delete;

    int fd() const { return fd_; }
    virtual bool tls() const { return false; }
    // Readies a connected socket for requests (TLS: one step of the client handshake):
    // 1 ready, 0 call again when wait_events(true) fire, -1 failed (error() says why).
    virtual int handshake() { return 1; }
    // >0 bytes read; 0 the upstream closed (TLS: close_notify, or EOF); -1 errno (EAGAIN).
    virtual ssize_t read(char* buf, size_t len);
    // Bytes written (maybe fewer than len), or -1 with errno (EAGAIN: wait_events(false)).
    // After EAGAIN the same bytes, or more after them, must be offered again.
    virtual ssize_t write(const char* data, size_t len);
    // After EAGAIN, the libev events to wait for: EV_READ to read and EV_WRITE to write on
    // TCP; TLS may need the other direction (a handshake message in between).
    virtual int wait_events(bool reading) const;
    // Ends our direction (TLS: close_notify first); reading may go on (a tunnel's half-close).
    virtual void shutdown_write();
    // True when bytes were received but not returned by read() yet (TLS records buffered
    // inside the library): readable without a socket event, and not reusable as it is.
    virtual bool buffered() const { return false; }
    const std::string& error() const { return error_; }
    // Requests this connection carried (upstream keepalive_requests).
    uint32_t requests = 0;

protected:
    int fd_;
    std::string error_;
};

} // namespace wraith::proxy
