#include "worker/peer.h"

#include <arpa/inet.h>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>

#include "worker/transport.h"

namespace wraith {

void Peer::init(const sockaddr_storage& peer, const Transport& transport, uint64_t id) {
    set_peer(peer, id);
    socklen_t len = sizeof(info.local);
    if (const sockaddr_storage* local = transport.local()) // a PROXY header named it
        info.local = *local;
    else
        getsockname(transport.fd(), reinterpret_cast<sockaddr*>(&info.local), &len);
    info.tls = transport.tls_info();
}

void Peer::init(const sockaddr_storage& peer, const sockaddr_storage& local, uint64_t id) {
    set_peer(peer, id);
    info.local = local;
}

void Peer::set_peer(const sockaddr_storage& peer, uint64_t id) {
    info.peer = peer;
    info.id = id;
    char ip[INET6_ADDRSTRLEN];
    bool bracketed = false;
    unsigned port = 0;
    if (peer.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
        port = ntohs(a->sin6_port);
        // A dual-stack socket's IPv4 client reads as IPv4 in logs and headers.
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
        } else {
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
            bracketed = true;
        }
    } else if (peer.ss_family == AF_INET) {
        auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
        port = ntohs(a->sin_port);
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    } else {
        snprintf(text, sizeof(text), "unix");
        info.peer_text = info.peer_ip = text;
        return;
    }
    int n = snprintf(text, sizeof(text), bracketed ? "[%s]:%u" : "%s:%u", ip, port);
    info.peer_text = {text, static_cast<size_t>(n)};
    info.peer_ip = {text + bracketed, strlen(ip)};
}

} // namespace wraith
