#include "worker/sandbox.h"

#include <ev.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/log.h"
#include "common/module.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) // ABI 3
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) // ABI 5
#endif

namespace wraith {

namespace {

// ---- seccomp -------------------------------------------------------------------------------

// The classes a worker needs, allowed whatever their arguments.
constexpr const char* kMemory[] = {"brk", "mmap", "munmap", "mremap", "mprotect", "madvise"};
constexpr const char* kTime[] = {"clock_gettime", "clock_getres", "gettimeofday", "time",
                                 "nanosleep", "clock_nanosleep"};
// Reading and writing descriptors, opening and inspecting files (static files, logs, the
// proxy's spool, DNS files).
constexpr const char* kFiles[] = {
    "read",      "readv",        "pread64",    "preadv",     "preadv2",    "write",
    "writev",    "pwrite64",     "pwritev",    "pwritev2",   "lseek",      "close",
    "close_range", "sendfile",   "open",       "openat",     "openat2",    "stat",
    "lstat",     "fstat",        "newfstatat", "statx",      "getdents64", "readlink",
    "readlinkat", "access",      "faccessat",  "faccessat2", "fcntl",      "dup",
    "dup2",      "dup3",         "fadvise64",  "fstatfs",    "fsync",      "fdatasync"};
// Sockets the worker already has (accept, QUIC) and the ones it makes (upstreams, DNS).
// socket(2) itself is allowed below for IP and Unix families only.
constexpr const char* kNetwork[] = {
    "connect",   "accept",      "accept4",     "sendto",      "recvfrom",    "sendmsg",
    "recvmsg",   "sendmmsg",    "recvmmsg",    "shutdown",    "getsockname", "getpeername",
    "setsockopt", "getsockopt"};
// The event loop (libev on epoll, its wake-up pipe or eventfd, timerfd for clock jumps).
constexpr const char* kEvents[] = {
    "epoll_create", "epoll_create1", "epoll_ctl",        "epoll_wait",      "epoll_pwait",
    "epoll_pwait2", "eventfd",       "eventfd2",         "pipe",            "pipe2",
    "poll",         "ppoll",         "select",           "pselect6",        "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "signalfd",    "signalfd4"};
constexpr const char* kSignals[] = {"rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
                                    "rt_sigpending", "sigaltstack"};
// The process about itself, and what the C library and the shared-memory locks use.
constexpr const char* kProcess[] = {
    "getpid",   "gettid",     "getppid",  "getuid",       "geteuid",    "getgid",
    "getegid",  "getresuid",  "getresgid", "getgroups",   "getrlimit",  "getrusage",
    "uname",    "sysinfo",    "sched_getaffinity", "sched_yield", "getrandom", "futex",
    "set_robust_list", "get_robust_list", "rseq", "restart_syscall", "exit", "exit_group",
    "getcwd",   "umask"};

// What only an attacker would do: the process dies (SECCOMP_RET_KILL_PROCESS), and the master
// logs the signal (SIGSYS) and starts a fresh worker.
constexpr const char* kKill[] = {
    // Running something else.
    "execve", "execveat",
#ifndef WRAITH_SANITIZE
    // New processes and debugging (LeakSanitizer needs both: see below).
    "fork", "vfork", "clone", "clone3", "ptrace",
#endif
    "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    "process_madvise",
    // Mounts, namespaces and the kernel itself.
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "unshare", "setns", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "acct", "quotactl", "syslog", "vhangup", "iopl", "ioperm", "personality",
    "open_by_handle_at", "name_to_handle_at", "mknod", "mknodat",
    // Identity, keys, clocks and names of the machine.
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "capset", "keyctl", "add_key", "request_key", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname"};

bool add_rule(scmp_filter_ctx ctx, uint32_t action, const char* name,
              std::initializer_list<scmp_arg_cmp> args = {}) {
    // libseccomp refuses (EACCES) a rule whose action is the filter's default: the sanitizer
    // build's default allows, so its allow rules are already in force.
    uint32_t unlisted = 0;
    if (seccomp_attr_get(ctx, SCMP_FLTATR_ACT_DEFAULT, &unlisted) == 0 && unlisted == action)
        return true;
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return true; // not a system call on this architecture
    int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()),
                                    args.size() ? args.begin() : nullptr);
    return rc == 0;
}

bool apply_seccomp(std::string* error) {
#ifdef WRAITH_SANITIZE
    // AddressSanitizer and LeakSanitizer make system calls of their own (LeakSanitizer
    // clones a tracer that ptraces the worker at exit): the sanitizer build allows what is not
    // listed and kills only the attacker's class minus clone and ptrace. The release build's
    // tests run the strict filter.
    const uint32_t unlisted = SCMP_ACT_ALLOW;
#else
    const uint32_t unlisted = SCMP_ACT_ERRNO(EPERM);
#endif
    scmp_filter_ctx ctx = seccomp_init(unlisted);
    if (!ctx) {
        *error = "seccomp_init failed";
        return false;
    }
    bool ok = true;
    for (const char* n : kMemory)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    for (const char* n : kTime)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    for (const char* n : kFiles)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    for (const char* n : kNetwork)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    for (const char* n : kEvents)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    for (const char* n : kSignals)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    for (const char* n : kProcess)
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, n);
    // Arguments matter here.
    for (int family : {AF_INET, AF_INET6, AF_UNIX}) // no netlink, no raw packets
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, "socket",
                       {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))});
    for (unsigned long request : {FIONREAD, FIONBIO, TCGETS}) // readiness, non-blocking, isatty
        ok &= add_rule(ctx, SCMP_ACT_ALLOW, "ioctl",
                       {SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(request))});
    const auto self = static_cast<scmp_datum_t>(getpid());
    ok &= add_rule(ctx, SCMP_ACT_ALLOW, "kill", {SCMP_A0(SCMP_CMP_EQ, self)}); // raise(), abort()
    ok &= add_rule(ctx, SCMP_ACT_ALLOW, "tgkill", {SCMP_A0(SCMP_CMP_EQ, self)});
    ok &= add_rule(ctx, SCMP_ACT_ALLOW, "prlimit64", {SCMP_A0(SCMP_CMP_EQ, 0)}); // own limits
    for (const char* n : kKill)
        ok &= add_rule(ctx, SCMP_ACT_KILL_PROCESS, n);
    if (!ok) {
        seccomp_release(ctx);
        *error = "seccomp: cannot build the filter";
        return false;
    }
    int rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc != 0) {
        *error = std::string("seccomp: cannot load the filter: ") + std::strerror(-rc);
        return false;
    }
    return true;
}

