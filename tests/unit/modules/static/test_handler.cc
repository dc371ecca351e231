// The static handler end to end: a temporary document root, a fake response writer that
// records what the protocol would send, and requests built by hand.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/http_date.h"
#include "common/mime.h"
#include "modules/static/static_handler.h"

using namespace wraith;
using namespace wraith::static_files;
namespace fs = std::filesystem;

namespace {

// Records one response as a protocol would send it; send_file bytes are read with pread.
class RecordingWriter final : public ResponseWriter {
public:
    int status = 0;
    std::multimap<std::string, std::string> headers;
    int64_t content_length = -2; // -2: send_headers never called
    int header_calls = 0;
    bool ended = false;
    bool headers_end_stream = false;
    std::string body;
    int block_every = 0; // when > 0, every data call answers "blocked"
    Callback writable;
    Callback aborted;

    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string("<none>") : it->second;
    }
    bool has(const std::string& name) const { return headers.count(name) > 0; }

    void send_informational(int, const Headers&) override {}
    void send_headers(ResponseHead& head, bool end_stream) override {
        REQUIRE_FALSE(ended);
        ++header_calls;
        status = head.status;
        content_length = head.content_length;
        for (const Header& h : head.headers)
            headers.emplace(std::string(h.name), std::string(h.value));
        headers_end_stream = end_stream;
        ended = end_stream;
    }
    Result send_body(std::string_view data, bool end_stream) override {
        REQUIRE(header_calls == 1);
        REQUIRE_FALSE(ended);
        body.append(data);
        ended = end_stream;
        return next_result();
    }
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override {
        REQUIRE(header_calls == 1);
        REQUIRE_FALSE(ended);
        std::string chunk(len, '\0');
        REQUIRE(pread(fd, chunk.data(), len, offset) == static_cast<ssize_t>(len));
        body += chunk;
        ended = end_stream;
        return next_result();
    }
    void on_writable(Callback cb) override { writable = std::move(cb); }
    void on_abort(Callback cb) override { aborted = std::move(cb); }
    void reset() override { ended = true; }
    bool headers_sent() const override { return header_calls > 0; }
    uint64_t body_bytes_sent() const override { return body.size(); }

private:
    Result next_result() { return block_every > 0 ? Result::blocked : Result::ok; }
};

class NullBody final : public BodyReader {
public:
    std::string_view peek() override { return {}; }
    void consume(size_t) override {}
    bool finished() const override { return true; }
    bool failed() const override { return false; }
    void on_data(Callback) override {}
    void pause() override {}
    void resume() override {}
    void discard() override {}
};

// A temporary directory tree, removed at the end of the test.
struct TempTree {
    fs::path dir;
    TempTree() {
        char tmpl[] = "/tmp/wraith-static-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        dir = tmpl;
        fs::create_directory(dir / "root");
    }
    ~TempTree() {
        std::error_code ec;
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(dir, ec);
    }
    fs::path root() const { return dir / "root"; }
    void file(const std::string& rel, const std::string& content) {
        fs::path p = root() / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << content;
    }
    void mkdir(const std::string& rel) { fs::create_directories(root() / rel); }
    void link(const std::string& target, const std::string& rel) {
        fs::create_symlink(target, root() / rel);
    }
};

struct Exchange {
    Arena arena;
    Request req;
    NullBody body;
    RecordingWriter out;

    Exchange(std::string_view method, std::string_view path) {
        req.method = method;
        req.method_id = method == "GET"       ? Method::get
                        : method == "HEAD"    ? Method::head
                        : method == "OPTIONS" ? Method::options
                        : method == "POST"    ? Method::post
                                              : Method::other;
        req.path = req.decoded_path = req.target = path;
        req.arena = &arena;
    }
    ~Exchange() { arena.reset(); } // closes the files the handler kept open
};

StaticOptions options_for(const TempTree& t) {
    StaticOptions o;
    o.root = t.root().string();
    return o;
}

std::unique_ptr<Handler> make(const StaticOptions& o) {
    std::string error;
    auto h = make_static_handler(o, MimeTypes::builtin(), error, 0);
    INFO(error);
    REQUIRE(h);
    return h;
}

