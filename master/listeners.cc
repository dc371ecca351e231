#include "master/listeners.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <set>
#include <unistd.h>

namespace wraith {

ListenerSet::~ListenerSet() {
    for (auto& [k, sock] : sockets_)
        ::close(sock.fd);
}

std::string ListenerSet::key(const ListenConfig& l) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (l.addr.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<const sockaddr_in6*>(&l.addr);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    } else {
        auto* a = reinterpret_cast<const sockaddr_in*>(&l.addr);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    }
    return std::string("tcp ") + host + " " + std::to_string(port);
}

static int bind_one(const ListenConfig& l, std::string* error) {
    int fd = ::socket(l.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = l.address + ": socket: " + std::strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l.addr.ss_family == AF_INET6) {
        int v6only = l.ipv6_only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    // Wake a worker only when a request has arrived, not on a bare handshake.
    int defer_secs = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_secs, sizeof(defer_secs));
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len) != 0) {
        *error = l.pos.file + ":" + std::to_string(l.pos.line) + ":" +
                 std::to_string(l.pos.column) + ": cannot listen on " + l.address + ": " +
                 std::strerror(errno);
        ::close(fd);
        return -1;
    }
    if (::listen(fd, l.backlog) != 0) {
        *error = l.address + ": listen: " + std::strerror(errno);
        ::close(fd);
        return -1;
    }
    return fd;
}

std::vector<int> ListenerSet::acquire(const Config& config, std::string* error) {
    std::vector<int> fds;
    std::vector<std::string> fresh;
    auto undo = [&] {
        for (const auto& f : fresh) {
            ::close(sockets_[f].fd);
            sockets_.erase(f);
        }
        return std::vector<int>{};
    };
    for (const ListenConfig& l : config.listeners) {
        std::string k = key(l);
        auto it = sockets_.find(k);
        if (it != sockets_.end()) {
            Socket& sock = it->second;
            if (sock.ipv6_only != l.ipv6_only) {
                // A bound socket cannot change IPV6_V6ONLY, and a second one cannot bind.
                *error = l.pos.file + ":" + std::to_string(l.pos.line) + ":" +
                         std::to_string(l.pos.column) + ": changing ipv6_only of " + l.address +
                         " needs a restart";
                return undo();
            }
            if (sock.backlog != l.backlog && ::listen(sock.fd, l.backlog) == 0)
                sock.backlog = l.backlog; // listen() again resizes the queue in place
            fds.push_back(sock.fd);
            continue;
        }
        int fd = bind_one(l, error);
        if (fd < 0)
            return undo();
        sockets_[k] = Socket{fd, l.ipv6_only, l.backlog};
        fresh.push_back(k);
        fds.push_back(fd);
    }
    return fds;
}

void ListenerSet::release_unused(const std::vector<const Config*>& in_use) {
    std::set<std::string> used;
    for (const Config* c : in_use)
        for (const ListenConfig& l : c->listeners)
            used.insert(key(l));
    for (auto it = sockets_.begin(); it != sockets_.end();) {
        if (!used.count(it->first)) {
            ::close(it->second.fd);
            it = sockets_.erase(it);
        } else {
            ++it;
        }
    }
}

std::map<std::string, int> ListenerSet::by_key() const {
    std::map<std::string, int> out;
    for (const auto& [k, sock] : sockets_)
        out[k] = sock.fd;
    return out;
}

void ListenerSet::adopt(const std::map<std::string, int>& sockets) {
    for (const auto& [k, fd] : sockets) {
        Socket sock;
        sock.fd = fd;
        int v6only = 0;
        socklen_t len = sizeof(v6only);
        if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) == 0)
            sock.ipv6_only = v6only != 0;
        sock.backlog = 0; // unknown: acquire() sets the configured one again
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        sockets_[k] = sock;
    }
}

std::vector<int> ListenerSet::all_fds() const {
    std::vector<int> v;
    for (const auto& [k, sock] : sockets_)
        v.push_back(sock.fd);
    return v;
}

} // namespace wraith
