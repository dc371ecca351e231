// The static handler's open-file cache: hits without opens, revalidation after `valid`
// (replacement by rename, rewrite in place, deletion), negative entries, the LRU bound while
// exchanges still hold descriptors, inactive expiry, the symlink policies on revalidation, and
// the `open_file_cache` key. The clock is injected, so nothing sleeps.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/mime.h"
#include "modules/static/open_file_cache.h"
#include "modules/static/static_handler.h"
#include "support/recording_writer.h"

using namespace wraith;
using namespace wraith::static_files;
using modtest::NoBody;
using modtest::RecordingWriter;
using modtest::TestExchange;
namespace fs = std::filesystem;

namespace {

int64_t g_now_ms = 0;
int64_t fake_now() {
    return g_now_ms;
}

// Installs the fake clock and a worker's static module state (an empty cache) that the
// test's exchanges use, as a worker's requests do.
struct CacheFixture {
    ModuleWorkers modules{ModuleRegistry::instance().all().size()};
    StaticWorker* worker = nullptr;
    CacheFixture() {
        g_now_ms = 1000000;
        OpenFileCache::set_clock_for_tests(&fake_now);
        auto w = std::make_unique<StaticWorker>();
        worker = w.get();
        modules.set(modtest::module_index("static"), std::move(w));
        modtest::test_modules() = &modules;
    }
    ~CacheFixture() {
        modtest::test_modules() = nullptr;
        modules.clear();
        OpenFileCache::set_clock_for_tests(nullptr);
    }
    void advance(int64_t ms) { g_now_ms += ms; }
    OpenFileCache::Stats stats() const { return worker->cache.stats(); }
};

struct TempTree {
    fs::path dir;
    TempTree() {
        char tmpl[] = "/tmp/wraith-ofc-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        dir = tmpl;
        fs::create_directory(dir / "root");
    }
    ~TempTree() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    fs::path root() const { return dir / "root"; }
    fs::path path(const std::string& rel) const { return root() / rel; }
    void file(const std::string& rel, const std::string& content) {
        fs::path p = path(rel);
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << content;
    }
    // Writes `content` beside `rel` and renames it over: a new inode under the old name.
    void replace(const std::string& rel, const std::string& content) {
        fs::path tmp = path(rel).string() + ".new";
        std::ofstream(tmp, std::ios::binary) << content;
        fs::rename(tmp, path(rel));
    }
};

// A response whose file segments are read only when the test says so, as a protocol that
// queues sendfile ranges does: the descriptor must stay valid until the exchange ends.
class DeferredFileWriter final : public ResponseWriter {
public:
    int status = 0;
    struct Range {
        int fd;
        off_t offset;
        size_t len;
    };
    std::vector<Range> ranges;

    std::string read_all() const {
        std::string out;
        for (const Range& r : ranges) {
            std::string chunk(r.len, '\0');
            ssize_t n = pread(r.fd, chunk.data(), r.len, r.offset);
            chunk.resize(n < 0 ? 0 : static_cast<size_t>(n));
            out += chunk;
        }
        return out;
    }