// Runs one request. `fields` are added as request header fields.
std::unique_ptr<Exchange> run(const Handler& h, std::string_view method, std::string_view path,
                              std::vector<std::pair<std::string, std::string>> fields = {},
                              std::string_view query = {}) {
    auto ex = std::make_unique<Exchange>(method, path);
    // Header views must outlive the exchange: keep them in its arena.
    for (auto& [n, v] : fields)
        ex->req.headers.add(ex->arena.copy(n), ex->arena.copy(v));
    ex->req.query = query;
    h.handle(ex->req, ex->body, ex->out);
    return ex;
}

std::string etag_of(const Handler& h, std::string_view path) {
    auto ex = run(h, "GET", path);
    return ex->out.header("etag");
}

} // namespace

TEST_CASE("static handler: GET serves a file with validators", "[static][handler]") {
    TempTree t;
    t.file("hello.txt", "hello world");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/hello.txt");
    auto& out = ex->out;
    CHECK(out.status == 200);
    CHECK(out.ended);
    CHECK(out.body == "hello world");
    CHECK(out.content_length == 11);
    CHECK(out.header("content-type") == "text/plain; charset=utf-8");
    CHECK(out.header("accept-ranges") == "bytes");
    CHECK(out.header("vary") == "Accept-Encoding");
    CHECK(out.header("etag").front() == '"');
    CHECK(out.header("etag").back() == '"');
    CHECK(out.header("etag").substr(0, 3) != "W/\"");
    struct stat st {};
    REQUIRE(stat((t.root() / "hello.txt").c_str(), &st) == 0);
    char date[http_date_size];
    format_http_date(st.st_mtime, date);
    CHECK(out.header("last-modified") == date);
    CHECK_FALSE(out.has("cache-control"));
    CHECK_FALSE(out.has("content-encoding"));
}

TEST_CASE("static handler: HEAD has GET's headers and no body", "[static][handler]") {
    TempTree t;
    t.file("a.png", std::string(1000, 'x'));
    auto h = make(options_for(t));
    auto ex = run(*h, "HEAD", "/a.png");
    CHECK(ex->out.status == 200);
    CHECK(ex->out.headers_end_stream);
    CHECK(ex->out.body.empty());
    CHECK(ex->out.content_length == 1000);
    CHECK(ex->out.header("content-type") == "image/png");
    CHECK_FALSE(ex->out.has("vary")); // not compressible, no sidecar
}

TEST_CASE("static handler: empty file", "[static][handler]") {
    TempTree t;
    t.file("empty.txt", "");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/empty.txt");
    CHECK(ex->out.status == 200);
    CHECK(ex->out.content_length == 0);
    CHECK(ex->out.ended);
    auto r = run(*h, "GET", "/empty.txt", {{"range", "bytes=0-"}});
    CHECK(r->out.status == 200);
}

TEST_CASE("static handler: missing files are 404", "[static][handler]") {
    TempTree t;
    t.file("a.txt", "a");
    auto h = make(options_for(t));
    CHECK(run(*h, "GET", "/nope.txt")->out.status == 404);
    CHECK(run(*h, "GET", "/a.txt/")->out.status == 404);
    CHECK(run(*h, "GET", "/a.txt/more")->out.status == 404);
    CHECK(run(*h, "GET", "/dir/nope")->out.status == 404);
}

TEST_CASE("static handler: methods", "[static][handler]") {
    TempTree t;
    t.file("a.txt", "a");
    auto h = make(options_for(t));
    auto options = run(*h, "OPTIONS", "/a.txt");
    CHECK(options->out.status == 204);
    CHECK(options->out.header("allow") == "GET, HEAD, OPTIONS");
    CHECK(options->out.ended);
    auto post = run(*h, "POST", "/a.txt");
    CHECK(post->out.status == 405);
    CHECK(post->out.header("allow") == "GET, HEAD, OPTIONS");
    CHECK(post->out.ended);
}

