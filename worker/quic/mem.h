// The allocator ngtcp2 and nghttp3 use in a worker. Small blocks (up to 1 KiB, by 16-byte
// classes) are kept on per-class free lists and handed out again, so the header buffers,
// frames and acknowledgement records each request and packet allocate and free do not go
// through malloc under load (measured on ngtcp2 1.11 / nghttp3 1.8: malloc and free took
// ~5.7% of a busy worker's CPU, this pool ~2.5%). Everything else goes to malloc, packed
// with the rest of the heap: the libraries' pool blocks of 1.x are a few KiB each and mostly
// written, so whole pages of their own would cost an idle connection more than they save
// (docs/decisions.md). A worker is one thread: nothing here is locked. trim_mem() (the
// worker's housekeeping) returns kept blocks to malloc.
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstddef>

namespace wraith::quic {

const ngtcp2_mem* transport_mem();
const nghttp3_mem* http3_mem();
// Gives kept blocks back to malloc; returns how many bytes went back.
size_t trim_mem();

} // namespace wraith::quic
