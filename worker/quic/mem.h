// The allocator ngtcp2 and nghttp3 use in a worker: small blocks (up to 1 KiB, by 16-byte
// classes) are kept on per-class free lists and handed out again, so the header buffers,
// frames and acknowledgement records each request and packet allocate and free do not go
// through malloc's slower paths under load. Larger blocks go to malloc. A worker is one
// thread: nothing here is locked. Kept blocks are bounded per class and returned to malloc
// by trim() (the worker's housekeeping).
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstddef>

namespace wraith::quic {

const ngtcp2_mem* transport_mem();
const nghttp3_mem* http3_mem();
// Frees every kept block; returns how many bytes went back to malloc.
size_t trim_mem();

} // namespace wraith::quic
