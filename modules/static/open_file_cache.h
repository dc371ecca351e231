// The static handler's open-file cache, one per worker (like NGINX's open_file_cache, but on
// by default; owned by the static module's per-worker state, StaticWorker): descriptors and stat
// results of files below a RootDir, and the errors of paths that failed to open, so a hot file
// costs no path walk, fstat or close per request. A hit younger than `valid` costs no system call;
// an older one is revalidated (fstatat where RootDir can resolve the path exactly as it opens it,
// else a fresh open) and reopened when the file changed. The worker is single-threaded, so nothing
// here is locked.
#pragma once

#include <atomic>

#include <ev.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sys/stat.h>

namespace wraith::static_files {

class RootDir;

// A route's `open_file_cache` setting.
struct OpenFileCacheOptions {
    bool enabled = true;
    size_t max = 1000;                         // entries; the worker's cache holds the largest max
    std::chrono::milliseconds valid{1000};     // how long a result is trusted without a syscall
    std::chrono::milliseconds inactive{20000}; // unused this long: dropped
};

// A regular file open below a root, shared by its cache entry and the exchanges reading it:
// the descriptor closes when the last holder releases it, so an exchange keeps a valid fd
// while its entry is evicted or replaced. Counted by hand: the worker is single-threaded.
class OpenFile {
public:
    // Takes ownership of `fd`; the caller holds the one reference.
    static OpenFile* adopt(int fd, const struct stat& st) { return new OpenFile(fd, st); }
    void acquire() { ++refs_; }
    // Drops one reference; an `Arena::defer` cleanup, hence the void*.
    static void release(void* file);

    int fd() const { return fd_; }
    const struct stat& stat() const { return st_; }
    // The whole file in memory, read once on first use, for files of at most kMaxContent
    // bytes; empty when larger or unreadable. Meant for transports that copy anyway (TLS,
    // QUIC): they skip a pread per response. It matches stat() (the same open file).
    static constexpr size_t kMaxContent = 32 * 1024;
    std::string_view content();
    // The file's validators, made once from stat() rather than per response: its strong
    // ETag (make_etag; `suffix` marks a precompressed variant, and a file is always served
    // with the same one) and its Last-Modified date.
    std::string_view etag(std::string_view suffix);
    std::string_view last_modified();
    // One slot for what the handler serving the file works out from its path (the static
    // handler: the served type), tagged with that handler. A file served by one handler is
    // the common case; another handler overwrites the slot. A handler's files are all below
    // its own root, and a worker's cache goes before its config's handlers do.
    const void* memo(const void* owner) const { return memo_owner_ == owner ? memo_ : nullptr; }
    void set_memo(const void* owner, const void* value) {
        memo_owner_ = owner;
        memo_ = value;
    }
    // OpenFile objects alive in this process (tests check that descriptors are closed).
    static size_t live_count();

private:
    OpenFile(int fd, const struct stat& st);
    ~OpenFile(); // closes fd_
    OpenFile(const OpenFile&) = delete;
    OpenFile& operator=(const OpenFile&) = delete;

    int fd_;
    struct stat st_;
    uint32_t refs_ = 1;
    std::unique_ptr<char[]> content_;
    size_t content_len_ = 0;
    bool content_tried_ = false;
    const void* memo_owner_ = nullptr;
    const void* memo_ = nullptr;
    uint8_t etag_len_ = 0; // 0: not made yet
    uint8_t etag_suffix_len_ = 0;
    uint8_t last_modified_len_ = 0;
    char etag_[32];          // static_files::etag_size
    char last_modified_[32]; // http_date_size
};

// What a lookup found. `file` is a reference the caller owns (OpenFile::release), set for
// regular files only: directories and special files are cached as stat results.
struct OpenResult {
    int error = 0;            // errno of the open (ENOENT, EACCES, ELOOP...), 0 when found
    struct stat st {};        // when error == 0
    OpenFile* file = nullptr; // when error == 0 and st is a regular file
};

// Opens `relative` (as RootDir::open_file takes it) below `root` and stats it, uncached: what a
// cache miss does, and all a route with `open_file_cache = false` does.
OpenResult open_uncached(const RootDir& root, const char* relative);

// What the open-file caches of every worker did, in shared memory (the static module's zone
// "static.cache", one shard per worker slot; the metrics scrape sums them).
struct alignas(64) SharedCacheStats {
    std::atomic<uint64_t> hits, revalidated, opens, evicted, expired;
};

class OpenFileCache {
public:
    // Milliseconds on a monotonic clock.
    using Clock = int64_t (*)();