    void send_informational(int, const Headers&) override {}
    void send_headers(ResponseHead& head, bool) override { status = head.status; }
    Result send_body(std::string_view, bool) override { return Result::ok; }
    Result send_file(int fd, off_t offset, size_t len, bool) override {
        ranges.push_back({fd, offset, len});
        return Result::ok;
    }
    void on_writable(Callback) override {}
    void on_abort(Callback) override {}
    void reset() override {}
    bool headers_sent() const override { return status != 0; }
    uint64_t body_bytes_sent() const override { return 0; }
};

// One exchange; its arena (and with it the handler's file references) goes with it.
template <class Writer = RecordingWriter> struct Exchange {
    TestExchange ex;
    NoBody body;
    Writer out;
    Exchange(std::string_view method, std::string_view path) : ex(method) {
        ex.req.path = ex.req.target = ex.req.decoded_path = ex.arena.copy(path);
    }
};

template <class Writer = RecordingWriter>
std::unique_ptr<Exchange<Writer>>
run(const Handler& h, std::string_view path,
    std::vector<std::pair<std::string, std::string>> fields = {}) {
    auto x = std::make_unique<Exchange<Writer>>("GET", path);
    for (auto& [n, v] : fields)
        x->ex.req.headers.add(x->ex.arena.copy(n), x->ex.arena.copy(v));
    h.handle(x->ex.req, x->body, x->out);
    return x;
}

struct Answer {
    int status;
    std::string body;
    std::string etag;
};

Answer get(const Handler& h, std::string_view path,
           std::vector<std::pair<std::string, std::string>> fields = {}) {
    auto x = run(h, path, std::move(fields));
    return {x->out.status, x->out.body, x->out.header("etag")};
}

std::unique_ptr<Handler> make(const TempTree& t, OpenFileCacheOptions cache = {},
                              SymlinkPolicy symlinks = SymlinkPolicy::within_root) {
    StaticOptions o;
    o.root = t.root().string();
    o.open_file_cache = cache;
    o.follow_symlinks = symlinks;
    std::string error;
    auto h = make_static_handler(o, MimeTypes::builtin(), error, modtest::module_index("static"));
    INFO(error);
    REQUIRE(h);
    return h;
}

bool fd_open(int fd) {
    return fcntl(fd, F_GETFD) != -1;
}

} // namespace

TEST_CASE("open file cache: a fresh hit opens nothing, so a deleted file is served until valid "
          "runs out",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("a.txt", "hello");
    t.file("sub/b.txt", "world");
    auto h = make(t);

    CHECK(get(*h, "/a.txt").body == "hello");
    CHECK(get(*h, "/sub/b.txt").body == "world");
    CHECK(c.stats().opens == 2);
    Answer again = get(*h, "/a.txt");
    CHECK(again.body == "hello");
    CHECK(get(*h, "/sub/b.txt").body == "world");
    CHECK(c.stats().opens == 2);
    CHECK(c.stats().hits == 2);

    fs::remove(t.path("a.txt"));
    fs::remove(t.path("sub/b.txt"));
    c.advance(999);
    CHECK(get(*h, "/a.txt").body == "hello"); // the cached descriptor still reads it
    CHECK(get(*h, "/sub/b.txt").body == "world");
    CHECK(c.stats().opens == 2);

    c.advance(1);
    CHECK(get(*h, "/a.txt").status == 404);
    CHECK(get(*h, "/sub/b.txt").status == 404);
    CHECK(c.stats().entries == 2); // now negative entries
}

TEST_CASE("open file cache: validators, conditionals and ranges come from the cached stat",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(t);
    auto first = run(*h, "/digits.txt");
    std::string etag = first->out.header("etag");
    std::string lm = first->out.header("last-modified");
    const uint64_t opens = c.stats().opens;

    auto cond = run(*h, "/digits.txt", {{"if-none-match", etag}});
    CHECK(cond->out.status == 304);
    CHECK(run(*h, "/digits.txt", {{"if-modified-since", lm}})->out.status == 304);
    auto range = run(*h, "/digits.txt", {{"range", "bytes=2-4"}, {"if-range", etag}});
    CHECK(range->out.status == 206);
    CHECK(range->out.body == "234");
    CHECK(range->out.header("content-range") == "bytes 2-4/10");
    CHECK(c.stats().opens == opens);
}

TEST_CASE("open file cache: a file replaced by rename is served new once valid runs out",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    // A name in the root revalidates with fstatat; one below a subdirectory reopens.
    const std::string rel = GENERATE(std::string("page.html"), std::string("deep/er/page.html"));
    INFO(rel);
    t.file(rel, "old version");
    auto h = make(t, {.valid = std::chrono::milliseconds(200)});
    Answer before = get(*h, "/" + rel);
    REQUIRE(before.body == "old version");

    t.replace(rel, "new version!");
    c.advance(150);
    Answer stale = get(*h, "/" + rel);
    CHECK(stale.body == "old version");
    CHECK(stale.etag == before.etag);

    c.advance(50);
    Answer fresh = get(*h, "/" + rel);
    CHECK(fresh.body == "new version!");
    CHECK(fresh.etag != before.etag);
    // And the new file is cached in turn.
    const uint64_t opens = c.stats().opens;
    CHECK(get(*h, "/" + rel).body == "new version!");
    CHECK(c.stats().opens == opens);
}

