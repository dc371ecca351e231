#include "worker/refusal.h"

#include <cstdio>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http.h"

namespace wraith {

void refuse_connection(int fd, bool tls, int status, uint32_t retry_after_s) {
    if (status != 0) {
        // What already arrived: unread bytes at close() make the kernel send a reset, and a
        // reset may discard our answer before the client reads it. One read, never a wait.
        char scratch[4096];
        for (int i = 0; i < 4 && ::recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; ++i) {
        }
        if (tls) {
            // RFC 8446 §6: alert record, level fatal (2), internal_error (80). Nothing about
            // the refusal is the client's fault, and every TLS stack reports this one.
            static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 80};
            (void)::send(fd, alert, sizeof(alert), MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            char answer[256];
            int n = std::snprintf(answer, sizeof(answer),
                                  "HTTP/1.1 %d %s\r\nRetry-After: %u\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n",
                                  status, status_reason(status), retry_after_s);
            if (n > 0 && static_cast<size_t>(n) < sizeof(answer))
                (void)::send(fd, answer, static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        ::shutdown(fd, SHUT_WR);
    }
    ::close(fd);
}

} // namespace wraith
