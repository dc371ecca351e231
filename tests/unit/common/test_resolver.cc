// The upstream resolver against a tiny DNS server on loopback: A and AAAA answers with their
// TTL, Happy Eyeballs order, NXDOMAIN, a silent server (timeout), literals, and that no
// answer is delivered inside resolve().
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/resolver.h"

using wraith::Resolver;

namespace {

// Answers A/AAAA for "app.test" (127.0.0.7, 127.0.0.8 / ::7, ttl 42) and "v4.test" (A only,
// ttl 9); NXDOMAIN for anything else; nothing at all for "silent.test".
class DnsServer {
public:
    DnsServer() {
        fd_ = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
        socklen_t len = sizeof(a);
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~DnsServer() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    int queries() const { return queries_; }

private:
    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 50) <= 0)
                continue;
            uint8_t q[512];
            sockaddr_in from{};
            socklen_t flen = sizeof(from);
            ssize_t n = recvfrom(fd_, q, sizeof(q), 0, reinterpret_cast<sockaddr*>(&from), &flen);
            if (n < 17)
                continue;
            ++queries_;
            // Question name, then type and class.
            size_t off = 12;
            std::string name;
            while (off < static_cast<size_t>(n) && q[off]) {
                if (!name.empty())
                    name += '.';
                name.append(reinterpret_cast<char*>(q + off + 1), q[off]);
                off += q[off] + 1;
            }
            size_t qend = off + 5;
            uint16_t type = static_cast<uint16_t>(q[off + 1] << 8 | q[off + 2]);
            if (name == "silent.test")
                continue;
            std::vector<uint8_t> r(q, q + qend);
            r[2] = 0x81; // response, recursion desired
            r[3] = 0x80; // recursion available, NOERROR
            std::vector<std::vector<uint8_t>> answers;
            uint32_t ttl = name == "v4.test" ? 9 : 42;
            if ((name == "app.test" || name == "v4.test") && type == 1) {
                answers.push_back({127, 0, 0, 7});
                if (name == "app.test")
                    answers.push_back({127, 0, 0, 8});
            } else if (name == "app.test" && type == 28) {
                std::vector<uint8_t> v6(16, 0);
                v6[15] = 7;
                answers.push_back(v6);
            } else if (name != "app.test" && name != "v4.test") {
                r[3] = 0x83; // NXDOMAIN
            }
            r[6] = 0;
            r[7] = static_cast<uint8_t>(answers.size());
            r[8] = r[9] = r[10] = r[11] = 0;
            for (const auto& data : answers) {
                uint8_t rr[] = {0xc0, 12, 0, static_cast<uint8_t>(type), 0, 1,
                                static_cast<uint8_t>(ttl >> 24), static_cast<uint8_t>(ttl >> 16),
                                static_cast<uint8_t>(ttl >> 8), static_cast<uint8_t>(ttl), 0,
                                static_cast<uint8_t>(data.size())};
                r.insert(r.end(), rr, rr + sizeof(rr));
                r.insert(r.end(), data.begin(), data.end());
            }
            sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
        }
    }
    int fd_;
    uint16_t port_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int> queries_{0};
};

std::string text(const sockaddr_storage& a) {
    char buf[64];
    if (a.ss_family == AF_INET6) {
        auto& s = reinterpret_cast<const sockaddr_in6&>(a);
        inet_ntop(AF_INET6, &s.sin6_addr, buf, sizeof(buf));
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s.sin6_port));
    }
    auto& s = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &s.sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(s.sin_port));
}

Resolver::Result run(Resolver& r, struct ev_loop* loop, const std::string& host) {
    Resolver::Result out;
    bool done = false;
    r.resolve(host, 8080, [&](const Resolver::Result& res) {
        out = res;
        done = true;
    });
    CHECK_FALSE(done); // never inside resolve()
    // Bounded by wall time, not by loop turns (a ticking timer makes turns short).
    ev_tstamp deadline = ev_time() + 10;
    while (!done && ev_time() < deadline)
        ev_run(loop, EVRUN_ONCE);
    REQUIRE(done);
    return out;
}

} // namespace

TEST_CASE("resolver: A and AAAA with TTL, IPv6 first then alternating") {
    DnsServer dns;
    struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
    {
        Resolver r(loop, dns.address(), 500);
        REQUIRE(r.ready());
        Resolver::Result res = run(r, loop, "app.test");
        REQUIRE(res.ok);
        REQUIRE(res.addrs.size() == 3);
        CHECK(text(res.addrs[0]) == "[::7]:8080");
        CHECK(text(res.addrs[1]) == "127.0.0.7:8080");
        CHECK(text(res.addrs[2]) == "127.0.0.8:8080");
        CHECK(res.ttl == 42);

        res = run(r, loop, "v4.test");
        REQUIRE(res.ok);
        CHECK(res.addrs.size() == 1);
        CHECK(res.ttl == 9);

        res = run(r, loop, "missing.test");
        CHECK_FALSE(res.ok);
        CHECK(res.error.find("not found") != std::string::npos);

        res = run(r, loop, "192.0.2.1");
        REQUIRE(res.ok);
        CHECK(text(res.addrs[0]) == "192.0.2.1:8080");
        res = run(r, loop, "[2001:db8::1]");
        REQUIRE(res.ok);
        CHECK(text(res.addrs[0]) == "[2001:db8::1]:8080");
    }
    ev_loop_destroy(loop);
}

TEST_CASE("resolver: a silent server times out without blocking the loop") {
    DnsServer dns;
    struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
    {
        Resolver r(loop, dns.address(), 100);
        int ticks = 0;
        ev_timer tick;
        ev_timer_init(&tick, [](struct ev_loop*, ev_timer* w, int) { ++*static_cast<int*>(w->data); },
                      0.01, 0.01);
        tick.data = &ticks;
        ev_timer_start(loop, &tick);
        Resolver::Result res = run(r, loop, "silent.test");
        ev_timer_stop(loop, &tick);
        CHECK_FALSE(res.ok);
        CHECK(ticks > 5); // the loop kept running while the query waited
    }
    ev_loop_destroy(loop);
}

TEST_CASE("resolver: destroying it with a query in flight calls nothing") {
    DnsServer dns;
    struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
    bool called = false;
    {
        Resolver r(loop, dns.address(), 500);
        r.resolve("silent.test", 80, [&](const Resolver::Result&) { called = true; });
        ev_run(loop, EVRUN_NOWAIT);
    }
    for (int i = 0; i < 5; ++i)
        ev_run(loop, EVRUN_NOWAIT);
    CHECK_FALSE(called);
    ev_loop_destroy(loop);
}

TEST_CASE("resolver: interleave keeps IPv6 first and alternates") {
    auto v4 = [](int n) {
        sockaddr_storage a{};
        auto& s = reinterpret_cast<sockaddr_in&>(a);
        s.sin_family = AF_INET;
        s.sin_addr.s_addr = htonl(0x0a000000 + n);
        return a;
    };
    auto v6 = [](int n) {
        sockaddr_storage a{};
        auto& s = reinterpret_cast<sockaddr_in6&>(a);
        s.sin6_family = AF_INET6;
        s.sin6_addr.s6_addr[15] = static_cast<uint8_t>(n);
        return a;
    };
    auto out = Resolver::interleave({v4(1), v4(2), v4(3), v6(1)});
    REQUIRE(out.size() == 4);
    CHECK(out[0].ss_family == AF_INET6);
    CHECK(out[1].ss_family == AF_INET);
    CHECK(out[2].ss_family == AF_INET);
}