TEST_CASE("open file cache: a file rewritten in place is noticed at revalidation",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("log.txt", "aaaa");
    t.file("same.txt", "xxxx");
    auto h = make(t);
    Answer log_before = get(*h, "/log.txt");
    Answer same_before = get(*h, "/same.txt");
    struct stat st {};
    REQUIRE(stat(t.path("log.txt").c_str(), &st) == 0);
    const ino_t inode = st.st_ino;

    // Longer content, same inode.
    std::ofstream(t.path("log.txt"), std::ios::binary | std::ios::trunc) << "bbbbbbbb";
    // Same size, only the modification time tells.
    std::ofstream(t.path("same.txt"), std::ios::binary | std::ios::trunc) << "yyyy";
    timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
    REQUIRE(utimensat(AT_FDCWD, t.path("same.txt").c_str(), times, 0) == 0);
    REQUIRE(stat(t.path("log.txt").c_str(), &st) == 0);
    REQUIRE(st.st_ino == inode);

    c.advance(1000);
    auto log_after = run(*h, "/log.txt");
    CHECK(log_after->out.body == "bbbbbbbb");
    CHECK(log_after->out.content_length == 8);
    CHECK(log_after->out.header("etag") != log_before.etag);
    auto same_after = run(*h, "/same.txt");
    CHECK(same_after->out.body == "yyyy");
    CHECK(same_after->out.header("etag") != same_before.etag);
    CHECK(same_after->out.header("last-modified") == "Fri, 13 Feb 2009 23:31:30 GMT");
}

TEST_CASE("open file cache: negative results are cached too", "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("app.js", "console.log(1)");
    auto h = make(t);

    CHECK(get(*h, "/missing.html").status == 404);
    CHECK(get(*h, "/no/such/dir.html").status == 404);
    CHECK(c.stats().opens == 2);
    for (int i = 0; i < 10; ++i) {
        CHECK(get(*h, "/missing.html").status == 404);
        CHECK(get(*h, "/no/such/dir.html").status == 404);
    }
    CHECK(c.stats().opens == 2);

    // Sidecar lookups that find nothing are negative entries as well.
    CHECK(get(*h, "/app.js", {{"accept-encoding", "gzip, br, zstd"}}).body == "console.log(1)");
    const uint64_t opens = c.stats().opens;
    CHECK(opens > 3);
    CHECK(get(*h, "/app.js", {{"accept-encoding", "gzip, br, zstd"}}).body == "console.log(1)");
    CHECK(c.stats().opens == opens);

    // A file that appears is found once valid runs out.
    t.file("missing.html", "here now");
    t.file("app.js.gz", "GZ");
    CHECK(get(*h, "/missing.html").status == 404);
    c.advance(1000);
    CHECK(get(*h, "/missing.html").body == "here now");
    CHECK(get(*h, "/app.js", {{"accept-encoding", "gzip"}}).body == "GZ");
}

TEST_CASE("open file cache: directories are cached as stat results for redirects and index",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("docs/index.html", "docs home");
    auto h = make(t);
    CHECK(get(*h, "/docs").status == 301);
    CHECK(get(*h, "/docs/").body == "docs home");
    const uint64_t opens = c.stats().opens;
    CHECK(get(*h, "/docs").status == 301);
    CHECK(get(*h, "/docs/").body == "docs home");
    CHECK(c.stats().opens == opens);

    // autoindex opens the directory to read it, whatever the cache holds.
    StaticOptions o;
    o.root = t.root().string();
    o.index = {"none.html"};
    o.autoindex = true;
    std::string error;
    auto listing =
        make_static_handler(o, MimeTypes::builtin(), error, modtest::module_index("static"));
    REQUIRE(listing);
    CHECK(get(*listing, "/docs/").body.find("index.html") != std::string::npos);
    t.file("docs/later.txt", "x");
    CHECK(get(*listing, "/docs/").body.find("later.txt") != std::string::npos);
}

