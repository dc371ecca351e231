#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "common/loop.h"

using wraith::io_init;
using wraith::io_set;
using wraith::io_stop;
using wraith::order_io;
using wraith::OrderedIo;
using wraith::ReadyQueue;

namespace {

// N socket pairs; watcher i waits on the read end of pair i and records its index when run.
struct Fixture {
    static constexpr int kPairs = 6;
    struct ev_loop* loop = ev_loop_new(EVBACKEND_EPOLL);
    ReadyQueue queue;
    int fds[kPairs][2];
    OrderedIo io[kPairs];
    std::vector<int> ran;
    // Run by watcher `stopper` before recording: stops watcher `victim`.
    int stopper = -1;
    int victim = -1;

    explicit Fixture(bool ordered) {
        if (ordered)
            order_io(loop, queue);
        for (int i = 0; i < kPairs; ++i) {
            REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds[i]) == 0);
            io_init(io[i], on_io, this);
            io_set(loop, io[i], fds[i][0], EV_READ);
        }
        // libev hands its fds to epoll at the start of an iteration; one that is ready by
        // then is reported in registration order, whatever order it became ready in.
        ev_run(loop, EVRUN_NOWAIT);
    }
    ~Fixture() {
        for (int i = 0; i < kPairs; ++i) {
            io_stop(loop, io[i]);
            close(fds[i][0]);
            close(fds[i][1]);
        }
        ev_loop_destroy(loop);
    }

    static void on_io(struct ev_loop* loop, ev_io* w, int) {
        auto* f = static_cast<Fixture*>(w->data);
        int i = static_cast<int>(reinterpret_cast<OrderedIo*>(w) - f->io);
        char c;
        (void)read(f->fds[i][0], &c, 1);
        if (i == f->stopper)
            io_stop(loop, f->io[f->victim]);
        f->ran.push_back(i);
    }

    // Makes pairs readable in `order` (epoll reports them so), then runs one loop iteration.
    void ready_in(const std::vector<int>& order) {
        for (int i : order)
            REQUIRE(write(fds[i][1], "x", 1) == 1);
        ev_run(loop, EVRUN_ONCE);
    }
};

} // namespace

TEST_CASE("ordered watchers run in the order the kernel reported readiness", "[loop]") {
    Fixture f(true);
    f.ready_in({3, 0, 5, 1, 4, 2});
    CHECK(f.ran == std::vector<int>{3, 0, 5, 1, 4, 2});
}

TEST_CASE("without the hook an OrderedIo runs as libev orders it (last ready first)", "[loop]") {
    // What the ordering exists for: libev alone serves the batch backwards.
    Fixture f(false);
    f.ready_in({3, 0, 5, 1, 4, 2});
    CHECK(f.ran == std::vector<int>{2, 4, 1, 5, 0, 3});
}

TEST_CASE("a watcher stopped while queued is not run", "[loop]") {
    Fixture f(true);
    f.stopper = 0;
    f.victim = 4;
    f.ready_in({0, 1, 4, 2});
    CHECK(f.ran == std::vector<int>{0, 1, 2});
}

TEST_CASE("a queued watcher whose interest changed gets only what it still wants", "[loop]") {
    Fixture f(true);
    // Readable, but by the time its turn comes it asks for writability only: not run this
    // round for the read; the write interest is reported by a later poll.
    REQUIRE(write(f.fds[1][1], "x", 1) == 1);
    REQUIRE(write(f.fds[2][1], "x", 1) == 1);
    f.stopper = 1;
    f.victim = 5; // not ready: stopping it is harmless
    ev_run(f.loop, EVRUN_NOWAIT);
    CHECK(f.ran == std::vector<int>{1, 2});
    f.ran.clear();
    REQUIRE(write(f.fds[3][1], "x", 1) == 1);
    REQUIRE(write(f.fds[4][1], "x", 1) == 1);
    // Watcher 3 runs first and moves watcher 4 to EV_WRITE before 4's turn.
    f.stopper = -1;
    struct Mover {
        static void on_io(struct ev_loop* loop, ev_io* w, int revents) {
            auto* fx = static_cast<Fixture*>(w->data);
            Fixture::on_io(loop, w, revents);
            io_set(loop, fx->io[4], fx->fds[4][0], EV_WRITE);
        }
    };
    f.io[3].cb = Mover::on_io;
    ev_run(f.loop, EVRUN_NOWAIT);
    CHECK(f.ran == std::vector<int>{3});
    f.ran.clear();
    ev_run(f.loop, EVRUN_NOWAIT); // now writable: reported and run
    CHECK(f.ran == std::vector<int>{4});
}
