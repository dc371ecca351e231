// Hooks for the sanitizer build (`make sanitize`, docs/decisions.md "Sanitizers"). In a normal
// build every function here is empty.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define WRAITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WRAITH_ASAN 1
#endif
#endif

#ifdef WRAITH_ASAN
#include <sanitizer/lsan_interface.h>
#include <sys/prctl.h>
#endif

namespace wraith {

// A forked worker leaves with _exit() (the master's atexit handlers and buffered stdio are not
// its own), which skips LeakSanitizer's exit-time check. Run it explicitly instead, so a worker
// that leaked reports like any other process. LeakSanitizer stops the world with ptrace from a
// helper task that shares the worker's memory; a worker that changed user is not dumpable, and
// the kernel refuses that ptrace, so the check makes it dumpable again first (sanitizer builds
// only: release workers stay undumpable).
inline void leak_check_before_exit() {
#ifdef WRAITH_ASAN
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    __lsan_do_leak_check();
#endif
}

} // namespace wraith