TEST_CASE("open file cache: at most max entries, least recently used evicted first",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    for (const char* name : {"a", "b", "c", "d"})
        t.file(name, name);
    const size_t live = OpenFile::live_count();
    auto h = make(t, {.max = 2});

    CHECK(get(*h, "/a").body == "a");
    CHECK(get(*h, "/b").body == "b");
    CHECK(get(*h, "/a").body == "a"); // a is now the most recent
    CHECK(c.stats().opens == 2);
    CHECK(get(*h, "/c").body == "c"); // evicts b
    CHECK(c.stats().entries == 2);
    CHECK(c.stats().evicted == 1);
    CHECK(OpenFile::live_count() == live + 2); // b's descriptor is closed
    CHECK(get(*h, "/a").body == "a");
    CHECK(c.stats().opens == 3);
    CHECK(get(*h, "/b").body == "b"); // reopened, evicting c
    CHECK(c.stats().opens == 4);
    CHECK(c.stats().evicted == 2);
}

TEST_CASE("open file cache: an exchange keeps its descriptor when the entry is evicted and the "
          "file replaced",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    std::string big;
    for (int i = 0; big.size() < 200000; ++i)
        big += "line " + std::to_string(i) + "\n";
    t.file("big.txt", big);
    t.file("other.txt", "other");
    const size_t live = OpenFile::live_count();
    auto h = make(t, {.max = 1});

    // The body is read after the handler returned, as sendfile from a queue would.
    auto slow = run<DeferredFileWriter>(*h, "/big.txt");
    REQUIRE(slow->out.status == 200);
    REQUIRE(slow->out.ranges.size() == 1);
    const int fd = slow->out.ranges[0].fd;

    CHECK(get(*h, "/other.txt").body == "other"); // evicts big.txt
    CHECK(c.stats().evicted == 1);
    t.replace("big.txt", "replaced");
    c.advance(5000);
    CHECK(get(*h, "/big.txt").body == "replaced"); // evicts other.txt

    CHECK(fd_open(fd));
    CHECK(slow->out.read_all() == big);
    CHECK(OpenFile::live_count() == live + 2); // the cached new file and the exchange's old one
    slow.reset();                              // the exchange ends: its reference goes
    CHECK(OpenFile::live_count() == live + 1);
    CHECK_FALSE(fd_open(fd));
}

TEST_CASE("open file cache: a multipart body waiting for the writer survives eviction",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("digits.txt", "0123456789");
    t.file("other.txt", "other");
    auto h = make(t, {.max = 1});
    auto x = std::make_unique<Exchange<>>("GET", "/digits.txt");
    x->ex.req.headers.add("range", "bytes=0-1,5-6,8-8");
    x->out.block_after_bytes = 1;
    h->handle(x->ex.req, x->body, x->out);
    REQUIRE(x->out.status == 206);
    REQUIRE_FALSE(x->out.ended);

    CHECK(get(*h, "/other.txt").body == "other"); // evicts digits.txt
    t.replace("digits.txt", "abcdefghij");
    c.advance(5000);
    CHECK(get(*h, "/digits.txt").body == "abcdefghij");

    x->out.drain_all();
    CHECK(x->out.ended);
    CHECK(x->out.content_length == static_cast<int64_t>(x->out.body.size()));
    CHECK(x->out.body.find("\r\n\r\n01\r\n") != std::string::npos);
    CHECK(x->out.body.find("\r\n\r\n56\r\n") != std::string::npos);
    CHECK(x->out.body.find("\r\n\r\n8\r\n") != std::string::npos);
}

