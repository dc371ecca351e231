// Forwarding a query to the [dns] upstreams from a worker's loop: UDP first, TCP when the
// answer comes back truncated (RFC 7766 §5), each try bounded by `timeout`; an upstream that
// times out or refuses is skipped for `fail_timeout` by this worker and the next is tried.
// Towards the upstream the query carries a random ID (the client's is restored in the answer),
// goes out from a fresh socket (a random source port) connected to the upstream, and an answer
// counts only from the upstream's address with the ID and question asked (RFC 5452); anything
// else is dropped and counted, and the wait goes on.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ev.h>

#include "common/module.h"
#include "modules/dns/cache.h"
#include "modules/dns/dns_config.h"
#include "modules/dns/message.h"

namespace wraith::dns {

// The DNS module's per-worker state: the upstreams' health as this worker saw it, the shared
// cache, and a receive buffer for UDP answers.
class DnsWorker final : public ModuleWorker {
public:
    DnsWorker(struct ev_loop* loop, std::shared_ptr<const Config> config, const DnsConfig& dns,
              Cache cache)
        : loop(loop), config(std::move(config)), dns(dns), cache(cache),
          down_until_ms(dns.upstreams.size(), 0), receive_buffer(kMaxMessage + 1) {}

    struct ev_loop* loop;
    std::shared_ptr<const Config> config; // the worker's generation: keeps `dns` alive
    const DnsConfig& dns;
    Cache cache;
    std::vector<int64_t> down_until_ms; // per upstream: skipped until then (monotonic_ms)
    std::vector<char> receive_buffer;   // one UDP datagram; the loop reads one at a time
};

// One query on its way to the upstreams; lives in the request's arena.
class Forward {
public:
    // `query`: the client's message (parsed into `question`); `done` runs once on the loop,
    // with ok() telling whether answer() holds an upstream's answer.
    Forward(DnsWorker& worker, std::string_view query, const Message& question,
            std::function<void()> done);
    ~Forward();
    Forward(const Forward&) = delete;
    Forward& operator=(const Forward&) = delete;

    // Starts the first try. `done` may run before start() returns when every upstream fails
    // at once (no route to any of them).
    void start();
    // The exchange is gone: no more tries, `done` never runs.
    void cancel();

    bool ok() const { return ok_; }
    // The answer with the client's ID, validated by parse().
    const std::string& answer() const { return answer_; }
    const Message& answer_message() const { return parsed_; }
    // The upstream that answered (or was tried last), as written in [dns].
    std::string_view upstream() const;
    bool used_tcp() const { return tcp_; }

private:
    static void on_io(struct ev_loop*, ev_io* w, int events);
    static void on_timer(struct ev_loop*, ev_timer* w, int);
    void next_upstream();
    bool try_udp();
    bool try_tcp();
    void read_udp();
    void tcp_writable();
    void tcp_readable();
    // A reply from the upstream: true when it was accepted (finish() ran or TCP started).
    bool consider(std::string_view reply);
    void fail_current(bool timed_out);
    void close_socket();
    void finish(bool ok);

    DnsWorker& worker_;
    std::string_view query_;
    const Message& question_;
    std::function<void()> done_;
    std::array<uint8_t, kMaxUpstreams> order_{}; // upstream indexes, healthy ones first
    size_t tries_ = 0;                           // order_[tries_ - 1] is the current one
    size_t count_ = 0;
    uint16_t sent_id_ = 0;
    bool tcp_ = false;
    bool ok_ = false;
    bool finished_ = false;
    int fd_ = -1;
    ev_io io_{};
    ev_timer timer_{};
    std::string out_; // TCP: the length-prefixed query; what is left to write
    size_t written_ = 0;
    std::string in_; // TCP: what was read so far
    std::string answer_;
    Message parsed_;
};

} // namespace wraith::dns
