// Base of every client connection a worker owns, whatever its protocol. The worker keeps them
// in an intrusive list so it can drain or close them all, and runs their deferred work (the
// end of an exchange, deletion) from its prepare watcher, outside any handler's call stack.
#pragma once

#include "common/status.h"

namespace wraith {

class Connection {
public:
    virtual ~Connection() = default;
    // The worker is draining: finish the exchange in flight, then close; close now if idle.
    virtual void drain() = 0;
    // Fast stop: close immediately.
    virtual void close_now() = 0;
    // Work queued with Worker::defer().
    virtual void run_deferred() = 0;

    Connection* prev_ = nullptr; // worker's list of live connections
    Connection* next_ = nullptr;
    Connection* deferred_next_ = nullptr; // worker's deferred queue
    bool deferred_ = false;
    ConnectionKind kind_ = ConnectionKind::other; // set by Worker::add_connection
};

} // namespace wraith