    OpenFileCache() = default;
    ~OpenFileCache(); // releases every entry's descriptor, stops the sweep timer
    OpenFileCache(const OpenFileCache&) = delete;
    OpenFileCache& operator=(const OpenFileCache&) = delete;

    // Opens `relative` (as RootDir::open_file takes it) below `root`, from the cache when a
    // result is fresh. `loop` (may be null) gets the timer that drops inactive entries.
    OpenResult open(struct ev_loop* loop, const RootDir& root, const char* relative,
                    const OpenFileCacheOptions& options);

    // What the cache did, for tests and debugging.
    struct Stats {
        uint64_t hits = 0;        // answered without a syscall
        uint64_t revalidated = 0; // older than valid, confirmed by fstatat
        uint64_t opens = 0;       // RootDir::open_file calls: misses and reopens
        uint64_t evicted = 0;     // dropped by the max bound
        uint64_t expired = 0;     // dropped as inactive
        size_t entries = 0;
    };
    Stats stats() const;
    // Counts into `shared` too from now on (null: only stats()).
    void share_stats(SharedCacheStats* shared) { shared_ = shared; }

    // Tests only: replace the clock (nullptr restores the default).
    static void set_clock_for_tests(Clock clock);

private:
    void clear();

    // An entry's identity: the root and the normalised relative path (which the entry owns;
    // the key views it).
    struct Key {
        uint64_t root_id;
        std::string_view path;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        size_t operator()(const Key& k) const {
            return std::hash<std::string_view>()(k.path) ^ (k.root_id * 0x9e3779b97f4a7c15ull);
        }
    };
    struct Entry {
        uint64_t root_id = 0;
        std::string path;
        OpenResult result;        // the entry's own reference to result.file
        int64_t validated_ms = 0; // last open or successful revalidation
        int64_t used_ms = 0;      // last lookup
        int64_t inactive_ms = 0;  // of the route that used it last
    };
    using Lru = std::list<Entry>; // most recently used first

    static bool cacheable(int error);
    bool still_valid(const RootDir& root, const char* relative, const Entry& e);
    void set_result(Entry& e, OpenResult fresh);
    void drop(Lru::iterator it);
    void sweep(int64_t now);
    void arm_timer(struct ev_loop* loop);
    void disarm_timer();
    static void on_sweep_timer(struct ev_loop* loop, ev_timer* w, int revents);

    Lru lru_;
    std::unordered_map<Key, Lru::iterator, KeyHash> index_;
    size_t capacity_ = 0;        // the largest `max` of the routes that used the cache
    int64_t next_sweep_ms_ = 0;  // lazy sweep on lookup, for a cache without a loop
    int64_t sweep_every_ms_ = 0; // half the shortest `inactive` seen
    struct ev_loop* loop_ = nullptr;
    ev_timer sweep_timer_{};
    bool timer_armed_ = false;
    Stats stats_;
    SharedCacheStats* shared_ = nullptr;
    void count(uint64_t Stats::*mine, std::atomic<uint64_t> SharedCacheStats::*all) {
        ++(stats_.*mine);
        if (shared_)
            (shared_->*all).fetch_add(1, std::memory_order_relaxed);
    }
};

} // namespace wraith::static_files
