#include "worker/quic/random.h"

#include <sys/random.h>

namespace wraith::quic {

void fill_random(uint8_t* p, size_t n) {
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r <= 0)
            return;
        p += r;
        n -= static_cast<size_t>(r);
    }
}

} // namespace wraith::quic
