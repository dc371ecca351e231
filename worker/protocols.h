// Where a ready transport (plain TCP, or TLS after its handshake) meets its protocol: a stream
// (L4) protocol the listener carries (by ALPN, or as its only protocol), else ALPN "h2" (or
// the h2c preface) → HTTP/2, anything else → HTTP/1.1.
#pragma once

#include <memory>
#include <string_view>
#include <sys/socket.h>

#include "common/config.h"
#include "worker/transport.h"

namespace wraith {

class Worker;

// Whether this build speaks `alpn_name` ("http/1.1", "h2"); ALPN offers only these.
bool protocol_implemented(std::string_view alpn_name);
// Whether a TLS connection on `listen` may negotiate `alpn_name`: an HTTP protocol this build
// speaks, or the ALPN id of a stream protocol the listener carries.
bool offers_alpn(const ListenConfig& listen, std::string_view alpn_name);

// Creates, registers and starts the protocol connection. `already_read` holds bytes consumed
// from the transport before the protocol was known (the h2c preface).
void start_protocol(Worker& worker, std::unique_ptr<Transport> transport,
                    const sockaddr_storage& peer, const ListenConfig& listen, std::string_view alpn,
                    std::string_view already_read);

} // namespace wraith