TEST_CASE("static handler: directories redirect, then serve their index", "[static][handler]") {
    TempTree t;
    t.file("docs/index.html", "<h1>docs</h1>");
    t.mkdir("empty");
    auto h = make(options_for(t));
    auto redirect = run(*h, "GET", "/docs", {}, "a=1&b=2");
    CHECK(redirect->out.status == 301);
    CHECK(redirect->out.header("location") == "/docs/?a=1&b=2");
    CHECK(redirect->out.ended);
    auto index = run(*h, "GET", "/docs/");
    CHECK(index->out.status == 200);
    CHECK(index->out.body == "<h1>docs</h1>");
    CHECK(index->out.header("content-type") == "text/html; charset=utf-8");
    CHECK(run(*h, "GET", "/empty/")->out.status == 403);
}

TEST_CASE("static handler: redirect locations are percent-encoded and stay on this host",
          "[static][handler]") {
    TempTree t;
    t.mkdir("a dir");
    t.mkdir("evil.com");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/a dir");
    CHECK(ex->out.header("location") == "/a%20dir/");
    // The raw path "//evil.com" normalises to "/evil.com": never "//evil.com/".
    auto ex2 = std::make_unique<Exchange>("GET", "/evil.com");
    ex2->req.path = "//evil.com";
    h->handle(ex2->req, ex2->body, ex2->out);
    CHECK(ex2->out.header("location") == "/evil.com/");
}

TEST_CASE("static handler: index list is tried in order", "[static][handler]") {
    TempTree t;
    t.file("d/index.htm", "htm");
    t.file("d/default.txt", "txt");
    StaticOptions o = options_for(t);
    o.index = {"index.html", "index.htm", "default.txt"};
    auto h = make(o);
    CHECK(run(*h, "GET", "/d/")->out.body == "htm");
}

TEST_CASE("static handler: autoindex lists a directory", "[static][handler]") {
    TempTree t;
    t.file("files/b.txt", "bb");
    t.file("files/a<b>.txt", "a");
    t.file("files/.secret", "s");
    t.mkdir("files/sub");
    StaticOptions o = options_for(t);
    o.autoindex = true;
    auto h = make(o);
    auto ex = run(*h, "GET", "/files/");
    CHECK(ex->out.status == 200);
    CHECK(ex->out.header("content-type") == "text/html; charset=utf-8");
    CHECK(ex->out.content_length == static_cast<int64_t>(ex->out.body.size()));
    const std::string& html = ex->out.body;
    CHECK(html.find("a&lt;b&gt;.txt") != std::string::npos);
    CHECK(html.find("b.txt") != std::string::npos);
    CHECK(html.find("sub/") != std::string::npos);
    CHECK(html.find(".secret") == std::string::npos);
    auto head = run(*h, "HEAD", "/files/");
    CHECK(head->out.content_length == static_cast<int64_t>(html.size()));
    CHECK(head->out.body.empty());
}

TEST_CASE("static handler: dotfiles are hidden except .well-known", "[static][handler]") {
    TempTree t;
    t.file(".env", "SECRET=1");
    t.file(".git/config", "x");
    t.file("a/.hidden/b.txt", "x");
    t.file(".well-known/acme-challenge/tok", "token");
    auto h = make(options_for(t));
    CHECK(run(*h, "GET", "/.env")->out.status == 404);
    CHECK(run(*h, "GET", "/.git/config")->out.status == 404);
    CHECK(run(*h, "GET", "/a/.hidden/b.txt")->out.status == 404);
    CHECK(run(*h, "GET", "/.well-known/acme-challenge/tok")->out.body == "token");
    StaticOptions o = options_for(t);
    o.hide_dotfiles = false;
    auto allow = make(o);
    CHECK(run(*allow, "GET", "/.env")->out.body == "SECRET=1");
}

