// The allocator ngtcp2 and nghttp3 use in a worker. Small blocks (up to 1 KiB, by 16-byte
// classes) are kept on per-class free lists and handed out again, so the header buffers,
// frames and acknowledgement records each request and packet allocate and free do not go
// through malloc's slower paths under load. Blocks of a page or more (the libraries' skip-list
// and object pools, 4-64 KiB each, of which an idle connection touches a few hundred bytes)
// are whole pages the worker maps itself, reused only for blocks of the same size: pages
// nobody writes never become resident, which is most of an idle connection's pools. The rest
// goes to malloc. A worker is one thread: nothing here is locked. trim_mem() (the worker's
// housekeeping) returns kept small blocks to malloc and kept page blocks' pages to the kernel.
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstddef>

namespace wraith::quic {

const ngtcp2_mem* transport_mem();
const nghttp3_mem* http3_mem();
// Gives kept blocks back; returns how many bytes went back to malloc or the kernel.
size_t trim_mem();

} // namespace wraith::quic
