#include "modules/static/open_file_cache.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <unistd.h>

#include "common/http_date.h"
#include "modules/static/root_dir.h"
#include "modules/static/validators.h"

namespace wraith::static_files {

namespace {

// The vDSO answers CLOCK_MONOTONIC_COARSE without entering the kernel; its few milliseconds
// of resolution are plenty for validity periods of a second.
int64_t monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

OpenFileCache::Clock g_clock = &monotonic_ms;

size_t g_live_files = 0;

// Whether `now` still describes the file an entry holds. ctime catches chmod and chown, so a
// file made unreadable is reopened (and refused) rather than served from the old descriptor.
bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_mode == b.st_mode &&
           a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
           a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ctim.tv_sec == b.st_ctim.tv_sec &&
           a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

} // namespace

OpenFile::OpenFile(int fd, const struct stat& st) : fd_(fd), st_(st) {
    ++g_live_files;
}

OpenFile::~OpenFile() {
    close(fd_);
    --g_live_files;
}

std::string_view OpenFile::content() {
    if (!content_tried_) {
        content_tried_ = true;
        size_t size = static_cast<size_t>(st_.st_size);
        if (S_ISREG(st_.st_mode) && size > 0 && size <= kMaxContent) {
            auto buf = std::make_unique<char[]>(size);
            size_t got = 0;
            while (got < size) {
                ssize_t n = ::pread(fd_, buf.get() + got, size - got, static_cast<off_t>(got));
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                got += static_cast<size_t>(n);
            }
            if (got == size) { // a file that shrank since stat(): not cached, served from fd
                content_ = std::move(buf);
                content_len_ = size;
            }
        }
    }
    return {content_.get(), content_len_};
}

std::string_view OpenFile::etag(std::string_view suffix) {
    static_assert(sizeof etag_ == etag_size && etag_size < 256);
    // The cached tag was made with a suffix of this length whose bytes (just before the
    // closing quote) are these: the same suffix. (A string_view comparison, not memcmp: an
    // empty suffix's data() may be null, and memcmp with null is undefined even for 0 bytes.)
    if (etag_len_ == 0 || etag_suffix_len_ != suffix.size() ||
        std::string_view(etag_ + etag_len_ - 1 - suffix.size(), suffix.size()) != suffix) {
        etag_len_ = static_cast<uint8_t>(make_etag(st_, suffix, etag_));
        etag_suffix_len_ = static_cast<uint8_t>(suffix.size());
    }
    return {etag_, etag_len_};
}

std::string_view OpenFile::last_modified() {
    static_assert(sizeof last_modified_ == http_date_size);
    if (last_modified_len_ == 0)
        last_modified_len_ =
            static_cast<uint8_t>(format_http_date(st_.st_mtim.tv_sec, last_modified_));
    return {last_modified_, last_modified_len_};
}

void OpenFile::release(void* file) {
    auto* f = static_cast<OpenFile*>(file);
    if (--f->refs_ == 0)
        delete f;
}

size_t OpenFile::live_count() {
    return g_live_files;
}

OpenFileCache::~OpenFileCache() {
    clear();
}

void OpenFileCache::set_clock_for_tests(Clock clock) {
    g_clock = clock ? clock : &monotonic_ms;
}

OpenFileCache::Stats OpenFileCache::stats() const {
    Stats s = stats_;
    s.entries = lru_.size();
    return s;
}

// Failures that describe the path (and will again until someone changes the tree) are
// cached; running out of descriptors or memory, or an I/O error, is retried next time.
bool OpenFileCache::cacheable(int error) {
    switch (error) {
    case 0:
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
    case EACCES:
    case EPERM:
    case ELOOP:
    case EXDEV:
        return true;
    default:
        return false;
    }
}

OpenResult open_uncached(const RootDir& root, const char* relative) {
    OpenResult r;
    int fd = root.open_file(relative);
    if (fd < 0) {
        r.error = -fd;
        return r;
    }
    if (fstat(fd, &r.st) != 0) {
        r.error = errno;
        close(fd);
        return r;
    }
    // Only regular files are served from a descriptor; a directory's stat decides between
    // redirect, index and listing, and the listing opens the directory itself.
    if (S_ISREG(r.st.st_mode))
        r.file = OpenFile::adopt(fd, r.st);
    else
        close(fd);
    return r;
}

// One fstatat where RootDir can resolve the path exactly as open_file does; otherwise the
// entry is reopened, because a stat that walked differently could vouch for a path the
// symlink policy refuses.
bool OpenFileCache::still_valid(const RootDir& root, const char* relative, const Entry& e) {
    struct stat st {};
    int r = root.stat_path(relative, st);
    if (r == RootDir::stat_needs_open)
        return false;
    if (e.result.error != 0)
        return r < 0 && -r == e.result.error &&
               (e.result.error == ENOENT || e.result.error == ENOTDIR);
    return r == 0 && same_file(st, e.result.st);
}

// Replaces an entry's result; exchanges still holding the old file keep it open.
void OpenFileCache::set_result(Entry& e, OpenResult fresh) {
    if (e.result.file)
        OpenFile::release(e.result.file);
    e.result = fresh;
}

void OpenFileCache::drop(Lru::iterator it) {
    index_.erase(Key{it->root_id, it->path}); // before the path it views goes
    if (it->result.file)
        OpenFile::release(it->result.file);
    lru_.erase(it);
}

OpenResult OpenFileCache::open(struct ev_loop* loop, const RootDir& root, const char* relative,
                               const OpenFileCacheOptions& options) {
    const int64_t now = g_clock();
    const int64_t valid_ms = options.valid.count();
    capacity_ = std::max(capacity_, std::max<size_t>(options.max, 1));
    const int64_t every = std::max<int64_t>(options.inactive.count() / 2, 100);
    if (sweep_every_ms_ == 0 || every < sweep_every_ms_)
        sweep_every_ms_ = every;
    if (now >= next_sweep_ms_)
        sweep(now);

    Entry* e = nullptr;
    if (auto found = index_.find(Key{root.id(), relative}); found != index_.end()) {
        lru_.splice(lru_.begin(), lru_, found->second);
        e = &*found->second;
        if (now - e->validated_ms < valid_ms) {
            count(&Stats::hits, &SharedCacheStats::hits);
        } else if (still_valid(root, relative, *e)) {
            count(&Stats::revalidated, &SharedCacheStats::revalidated);
            e->validated_ms = now;
        } else {
            count(&Stats::opens, &SharedCacheStats::opens);
            OpenResult fresh = open_uncached(root, relative);
            if (!cacheable(fresh.error)) {
                drop(lru_.begin());
                return fresh;
            }
            set_result(*e, fresh);
            e->validated_ms = now;
        }
    } else {
        count(&Stats::opens, &SharedCacheStats::opens);
        OpenResult fresh = open_uncached(root, relative);
        if (!cacheable(fresh.error))
            return fresh;
        e = &lru_.emplace_front();
        e->root_id = root.id();
        e->path = relative;
        e->result = fresh;
        e->validated_ms = now;
        index_.emplace(Key{e->root_id, e->path}, lru_.begin());
        while (lru_.size() > capacity_) {
            drop(std::prev(lru_.end()));
            count(&Stats::evicted, &SharedCacheStats::evicted);
        }
        if (loop)
            arm_timer(loop);
    }
    e->used_ms = now;
    e->inactive_ms = options.inactive.count();
    OpenResult r = e->result;
    if (r.file)
        r.file->acquire();
    return r;
}

// Drops entries unused for their `inactive` from the cold end. The walk stops at the first
// entry still active: with routes of different `inactive`, an older entry behind it waits for
// a later sweep (or the max bound).
void OpenFileCache::sweep(int64_t now) {
    while (!lru_.empty() && now - lru_.back().used_ms >= lru_.back().inactive_ms) {
        drop(std::prev(lru_.end()));
        count(&Stats::expired, &SharedCacheStats::expired);
    }
    next_sweep_ms_ = now + sweep_every_ms_;
}

// A timer sweeps while the cache holds entries, so an idle worker does not keep descriptors
// of files deleted meanwhile (and their disk space) for ever. It does not keep the loop alive.
void OpenFileCache::arm_timer(struct ev_loop* loop) {
    const double every = static_cast<double>(sweep_every_ms_) / 1000.0;
    if (timer_armed_) {
        if (sweep_timer_.repeat > every) { // a route with a shorter `inactive` came along
            sweep_timer_.repeat = every;
            ev_timer_again(loop_, &sweep_timer_);
        }
        return;
    }
    loop_ = loop;
    ev_timer_init(&sweep_timer_, on_sweep_timer, every, every);
    sweep_timer_.data = this;
    ev_timer_start(loop_, &sweep_timer_);
    ev_unref(loop_);
    timer_armed_ = true;
}

void OpenFileCache::disarm_timer() {
    if (!timer_armed_)
        return;
    ev_ref(loop_);
    ev_timer_stop(loop_, &sweep_timer_);
    timer_armed_ = false;
}

void OpenFileCache::on_sweep_timer(struct ev_loop*, ev_timer* w, int) {
    auto* cache = static_cast<OpenFileCache*>(w->data);
    cache->sweep(g_clock());
    if (cache->lru_.empty())
        cache->disarm_timer();
}

void OpenFileCache::clear() {
    while (!lru_.empty())
        drop(lru_.begin());
    disarm_timer();
    capacity_ = 0;
    sweep_every_ms_ = 0;
    next_sweep_ms_ = 0;
    stats_ = {};
}

} // namespace wraith::static_files
