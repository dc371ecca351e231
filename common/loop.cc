#include "common/loop.h"

namespace wraith {

namespace {

ReadyQueue* queue_of(struct ev_loop* loop) {
    return static_cast<ReadyQueue*>(ev_userdata(loop));
}

// libev's callback for every OrderedIo: queue it (or run it, on a loop without ordering).
void enqueue(struct ev_loop* loop, ev_io* w, int revents) {
    auto* o = reinterpret_cast<OrderedIo*>(w);
    ReadyQueue* q = queue_of(loop);
    if (!q) {
        o->cb(loop, w, revents);
        return;
    }
    if (o->queued >= 0) {
        q->entries[static_cast<size_t>(o->queued)].revents |= revents;
        return;
    }
    o->queued = static_cast<int32_t>(q->entries.size());
    q->entries.push_back({o, revents});
}

void drop(struct ev_loop* loop, OrderedIo& o) {
    if (o.queued < 0)
        return;
    if (ReadyQueue* q = queue_of(loop))
        q->entries[static_cast<size_t>(o.queued)].io = nullptr;
    o.queued = -1;
}

// The loop's invoke hook: libev's pending watchers (which queue the ordered ones in reverse
// readiness order), then the queue from its end, which is readiness order.
void invoke(struct ev_loop* loop) {
    ev_invoke_pending(loop);
    ReadyQueue* q = queue_of(loop);
    for (size_t i = q->entries.size(); i-- > 0;) {
        ReadyQueue::Entry e = q->entries[i];
        if (!e.io)
            continue;
        e.io->queued = -1;
        q->entries[i].io = nullptr;
        int revents = e.revents & e.io->io.events;
        if (revents && ev_is_active(&e.io->io))
            e.io->cb(loop, &e.io->io, revents);
    }
    q->entries.clear();
}

} // namespace

void io_init(OrderedIo& o, void (*cb)(struct ev_loop*, ev_io*, int), void* data) {
    ev_init(&o.io, enqueue);
    o.io.fd = -1;
    o.io.data = data;
    o.cb = cb;
    o.queued = -1;
}

void io_set(struct ev_loop* loop, OrderedIo& o, int fd, int events) {
    ev_io_stop(loop, &o.io);
    if (o.io.fd != fd)
        drop(loop, o);
    if (events) {
        ev_io_set(&o.io, fd, events);
        ev_io_start(loop, &o.io);
    }
}

void io_stop(struct ev_loop* loop, OrderedIo& o) {
    ev_io_stop(loop, &o.io);
    drop(loop, o);
}

void order_io(struct ev_loop* loop, ReadyQueue& queue) {
    ev_set_userdata(loop, &queue);
    ev_set_invoke_pending_cb(loop, invoke);
}

} // namespace wraith