TEST_CASE("open file cache: entries unused for inactive are dropped", "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("a", "a");
    t.file("b", "b");
    const size_t live = OpenFile::live_count();
    auto h = make(t, {.inactive = std::chrono::milliseconds(20000)});
    CHECK(get(*h, "/a").body == "a");
    c.advance(15000);
    CHECK(get(*h, "/b").body == "b");
    // Sweeps run every inactive / 2 (here from the lookups; in a worker also from a timer), so
    // an entry goes between 20 and 30 s after its last use.
    c.advance(10000); // a unused for 25 s, b for 10 s
    CHECK(get(*h, "/b").body == "b");
    CHECK(c.stats().expired == 1);
    CHECK(c.stats().entries == 1);
    CHECK(OpenFile::live_count() == live + 1);
}

TEST_CASE("open file cache: the worker's cache closes every descriptor when it goes",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("a", "a");
    t.file("b", "b");
    const size_t live = OpenFile::live_count();
    auto h = make(t);
    CHECK(get(*h, "/a").body == "a");
    CHECK(get(*h, "/b").body == "b");
    CHECK(OpenFile::live_count() == live + 2);
    // A worker's module state goes before its config's handlers (Worker::~Worker).
    c.modules.clear();
    CHECK(OpenFile::live_count() == live);
    modtest::test_modules() = nullptr;
    CHECK(get(*h, "/a").body == "a"); // no cache left: opened for this request only
    CHECK(OpenFile::live_count() == live);
}

TEST_CASE("open file cache: each root has its own entries", "[static][open_file_cache]") {
    CacheFixture c;
    TempTree one;
    TempTree two;
    one.file("same.txt", "one");
    two.file("same.txt", "two");
    auto h1 = make(one);
    auto h2 = make(two);
    for (int i = 0; i < 3; ++i) {
        CHECK(get(*h1, "/same.txt").body == "one");
        CHECK(get(*h2, "/same.txt").body == "two");
    }
    CHECK(c.stats().opens == 2);
}

TEST_CASE("open file cache: revalidation keeps the symlink policy", "[static][open_file_cache]") {
    const bool fallback = GENERATE(false, true);
    force_openat2_fallback_for_tests(fallback);
    INFO("openat2 fallback: " << fallback);
    CacheFixture c;
    TempTree t;
    t.file("real.txt", "inside");
    t.file("dir/f.txt", "in dir");
    t.file("../elsewhere/f.txt", "outside dir");
    std::ofstream(t.dir / "outside.txt") << "outside";

    SECTION("within_root: a link switched to point outside is refused") {
        fs::create_symlink("real.txt", t.path("link.txt"));
        auto h = make(t);
        CHECK(get(*h, "/link.txt").body == "inside");
        fs::remove(t.path("link.txt"));
        fs::create_symlink("../outside.txt", t.path("link.txt"));
        c.advance(1000);
        CHECK(get(*h, "/link.txt").status == 404);
    }
    SECTION("within_root: a directory switched to a link outside is refused") {
        auto h = make(t);
        CHECK(get(*h, "/dir/f.txt").body == "in dir");
        fs::rename(t.path("dir"), t.path("dir.old"));
        fs::create_directory_symlink(t.dir / "elsewhere", t.path("dir"));
        c.advance(1000);
        CHECK(get(*h, "/dir/f.txt").status == 404);
    }
    SECTION("never: a directory switched to a link, even inside, is refused") {
        auto h = make(t, {}, SymlinkPolicy::never);
        CHECK(get(*h, "/dir/f.txt").body == "in dir");
        fs::rename(t.path("dir"), t.path("dir.old"));
        fs::create_directory_symlink("dir.old", t.path("dir"));
        c.advance(1000);
        CHECK(get(*h, "/dir/f.txt").status == 404);
    }
    SECTION("never: a file switched to a link is refused") {
        auto h = make(t, {}, SymlinkPolicy::never);
        CHECK(get(*h, "/real.txt").body == "inside");
        fs::rename(t.path("real.txt"), t.path("real.old"));
        fs::create_symlink("real.old", t.path("real.txt"));
        c.advance(1000);
        CHECK(get(*h, "/real.txt").status == 404);
    }
    force_openat2_fallback_for_tests(false);
}

