// Connection I/O in the order the kernel reported it. libev runs the watchers one poll made
// ready last-in-first-out (ev_invoke_pending walks its pending array from the end), so in a
// busy loop the connection that became ready first was served last: a request's wait then
// depended on where it fell in the batch, and the latency tail grew (a proxied request waits
// twice, on the client's socket and the upstream's). Watchers set up here run first-in-
// first-out instead: their libev callback only queues them, and the loop's invoke hook runs
// the queue in readiness order right after libev's own pending watchers.
//
// Only loops that installed the hook (the worker's) order anything; elsewhere an OrderedIo
// calls its callback directly.
#pragma once

#include <ev.h>

#include <cstdint>
#include <vector>

namespace wraith {

struct OrderedIo {
    ev_io io; // first member: libev sees an ordinary watcher; callbacks get &io
    void (*cb)(struct ev_loop* loop, ev_io* w, int revents) = nullptr;
    int32_t queued = -1; // index in the loop's ready queue, or -1
};

// ev_init + data, for an OrderedIo.
void io_init(OrderedIo& o, void (*cb)(struct ev_loop*, ev_io*, int), void* data);
// (Re)arms `o` for `events` on `fd` (0: stops it). A callback already queued stays queued
// and gets the events still wanted, unless the fd changed.
void io_set(struct ev_loop* loop, OrderedIo& o, int fd, int events);
// Stops `o` for good (before its owner goes away): a queued callback is dropped.
void io_stop(struct ev_loop* loop, OrderedIo& o);

// Installs ordered dispatch on `loop` (ev_set_userdata and the invoke hook): the worker's
// loop. `queue` must outlive the loop.
struct ReadyQueue {
    struct Entry {
        OrderedIo* io; // null: stopped after it was queued
        int revents;
    };
    std::vector<Entry> entries;
};
void order_io(struct ev_loop* loop, ReadyQueue& queue);

} // namespace wraith