TEST_CASE("static handler: conditional requests", "[static][handler]") {
    TempTree t;
    t.file("c.css", "body{}");
    StaticOptions o = options_for(t);
    o.cache_control = "max-age=60";
    auto h = make(o);
    auto first = run(*h, "GET", "/c.css");
    std::string etag = first->out.header("etag");
    std::string lm = first->out.header("last-modified");
    CHECK(first->out.header("cache-control") == "max-age=60");

    auto inm = run(*h, "GET", "/c.css", {{"if-none-match", etag}});
    CHECK(inm->out.status == 304);
    CHECK(inm->out.headers_end_stream);
    CHECK(inm->out.body.empty());
    CHECK(inm->out.header("etag") == etag);
    CHECK(inm->out.header("last-modified") == lm);
    CHECK(inm->out.header("cache-control") == "max-age=60");
    CHECK(inm->out.header("vary") == "Accept-Encoding");
    CHECK_FALSE(inm->out.has("content-length"));
    CHECK(inm->out.content_length < 0);

    CHECK(run(*h, "GET", "/c.css", {{"if-none-match", "W/" + etag}})->out.status == 304);
    CHECK(run(*h, "HEAD", "/c.css", {{"if-none-match", etag}})->out.status == 304);
    CHECK(run(*h, "GET", "/c.css", {{"if-none-match", "\"x\""}})->out.status == 200);
    CHECK(run(*h, "GET", "/c.css", {{"if-modified-since", lm}})->out.status == 304);
    CHECK(run(*h, "GET", "/c.css", {{"if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT"}})
              ->out.status == 200);
    CHECK(run(*h, "GET", "/c.css", {{"if-match", "\"x\""}})->out.status == 412);
    CHECK(run(*h, "GET", "/c.css", {{"if-match", etag}})->out.status == 200);
    CHECK(run(*h, "GET", "/c.css", {{"if-match", "*"}})->out.status == 200);
    CHECK(run(*h, "GET", "/c.css", {{"if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT"}})
              ->out.status == 412);
    // If-None-Match takes precedence over If-Modified-Since.
    CHECK(run(*h, "GET", "/c.css", {{"if-none-match", "\"x\""}, {"if-modified-since", lm}})
              ->out.status == 200);
}

TEST_CASE("static handler: etag can be turned off", "[static][handler]") {
    TempTree t;
    t.file("a.txt", "a");
    StaticOptions o = options_for(t);
    o.etag = false;
    auto h = make(o);
    auto ex = run(*h, "GET", "/a.txt");
    CHECK_FALSE(ex->out.has("etag"));
    CHECK(ex->out.has("last-modified"));
}

TEST_CASE("static handler: single byte ranges", "[static][handler]") {
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/digits.txt", {{"range", "bytes=2-4"}});
    CHECK(ex->out.status == 206);
    CHECK(ex->out.body == "234");
    CHECK(ex->out.content_length == 3);
    CHECK(ex->out.header("content-range") == "bytes 2-4/10");
    CHECK(ex->out.header("content-type") == "text/plain; charset=utf-8");
    CHECK(run(*h, "GET", "/digits.txt", {{"range", "bytes=-3"}})->out.body == "789");
    CHECK(run(*h, "GET", "/digits.txt", {{"range", "bytes=7-"}})->out.body == "789");
    // HEAD ignores Range; other units and malformed fields are ignored.
    CHECK(run(*h, "HEAD", "/digits.txt", {{"range", "bytes=2-4"}})->out.status == 200);
    CHECK(run(*h, "GET", "/digits.txt", {{"range", "items=2-4"}})->out.status == 200);
    CHECK(run(*h, "GET", "/digits.txt", {{"range", "bytes=4-2"}})->out.status == 200);
}

TEST_CASE("static handler: unsatisfiable range is 416 with Content-Range", "[static][handler]") {
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/digits.txt", {{"range", "bytes=10-"}});
    CHECK(ex->out.status == 416);
    CHECK(ex->out.header("content-range") == "bytes */10");
}

TEST_CASE("static handler: If-Range decides between 206 and 200", "[static][handler]") {
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(options_for(t));
    std::string etag = etag_of(*h, "/digits.txt");
    auto match = run(*h, "GET", "/digits.txt", {{"range", "bytes=0-0"}, {"if-range", etag}});
    CHECK(match->out.status == 206);
    auto stale = run(*h, "GET", "/digits.txt", {{"range", "bytes=0-0"}, {"if-range", "\"old\""}});
    CHECK(stale->out.status == 200);
    CHECK(stale->out.body == "0123456789");
    std::string lm = run(*h, "GET", "/digits.txt")->out.header("last-modified");
    CHECK(run(*h, "GET", "/digits.txt", {{"range", "bytes=0-0"}, {"if-range", lm}})->out.status ==
          206);
}