TEST_CASE("open file cache: open_file_cache = false opens every time, as before",
          "[static][open_file_cache]") {
    CacheFixture c;
    TempTree t;
    t.file("a.txt", "one");
    const size_t live = OpenFile::live_count();
    auto h = make(t, {.enabled = false});
    Answer first = get(*h, "/a.txt");
    CHECK(first.body == "one");
    CHECK(OpenFile::live_count() == live); // closed with the exchange
    t.replace("a.txt", "two");
    Answer second = get(*h, "/a.txt");
    CHECK(second.body == "two");
    CHECK(second.etag != first.etag);
    fs::remove(t.path("a.txt"));
    CHECK(get(*h, "/a.txt").status == 404);
    CHECK(get(*h, "/").status == 403);
    CHECK(c.stats().opens == 0);
    CHECK(c.stats().entries == 0);
}

namespace {

std::string config_text(const std::string& value) {
    return "[[listen]]\naddress = \"127.0.0.1:8080\"\n"
           "[[site]]\nhosts = [\"localhost\"]\n"
           "[[site.route]]\npath = \"/\"\n"
           "static = { root = \"root\", open_file_cache = " +
           value + " }\n";
}

} // namespace

TEST_CASE("open file cache: the open_file_cache key", "[static][open_file_cache][config]") {
    CacheFixture c;
    TempTree t;
    t.file("a.txt", "a");
    auto load = [&](const std::string& value, std::string& errors) {
        Diagnostics diag;
        auto cfg = load_config_text(config_text(value), "test.toml", t.dir.string(), diag);
        for (const auto& d : diag.list())
            errors += d.text() + "\n";
        return cfg;
    };

    SECTION("a table sets max, valid and inactive") {
        std::string errors;
        auto cfg = load("{ max = 5, valid = \"200ms\", inactive = \"3s\" }", errors);
        INFO(errors);
        REQUIRE(cfg);
        const Handler& h = *cfg->sites.at(0)->routes.at(0).handler;
        CHECK(get(h, "/a.txt").body == "a");
        fs::remove(t.path("a.txt"));
        c.advance(199);
        CHECK(get(h, "/a.txt").body == "a");
        c.advance(1);
        CHECK(get(h, "/a.txt").status == 404);
    }
    SECTION("false turns it off") {
        std::string errors;
        auto cfg = load("false", errors);
        INFO(errors);
        REQUIRE(cfg);
        const Handler& h = *cfg->sites.at(0)->routes.at(0).handler;
        CHECK(get(h, "/a.txt").body == "a");
        fs::remove(t.path("a.txt"));
        CHECK(get(h, "/a.txt").status == 404);
        CHECK(c.stats().entries == 0);
    }
    SECTION("true and an empty table mean the defaults") {
        for (const char* value : {"true", "{}"}) {
            std::string errors;
            CHECK(load(value, errors));
            CHECK(errors.empty());
        }
    }
    SECTION("mistakes are reported at FILE:LINE:COL") {
        auto error_of = [&](const std::string& value) {
            std::string errors;
            CHECK_FALSE(load(value, errors));
            return errors;
        };
        std::string e = error_of("\"yes\"");
        CHECK(e.rfind("test.toml:7:45: static.open_file_cache", 0) == 0);
        CHECK(e.find("open_file_cache") != std::string::npos);
        e = error_of("{ max = 0 }");
        CHECK(e.rfind("test.toml:7:", 0) == 0);
        CHECK(e.find("static.open_file_cache.max") != std::string::npos);
        CHECK(error_of("{ valid = \"soon\" }").find("static.open_file_cache.valid") !=
              std::string::npos);
        CHECK(error_of("{ inactive = \"0s\" }").find("inactive") != std::string::npos);
        CHECK(error_of("{ size = 10 }").find("unknown key \"size\"") != std::string::npos);
    }
}
