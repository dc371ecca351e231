// The worker's sandbox, entered once the worker has dropped privileges and set
// PR_SET_NO_NEW_PRIVS, before it serves (docs/decisions.md, "Worker sandbox"):
//   - seccomp (server.seccomp, on by default): an allow-list of the system calls a worker
//     makes, by class; a class only an attacker would use (exec, fork, ptrace, mount,
//     namespaces, kernel modules, BPF, identity changes) kills the process; anything else
//     unlisted fails with EPERM.
//   - Landlock (server.landlock, off by default): the file system shrinks to the paths the
//     config names (static roots, certificates, read-only; log directories, writable) and the
//     few system files a worker reads (DNS, time zone).
#pragma once

#include <string>
#include <vector>

struct ev_loop;

namespace wraith {

struct Config;

// What the running kernel offers.
struct SandboxSupport {
    bool seccomp = false;  // seccomp filters (SECCOMP_RET_KILL_PROCESS: Linux 4.14)
    int landlock_abi = 0;  // 0: no Landlock (kernel without it, or disabled at boot)
};
// WRAITH_TEST_SANDBOX_SUPPORT=none makes it report nothing (tests of the warnings below).
SandboxSupport sandbox_support();

// What `wraith check` warns about: features the config asks for that this kernel lacks, one
// line each ("server.landlock: ...").
std::vector<std::string> sandbox_warnings(const Config& config);

// Confines this process as the config asks. False with *error when a requested feature could
// not be applied; *warning says what the kernel lacks (the worker then serves without it).
bool enter_sandbox(const Config& config, std::string* warning, std::string* error);

// Test-only path: with WRAITH_TEST_SANDBOX_PROBE set, SIGUSR2 makes the worker try what the
// sandbox forbids: "syscall" calls unshare(2) (seccomp kills the worker), "open:PATH" opens
// PATH for reading and logs the result (Landlock refuses it). Unset: nothing is installed.
void install_sandbox_probe(struct ev_loop* loop);

} // namespace wraith