TEST_CASE("static handler: multiple ranges make multipart/byteranges", "[static][handler]") {
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/digits.txt", {{"range", "bytes=0-1,5-6"}});
    auto& out = ex->out;
    CHECK(out.status == 206);
    std::string ct = out.header("content-type");
    REQUIRE(ct.rfind("multipart/byteranges; boundary=", 0) == 0);
    std::string boundary = ct.substr(std::string("multipart/byteranges; boundary=").size());
    CHECK(out.content_length == static_cast<int64_t>(out.body.size()));
    std::string expected = "--" + boundary +
                           "\r\ncontent-type: text/plain; charset=utf-8\r\n"
                           "content-range: bytes 0-1/10\r\n\r\n01"
                           "\r\n--" +
                           boundary +
                           "\r\ncontent-type: text/plain; charset=utf-8\r\n"
                           "content-range: bytes 5-6/10\r\n\r\n56"
                           "\r\n--" +
                           boundary + "--\r\n";
    CHECK(out.body == expected);
    CHECK(out.ended);
    CHECK_FALSE(out.has("content-range"));
}

TEST_CASE("static handler: multipart body waits for on_writable when blocked",
          "[static][handler]") {
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(options_for(t));
    Exchange ex("GET", "/digits.txt");
    ex.req.headers.add("range", "bytes=0-0,2-2,4-4");
    ex.out.block_every = 1;
    h->handle(ex.req, ex.body, ex.out);
    int rounds = 0;
    while (!ex.out.ended && ex.out.writable && rounds < 20) {
        Callback cb = std::move(ex.out.writable);
        ex.out.writable = nullptr;
        cb();
        ++rounds;
    }
    CHECK(ex.out.ended);
    CHECK(rounds == 6); // 7 segments: the first queued at once, one per writable after
    CHECK(ex.out.content_length == static_cast<int64_t>(ex.out.body.size()));
}

TEST_CASE("static handler: overlapping ranges coalesce into one part", "[static][handler]") {
    TempTree t;
    t.file("digits.txt", "0123456789");
    auto h = make(options_for(t));
    auto ex = run(*h, "GET", "/digits.txt", {{"range", "bytes=0-4,3-6"}});
    CHECK(ex->out.status == 206);
    CHECK(ex->out.header("content-range") == "bytes 0-6/10");
    CHECK(ex->out.body == "0123456");
}

TEST_CASE("static handler: precompressed sidecars follow Accept-Encoding", "[static][handler]") {
    TempTree t;
    t.file("app.js", "console.log(1)");
    t.file("app.js.gz", "GZ");
    t.file("app.js.br", "BR");
    t.file("logo.png", "PNG");
    t.file("logo.png.gz", "PNGGZ");
    auto h = make(options_for(t));
    std::string identity_tag = etag_of(*h, "/app.js");

    auto br = run(*h, "GET", "/app.js", {{"accept-encoding", "gzip, deflate, br"}});
    CHECK(br->out.body == "BR");
    CHECK(br->out.header("content-encoding") == "br");
    CHECK(br->out.header("content-type") == run(*h, "GET", "/app.js")->out.header("content-type"));
    CHECK(br->out.header("content-type").find("; charset=utf-8") != std::string::npos);
    CHECK(br->out.header("vary") == "Accept-Encoding");
    CHECK(br->out.header("etag").size() > 4);
    CHECK(br->out.header("etag").substr(br->out.header("etag").size() - 4) == "-br\"");
    CHECK(br->out.content_length == 2);
    CHECK_FALSE(br->out.has("accept-ranges"));

    auto gz = run(*h, "GET", "/app.js", {{"accept-encoding", "gzip"}});
    CHECK(gz->out.body == "GZ");
    CHECK(gz->out.header("content-encoding") == "gzip");
    // zstd preferred but absent: falls back to the next acceptable coding.
    auto fallback = run(*h, "GET", "/app.js", {{"accept-encoding", "zstd, gzip;q=0.5"}});
    CHECK(fallback->out.body == "GZ");
    auto none = run(*h, "GET", "/app.js", {{"accept-encoding", "br;q=0, gzip;q=0"}});
    CHECK(none->out.body == "console.log(1)");
    CHECK(none->out.header("etag") == identity_tag);
    CHECK(run(*h, "GET", "/app.js")->out.body == "console.log(1)");
    // Several Accept-Encoding lines count as one list.
    CHECK(run(*h, "GET", "/app.js", {{"accept-encoding", "identity"}, {"accept-encoding", "gzip"}})
              ->out.body == "GZ");

    // A sidecar's ETag revalidates the sidecar.
    std::string br_tag = br->out.header("etag");
    CHECK(run(*h, "GET", "/app.js", {{"accept-encoding", "br"}, {"if-none-match", br_tag}})
              ->out.status == 304);

    // Range requests use the identity file.
    auto range = run(*h, "GET", "/app.js", {{"accept-encoding", "br"}, {"range", "bytes=0-6"}});
    CHECK(range->out.status == 206);
    CHECK(range->out.body == "console");
    CHECK_FALSE(range->out.has("content-encoding"));

    // Incompressible types are never looked up with sidecars (no failed opens per image):
    // served as they are, without Vary, even to a client that accepts gzip.
    auto png = run(*h, "GET", "/logo.png", {{"accept-encoding", "gzip"}});
    CHECK_FALSE(png->out.has("vary"));
    CHECK_FALSE(png->out.has("content-encoding"));
    CHECK(png->out.body == "PNG");

    StaticOptions o = options_for(t);
    o.precompressed = false;
    auto off = make(o);
    CHECK(run(*off, "GET", "/app.js", {{"accept-encoding", "br"}})->out.body == "console.log(1)");
}

