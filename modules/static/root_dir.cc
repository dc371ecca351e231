#include "modules/static/root_dir.h"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace wraith::static_files {

namespace {

std::atomic<bool> g_force_fallback{false};
std::atomic<uint64_t> g_next_id{1};

constexpr int kOpenFlags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;

int sys_openat2(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
    open_how how{};
    how.flags = flags;
    how.resolve = resolve;
    return static_cast<int>(syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

// Whether openat2 works here: older kernels answer ENOSYS, some container seccomp profiles
// EPERM.
bool probe_openat2(int dirfd) {
    int fd = sys_openat2(dirfd, ".", O_PATH | O_CLOEXEC, RESOLVE_BENEATH);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    return errno != ENOSYS && errno != EPERM;
}

} // namespace

void force_openat2_fallback_for_tests(bool force) {
    g_force_fallback = force;
}

RootDir::RootDir(int fd, std::string real_path, SymlinkPolicy policy, bool use_openat2)
    : fd_(fd), real_path_(std::move(real_path)), policy_(policy), use_openat2_(use_openat2),
      id_(g_next_id.fetch_add(1, std::memory_order_relaxed)) {}

RootDir::~RootDir() {
    close(fd_);
}

std::unique_ptr<RootDir> RootDir::open(const std::string& path, SymlinkPolicy policy,
                                       std::string& error) {
    char resolved[PATH_MAX];
    if (!realpath(path.c_str(), resolved)) {
        error = std::string("cannot resolve ") + path + ": " + std::strerror(errno);
        return nullptr;
    }
    int fd = ::open(resolved, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        error = std::string(errno == ENOTDIR ? "not a directory: " : "cannot open ") + path +
                (errno == ENOTDIR ? "" : std::string(": ") + std::strerror(errno));
        return nullptr;
    }
    bool use_openat2 = !g_force_fallback && probe_openat2(fd);
    return std::unique_ptr<RootDir>(new RootDir(fd, resolved, policy, use_openat2));
}

int RootDir::open_file(const char* relative) const {
    if (policy_ == SymlinkPolicy::any) {
        int fd = openat(fd_, relative, kOpenFlags);
        return fd >= 0 ? fd : -errno;
    }
    if (use_openat2_) {
        uint64_t resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        if (policy_ == SymlinkPolicy::never)
            resolve |= RESOLVE_NO_SYMLINKS;
        int fd;
        do {
            fd = sys_openat2(fd_, relative, kOpenFlags, resolve);
        } while (fd < 0 && errno == EAGAIN); // a concurrent rename raced the lookup
        if (fd >= 0)
            return fd;
        // RESOLVE_BENEATH refuses absolute symlinks even when they point inside the root;
        // decide those by where they really lead.
        if (errno == EXDEV && policy_ == SymlinkPolicy::within_root)
            return open_checking_target(relative);
        return -errno;
    }
    return policy_ == SymlinkPolicy::never ? open_walking_no_symlinks(relative)
                                           : open_checking_target(relative);
}

int RootDir::stat_path(const char* relative, struct stat& st) const {
    int flags = 0;
    if (policy_ != SymlinkPolicy::any) {
        // A '/' (even a trailing one, which makes the kernel follow a final symlink) means a
        // walk only openat2 or the component-wise fallback can police.
        if (std::strchr(relative, '/'))
            return stat_needs_open;
        flags = AT_SYMLINK_NOFOLLOW;
    }
    return fstatat(fd_, relative, &st, flags) == 0 ? 0 : -errno;
}

// Without openat2: descend one component at a time with O_NOFOLLOW, so a symlink anywhere
// in the path fails with ELOOP.
int RootDir::open_walking_no_symlinks(const char* relative) const {
    char buf[PATH_MAX];
    size_t len = std::strlen(relative);
    if (len >= sizeof buf)
        return -ENAMETOOLONG;
    std::memcpy(buf, relative, len + 1);
    int dir = fd_;
    char* comp = buf;
    while (true) {
        char* slash = std::strchr(comp, '/');
        if (!slash || slash[1] == '\0') {
            if (slash)
                *slash = '\0'; // "dir/": the last component is a directory
            int fd = openat(dir, comp, kOpenFlags | O_NOFOLLOW);
            int err = errno;
            if (dir != fd_)
                close(dir);
            return fd >= 0 ? fd : -err;
        }
        *slash = '\0';
        int next = openat(dir, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        if (dir != fd_)
            close(dir);
        if (next < 0)
            return -err;
        struct stat st {};
        if (fstat(next, &st) != 0 || !S_ISDIR(st.st_mode)) {
            bool link = S_ISLNK(st.st_mode);
            close(next);
            return link ? -ELOOP : -ENOTDIR;
        }
        dir = next;
        comp = slash + 1;
    }
}

// Opens following symlinks, then checks through /proc where the descriptor really points.
int RootDir::open_checking_target(const char* relative) const {
    int fd = openat(fd_, relative, kOpenFlags);
    if (fd < 0)
        return -errno;
    char link[64];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    char target[PATH_MAX];
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) {
        close(fd);
        return -EACCES; // cannot prove it is inside: refuse
    }
    std::string_view t(target, static_cast<size_t>(n));
    std::string_view root = real_path_;
    bool inside = t == root || root == "/" ||
                  (t.size() > root.size() && t.starts_with(root) && t[root.size()] == '/');
    if (!inside) {
        close(fd);
        return -EXDEV;
    }
    return fd;
}

} // namespace wraith::static_files