// ---- Landlock ------------------------------------------------------------------------------

int landlock_abi() {
    long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : static_cast<int>(abi);
}

uint64_t handled_access(int abi) {
    uint64_t fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                  LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                  LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                  LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
                  LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                  LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                  LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2)
        fs |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return fs;
}

// The directory a log file lives in (a log is reopened, or made anew after rotation).
std::string parent_of(const std::string& file) {
    size_t slash = file.rfind('/');
    return slash == std::string::npos || slash == 0 ? "/" : file.substr(0, slash);
}

bool log_file(const std::string& path) {
    return !path.empty() && path != "off" && path != "stderr" && path != "stdout";
}

std::vector<SandboxPath> landlock_paths(const Config& config) {
    std::vector<SandboxPath> paths;
    for (const ModuleSpec& m : ModuleRegistry::instance().all())
        if (m.sandbox_paths)
            m.sandbox_paths(config, paths);
    if (log_file(config.server.error_log))
        paths.push_back({parent_of(config.server.error_log), true});
    if (log_file(config.access_log.path))
        paths.push_back({parent_of(config.access_log.path), true});
    for (const auto& site : config.sites)
        if (log_file(site->access_log.path))
            paths.push_back({parent_of(site->access_log.path), true});
    paths.push_back({config.server.cert_dir, false});
    for (const std::string& p : config.server.landlock_allow)
        paths.push_back({p, false});
    // What the C library, c-ares and TLS read while serving.
    for (const char* p : {"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
                          "/etc/gai.conf", "/etc/localtime", "/usr/share/zoneinfo", "/etc/ssl",
                          "/usr/lib/ssl", "/dev/urandom"})
        paths.push_back({p, false});
    paths.push_back({"/dev/null", true});
#ifdef WRAITH_SANITIZE
    // Sanitizer reports: /proc/self/maps for symbols, and the directory of log_path.
    paths.push_back({"/proc", false});
    for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS"})
        if (const char* opts = getenv(var)) {
            std::string_view o(opts);
            size_t at = o.find("log_path=");
            if (at != std::string_view::npos) {
                std::string_view v = o.substr(at + 9);
                v = v.substr(0, v.find(':'));
                paths.push_back({parent_of(std::string(v)), true});
            }
        }
#endif
    return paths;
}