TEST_CASE("static handler: charset and cache_control options", "[static][handler]") {
    TempTree t;
    t.file("a.html", "x");
    t.file("b.png", "x");
    StaticOptions o = options_for(t);
    o.charset = "";
    o.cache_control = "no-cache";
    auto h = make(o);
    auto ex = run(*h, "GET", "/a.html");
    CHECK(ex->out.header("content-type") == "text/html");
    CHECK(ex->out.header("cache-control") == "no-cache");
    CHECK(run(*h, "GET", "/b.png", {{"range", "bytes=0-0"}})->out.header("cache-control") ==
          "no-cache");
    CHECK(run(*h, "GET", "/nope")->out.header("cache-control") == "<none>");
}

TEST_CASE("static handler: override_status serves an error page plainly", "[static][handler]") {
    TempTree t;
    t.file("404.html", "not here");
    auto h = make(options_for(t));
    Exchange ex("GET", "/404.html");
    ex.req.override_status = 404;
    ex.req.headers.add("range", "bytes=0-1");
    ex.req.headers.add("if-none-match", "*");
    h->handle(ex.req, ex.body, ex.out);
    CHECK(ex.out.status == 404);
    CHECK(ex.out.body == "not here");
    CHECK_FALSE(ex.out.has("etag"));
    CHECK_FALSE(ex.out.has("accept-ranges"));

    Exchange missing("GET", "/500.html");
    missing.req.override_status = 503;
    h->handle(missing.req, missing.body, missing.out);
    CHECK(missing.out.status == 503);
}

TEST_CASE("static handler: try_files with SPA fallback", "[static][handler]") {
    TempTree t;
    t.file("index.html", "spa");
    t.file("assets/app.js", "js");
    t.file("blog/index.html", "blog");
    StaticOptions o = options_for(t);
    o.try_files = {"$uri", "$uri/", "/index.html"};
    auto h = make(o);
    CHECK(run(*h, "GET", "/assets/app.js")->out.body == "js");
    CHECK(run(*h, "GET", "/blog")->out.body == "blog");
    CHECK(run(*h, "GET", "/blog/")->out.body == "blog");
    auto spa = run(*h, "GET", "/some/client/route");
    CHECK(spa->out.status == 200);
    CHECK(spa->out.body == "spa");
    CHECK(spa->out.header("content-type") == "text/html; charset=utf-8");
}

