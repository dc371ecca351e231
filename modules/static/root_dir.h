// A document root opened once at config time, and the only way the static handler opens files
// below it: every lookup is resolved relative to the root's descriptor under the configured
// symlink policy, so no request path can name a file outside the root.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <sys/stat.h>

namespace wraith::static_files {

enum class SymlinkPolicy {
    within_root, // follow a symlink only if its fully resolved target stays inside the root
    never,       // any symlink in the path makes the file not found
    any,         // follow freely (the administrator vouches for every link)
};

class RootDir {
public:
    // Opens the directory `path` (absolute). Nullptr with `error` set when it is missing, not
    // a directory or unreadable.
    static std::unique_ptr<RootDir> open(const std::string& path, SymlinkPolicy policy,
                                         std::string& error);
    ~RootDir();
    RootDir(const RootDir&) = delete;
    RootDir& operator=(const RootDir&) = delete;

    // Opens `relative` (no leading '/', no "." or ".." segments; "." is the root itself) for
    // reading, non-blocking so a FIFO cannot stall the loop. Returns the descriptor or -errno:
    // ENOENT/ENOTDIR missing, EACCES/EPERM denied, ELOOP/EXDEV a symlink the policy refuses.
    int open_file(const char* relative) const;

    // Stats `relative` without opening it, only where fstatat(2) resolves exactly as
    // open_file would: always under SymlinkPolicy::any, and under the other policies for a
    // name directly in the root (a symlink is then reported as itself, so it can only differ
    // from a regular file's cached stat). Returns 0, -errno, or stat_needs_open when only
    // open_file can resolve the path under the policy (a path through a subdirectory).
    static constexpr int stat_needs_open = 1;
    int stat_path(const char* relative, struct stat& st) const;

    // Unique among the roots this process opened, so it can key caches (a freed root's
    // address may be reused; its id is not).
    uint64_t id() const { return id_; }

    // The root's canonical absolute path (symlinks resolved).
    const std::string& real_path() const { return real_path_; }
    SymlinkPolicy policy() const { return policy_; }

private:
    RootDir(int fd, std::string real_path, SymlinkPolicy policy, bool use_openat2);
    int open_walking_no_symlinks(const char* relative) const;
    int open_checking_target(const char* relative) const;

    int fd_;                // O_PATH | O_DIRECTORY descriptor of the root
    std::string real_path_; // for the realpath check of the openat2 fallback
    SymlinkPolicy policy_;
    bool use_openat2_; // the kernel (and any seccomp filter) allows openat2(2)
    uint64_t id_;
};

// Tests only: pretend openat2(2) is unavailable for roots opened afterwards.
void force_openat2_fallback_for_tests(bool force);

} // namespace wraith::static_files