bool apply_landlock(const Config& config, int abi, std::string* error) {
    const uint64_t handled = handled_access(abi);
    landlock_ruleset_attr attr{};
    attr.handled_access_fs = handled;
    int ruleset =
        static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0));
    if (ruleset < 0) {
        *error = std::string("landlock: cannot make a ruleset: ") + std::strerror(errno);
        return false;
    }
    const uint64_t file_rights = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                 LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_TRUNCATE |
                                 LANDLOCK_ACCESS_FS_IOCTL_DEV;
    for (const SandboxPath& p : landlock_paths(config)) {
        int fd = ::open(p.path.c_str(), O_PATH | O_CLOEXEC);
        if (fd < 0)
            continue; // optional system files; configured paths were checked at load
        struct stat st;
        const bool dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        uint64_t rights = LANDLOCK_ACCESS_FS_READ_FILE | (dir ? LANDLOCK_ACCESS_FS_READ_DIR : 0);
        if (p.write)
            rights |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                      (dir ? LANDLOCK_ACCESS_FS_MAKE_REG : 0);
        if (!dir)
            rights &= file_rights;
        landlock_path_beneath_attr rule{};
        rule.allowed_access = rights & handled;
        rule.parent_fd = fd;
        long rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
        int err = errno;
        ::close(fd);
        if (rc != 0) {
            *error = "landlock: cannot allow " + p.path + ": " + std::strerror(err);
            ::close(ruleset);
            return false;
        }
    }
    long rc = syscall(SYS_landlock_restrict_self, ruleset, 0);
    int err = errno;
    ::close(ruleset);
    if (rc != 0) {
        *error = std::string("landlock: cannot restrict the worker: ") + std::strerror(err);
        return false;
    }
    return true;
}

// ---- the test-only probe -------------------------------------------------------------------

void on_probe(struct ev_loop*, ev_signal*, int) {
    const char* what = getenv("WRAITH_TEST_SANDBOX_PROBE");
    if (!what)
        return;
    std::string_view probe(what);
    if (probe == "syscall") {
        WLOG_WARN("sandbox probe: calling unshare(2)");
        long rc = syscall(SYS_unshare, 0);
        // Only reached without a filter: unshare(0) changes nothing.
        WLOG_ERROR("sandbox probe: unshare(2) returned %ld: seccomp is not active", rc);
    } else if (probe.starts_with("open:")) {
        std::string path(probe.substr(5));
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        int err = errno;
        if (fd >= 0) {
            WLOG_WARN("sandbox probe: opened %s", path.c_str());
            ::close(fd);
        } else {
            WLOG_WARN("sandbox probe: cannot open %s: %s", path.c_str(), std::strerror(err));
        }
    }
}

} // namespace

SandboxSupport sandbox_support() {
    SandboxSupport s;
    if (const char* fake = getenv("WRAITH_TEST_SANDBOX_SUPPORT");
        fake && std::string_view(fake) == "none")
        return s;
    s.seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
    s.landlock_abi = landlock_abi();
    return s;
}

std::vector<std::string> sandbox_warnings(const Config& config) {
    std::vector<std::string> out;
    const SandboxSupport s = sandbox_support();
    if (config.server.seccomp && !s.seccomp)
        out.push_back("server.seccomp: this kernel has no seccomp filters (CONFIG_SECCOMP_FILTER); "
                      "workers will run without the system-call allow-list");
    if (config.server.landlock && s.landlock_abi == 0)
        out.push_back("server.landlock: this kernel has no Landlock (Linux 5.13 or later, with "
                      "\"landlock\" in the lsm= boot parameter); workers will run without file "
                      "system confinement");
    return out;
}

bool enter_sandbox(const Config& config, std::string* warning, std::string* error) {
    const SandboxSupport support = sandbox_support();
    std::string missing;
    // Landlock first: it needs landlock_* system calls, which the seccomp filter does not list.
    if (config.server.landlock) {
        if (support.landlock_abi == 0)
            missing += "Landlock (server.landlock)";
        else if (!apply_landlock(config, support.landlock_abi, error))
            return false;
    }
    if (config.server.seccomp) {
        if (!support.seccomp)
            missing += std::string(missing.empty() ? "" : " and ") + "seccomp (server.seccomp)";
        else if (!apply_seccomp(error))
            return false;
    }
    if (!missing.empty())
        *warning = "the kernel has no " + missing + "; the worker runs without it";
    return true;
}

void install_sandbox_probe(struct ev_loop* loop) {
    if (!getenv("WRAITH_TEST_SANDBOX_PROBE"))
        return;
    static ev_signal probe; // one per worker process, for its life
    ev_signal_init(&probe, on_probe, SIGUSR2);
    ev_signal_start(loop, &probe);
    ev_unref(loop);
}

} // namespace wraith