TEST_CASE("static handler: try_files fallback that is too long is a 404", "[static][handler]") {
    TempTree t;
    StaticOptions o = options_for(t);
    o.try_files = {"$uri", "/x/$uri$uri$uri$uri$uri"};
    auto h = make(o);
    std::string long_path = "/" + std::string(1500, 'a');
    auto ex = run(*h, "GET", long_path);
    CHECK(ex->out.status == 404);
    CHECK(ex->out.ended);
}

TEST_CASE("static handler: try_files with a status as the last entry", "[static][handler]") {
    TempTree t;
    t.file("page.html", "page");
    StaticOptions o = options_for(t);
    o.try_files = {"$uri", "$uri.html", "=404"};
    auto h = make(o);
    CHECK(run(*h, "GET", "/page")->out.body == "page");
    CHECK(run(*h, "GET", "/page.html")->out.body == "page");
    CHECK(run(*h, "GET", "/other")->out.status == 404);
}

TEST_CASE("static handler: invalid options are refused", "[static][handler]") {
    TempTree t;
    std::string error;
    StaticOptions o = options_for(t);
    o.try_files = {"=404", "$uri"};
    CHECK_FALSE(make_static_handler(o, nullptr, error, 0));
    CHECK(error.find("last") != std::string::npos);
    o.try_files = {"$uri", "/../etc/passwd"};
    CHECK_FALSE(make_static_handler(o, nullptr, error, 0));
    o.try_files = {"$uri", "$host"};
    CHECK_FALSE(make_static_handler(o, nullptr, error, 0));
    o.try_files = {};
    o.index = {"../x"};
    CHECK_FALSE(make_static_handler(o, nullptr, error, 0));
    o.index = {"index.html"};
    o.root = (t.dir / "missing").string();
    CHECK_FALSE(make_static_handler(o, nullptr, error, 0));
    t.file("f", "x");
    o.root = (t.root() / "f").string();
    CHECK_FALSE(make_static_handler(o, nullptr, error, 0));
}

TEST_CASE("static handler: without mime types everything is octet-stream", "[static][handler]") {
    TempTree t;
    t.file("a.html", "x");
    std::string error;
    auto h = make_static_handler(options_for(t), nullptr, error, 0);
    REQUIRE(h);
    CHECK(run(*h, "GET", "/a.html")->out.header("content-type") == "application/octet-stream");
}

TEST_CASE("static handler: unreadable files are 403", "[static][handler]") {
    if (geteuid() == 0)
        return; // root reads everything
    TempTree t;
    t.file("secret.txt", "x");
    fs::permissions(t.root() / "secret.txt", fs::perms::none);
    auto h = make(options_for(t));
    CHECK(run(*h, "GET", "/secret.txt")->out.status == 403);
}

TEST_CASE("static handler: special files are not served", "[static][handler]") {
    TempTree t;
    REQUIRE(mkfifo((t.root() / "pipe").c_str(), 0644) == 0);
    auto h = make(options_for(t));
    CHECK(run(*h, "GET", "/pipe")->out.status == 403); // and the open did not block
}

// Symlink policies, with openat2 and with the fallback walk.
TEST_CASE("static handler: follow_symlinks policies", "[static][handler][symlink]") {
    const bool fallback = GENERATE(false, true);
    force_openat2_fallback_for_tests(fallback);
    INFO("openat2 fallback: " << fallback);
    TempTree t;
    t.file("real/inside.txt", "inside");
    std::ofstream(t.dir / "outside.txt") << "outside";
    fs::create_directory(t.dir / "outdir");
    std::ofstream(t.dir / "outdir" / "x.txt") << "outdir";
    t.link("real/inside.txt", "rel-inside.txt");
    t.link((t.root() / "real" / "inside.txt").string(), "abs-inside.txt");
    t.link("../outside.txt", "escape.txt");
    t.link((t.dir / "outside.txt").string(), "abs-escape.txt");
    t.link("real", "dirlink");
    t.link((t.dir / "outdir").string(), "outlink");

    StaticOptions o = options_for(t);
    SECTION("within_root") {
        o.follow_symlinks = SymlinkPolicy::within_root;
        auto h = make(o);
        CHECK(run(*h, "GET", "/rel-inside.txt")->out.body == "inside");
        CHECK(run(*h, "GET", "/abs-inside.txt")->out.body == "inside");
        CHECK(run(*h, "GET", "/dirlink/inside.txt")->out.body == "inside");
        CHECK(run(*h, "GET", "/escape.txt")->out.status == 404);
        CHECK(run(*h, "GET", "/abs-escape.txt")->out.status == 404);
        CHECK(run(*h, "GET", "/outlink/x.txt")->out.status == 404);
    }
    SECTION("never") {
        o.follow_symlinks = SymlinkPolicy::never;
        auto h = make(o);
        CHECK(run(*h, "GET", "/real/inside.txt")->out.body == "inside");
        CHECK(run(*h, "GET", "/rel-inside.txt")->out.status == 404);
        CHECK(run(*h, "GET", "/dirlink/inside.txt")->out.status == 404);
        CHECK(run(*h, "GET", "/escape.txt")->out.status == 404);
        CHECK(run(*h, "GET", "/real/")->out.status == 403);
    }
    SECTION("any") {
        o.follow_symlinks = SymlinkPolicy::any;
        auto h = make(o);
        CHECK(run(*h, "GET", "/escape.txt")->out.body == "outside");
        CHECK(run(*h, "GET", "/outlink/x.txt")->out.body == "outdir");
    }
    force_openat2_fallback_for_tests(false);
}

