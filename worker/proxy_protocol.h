// The PROXY protocol (HAProxy's spec, versions 1 and 2): the header an L4 balancer sends
// before the client's first byte, naming the client's address and the address it connected
// to. A listener with `proxy_protocol = true` reads it before TLS and HTTP
// (proxy_protocol_stage.h), and the address it carries is the connection's peer from then on.
// The parser takes untrusted bytes (tests/fuzz/fuzz_proxy_protocol.cc): it reads at most
// kMaxHeader bytes and never allocates.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string_view>

namespace wraith::proxy_protocol {

// v1 lines are at most 107 bytes; v2 headers carry TLVs we skip, bounded here.
constexpr size_t kMaxHeader = 4096;

enum class Result { need_more, done, invalid };

struct Header {
    size_t length = 0;              // bytes of the header, to consume from the stream
    bool has_addresses = false;     // false: LOCAL (a health check) or UNKNOWN: keep the real peer
    sockaddr_storage source{};      // the client
    sockaddr_storage destination{}; // the address the client connected to
};

// Parses the header at the start of `data`. need_more: a prefix of a valid header (read more);
// invalid: not a PROXY header (`why` says what is wrong, a static string).
Result parse(std::string_view data, Header& out, const char** why);

} // namespace wraith::proxy_protocol
