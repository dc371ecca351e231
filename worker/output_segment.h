// One piece of a connection's or stream's output queue: a range of its memory buffer, or a
// range of a file sent with sendfile (or read into the TLS record). HTTP/1.1, HTTP/2, HTTP/3
// and the stream layer queue responses as lists of these.
#pragma once

#include <cstddef>
#include <sys/types.h>

namespace wraith {

struct OutputSegment {
    int fd;       // -1: memory
    off_t offset; // file offset, or offset into the owner's memory buffer
    size_t len;
};

} // namespace wraith