TEST_CASE("static handler: a symlinked root is served", "[static][handler][symlink]") {
    TempTree t;
    t.file("a.txt", "a");
    fs::create_directory_symlink(t.root(), t.dir / "rootlink");
    StaticOptions o;
    o.root = (t.dir / "rootlink").string();
    auto h = make(o);
    CHECK(run(*h, "GET", "/a.txt")->out.body == "a");
}

TEST_CASE("static module: built from a route table", "[static][handler][config]") {
    TempTree t;
    t.file("www/index.html", "home");
    std::string text = "[[listen]]\naddress = \"127.0.0.1:8080\"\n"
                       "[[site]]\nhosts = [\"localhost\"]\n"
                       "[[site.route]]\npath = \"/\"\n"
                       "static = { root = \"root/www\", index = [\"index.html\"], "
                       "try_files = [\"$uri\", \"/index.html\"], autoindex = false, "
                       "charset = \"utf-8\", follow_symlinks = \"never\", dotfiles = \"allow\", "
                       "precompressed = false, etag = true, cache_control = \"max-age=1\" }\n";
    Diagnostics diag;
    auto cfg = load_config_text(text, "test.toml", t.dir.string(), diag);
    for (const auto& d : diag.list())
        UNSCOPED_INFO(d.text());
    REQUIRE(cfg);
    const Handler* h = cfg->sites.at(0)->routes.at(0).handler.get();
    REQUIRE(h);
    auto ex = run(*h, "GET", "/anything");
    CHECK(ex->out.body == "home");
    CHECK(ex->out.header("cache-control") == "max-age=1");
}

TEST_CASE("static module: config errors name the key", "[static][handler][config]") {
    TempTree t;
    auto errors = [&](const std::string& table) {
        std::string text = "[[listen]]\naddress = \"127.0.0.1:8080\"\n"
                           "[[site]]\nhosts = [\"localhost\"]\n"
                           "[[site.route]]\npath = \"/\"\nstatic = " +
                           table + "\n";
        Diagnostics diag;
        auto cfg = load_config_text(text, "test.toml", t.dir.string(), diag);
        std::string all;
        for (const auto& d : diag.list())
            all += d.text() + "\n";
        CHECK_FALSE(cfg);
        return all;
    };
    CHECK(errors("{ index = [\"index.html\"] }").find("root") != std::string::npos);
    CHECK(errors("{ root = \"missing\" }").find("directory") != std::string::npos);
    CHECK(errors("{ root = \"root\", follow_symlinks = \"sometimes\" }").find("follow_symlinks") !=
          std::string::npos);
    CHECK(errors("{ root = \"root\", try_files = [\"=404\", \"$uri\"] }").find("try_files") !=
          std::string::npos);
    CHECK(errors("{ root = \"root\", bogus = 1 }").find("bogus") != std::string::npos);
    CHECK(errors("{ root = \"root\", cache_control = \"a\\nb\" }").find("cache_control") !=
          std::string::npos);
}
