// Who a connection talks to, as every protocol records it: the ConnectionInfo handlers see,
// with the text forms of the peer address it points into ("[::1]:54321", "127.0.0.1").
#pragma once

#include <sys/socket.h>

#include "common/http.h"

namespace wraith {

class Transport;

struct Peer {
    ConnectionInfo info;
    char text[64]; // "[::1]:54321"; info.peer_ip is the address within it

    // Fills info from the accepted address, the socket's local address and the transport
    // (TLS: SNI, ALPN, client certificate). `id` numbers connections within a worker.
    void init(const sockaddr_storage& peer, const Transport& transport, uint64_t id);
    // QUIC: no transport socket of its own; the local address comes with each datagram.
    void init(const sockaddr_storage& peer, const sockaddr_storage& local, uint64_t id);
    // A migrated connection: new peer address, same id.
    void set_peer(const sockaddr_storage& peer, uint64_t id);
    Peer() = default;
    Peer(const Peer&) = delete; // info points into this object's buffers
    Peer& operator=(const Peer&) = delete;
};

} // namespace wraith
