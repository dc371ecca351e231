#include "modules/static/static_handler.h"

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/http_date.h"
#include "common/mime.h"
#include "modules/static/autoindex.h"
#include "modules/static/content_type.h"
#include "modules/static/open_file_cache.h"
#include "modules/static/precompressed.h"
#include "modules/static/range.h"
#include "modules/static/validators.h"

namespace wraith::static_files {

namespace {

constexpr std::string_view kAllow = "GET, HEAD, OPTIONS";
constexpr std::string_view kOctetStream = "application/octet-stream";

// Adds one header field to the response that passes through, so send_error's pages (custom
// or built-in) can carry Allow (405) or Content-Range (416).
class ExtraHeaderWriter final : public ResponseWriter {
public:
    ExtraHeaderWriter(ResponseWriter& next, std::string_view name, std::string_view value)
        : next_(next), name_(name), value_(value) {}
    void send_informational(int status, const Headers& headers) override {
        next_.send_informational(status, headers);
    }
    void send_headers(ResponseHead& head, bool end_stream) override {
        head.headers.set(name_, value_);
        next_.send_headers(head, end_stream);
    }
    Result send_body(std::string_view data, bool end_stream) override {
        return next_.send_body(data, end_stream);
    }
    Result send_file(int fd, off_t offset, size_t len, bool end_stream) override {
        return next_.send_file(fd, offset, len, end_stream);
    }
    void on_writable(Callback cb) override { next_.on_writable(std::move(cb)); }
    void on_abort(Callback cb) override { next_.on_abort(std::move(cb)); }
    void reset() override { next_.reset(); }
    bool headers_sent() const override { return next_.headers_sent(); }
    uint64_t body_bytes_sent() const override { return next_.body_bytes_sent(); }

private:
    ResponseWriter& next_;
    std::string_view name_;
    std::string_view value_;
};

// Gives back the file reference of a lookup the handler does not serve from.
void release(OpenResult& f) {
    if (f.file)
        OpenFile::release(f.file);
    f.file = nullptr;
}

// The writer may read from the file until the exchange ends, so the reference (and with the
// last one, the descriptor) goes with the arena.
void release_at_end(Arena& arena, const OpenResult& f) {
    arena.defer(&OpenFile::release, f.file);
}

// One piece of a multipart body: literal framing or a slice of the file.
struct Segment {
    std::string_view data;
    off_t offset = 0;
    size_t length = 0;
    bool is_file = false;
};

// Queues segments in order and waits for on_writable whenever the writer says "blocked".
// Lives in the request arena.
struct BodyPump {
    ResponseWriter* out = nullptr;
    int fd = -1;
    Segment* segments = nullptr;
    size_t count = 0;
    size_t next = 0;
    bool aborted = false;

    void run() {
        while (!aborted && next < count) {
            const Segment& s = segments[next++];
            const bool end = next == count;
            auto r = s.is_file ? out->send_file(fd, s.offset, s.length, end)
                               : out->send_body(s.data, end);
            if (r == ResponseWriter::Result::closed)
                return;
            if (r == ResponseWriter::Result::blocked && !end) {
                out->on_writable([this] { run(); });
                return;
            }
        }
    }
};

// The Accept-Encoding field value; several field lines are joined with ", " (RFC 9110 §5.3).
std::string_view accept_encoding(const Headers& headers, Arena& arena) {
    if (headers.count("accept-encoding") <= 1)
        return headers.get("accept-encoding");
    size_t len = 0;
    for (const Header& h : headers)
        if (h.name == "accept-encoding")
            len += h.value.size() + 2;
    char* p = static_cast<char*>(arena.alloc(len, 1));
    size_t n = 0;
    for (const Header& h : headers) {
        if (h.name != "accept-encoding")
            continue;
        if (n > 0) {
            p[n++] = ',';
            p[n++] = ' ';
        }
        std::memcpy(p + n, h.value.data(), h.value.size());
        n += h.value.size();
    }
    return {p, n};
}

// send_error, except while serving a custom error page: a page that cannot be served is
// answered with the status it stood for (send_error then uses its built-in page).
void fail(Request& req, ResponseWriter& out, int status, std::string_view reason) {
    send_error(req, out, req.override_status ? req.override_status : status, reason);
}

// "/.well-known/" is the one dot-segment the web relies on (RFC 8615).
bool is_hidden(std::string_view path) {
    size_t i = 0;
    bool first = true;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        size_t end = path.find('/', i);
        if (end == std::string_view::npos)
            end = path.size();
        std::string_view seg = path.substr(i, end - i);
        if (seg.front() == '.' && !(first && seg == ".well-known"))
            return true;
        first = false;
        i = end;
    }
    return false;
}

bool is_location_safe(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::strchr("-._~/!$&'()*+,;=:@", c) != nullptr && c != '\0';
}

// `path` + "/" [+ "?" + query], percent-encoded. Built from the normalised path, which never
// starts with "//", so the result cannot be read as another host.
std::string_view directory_location(std::string_view path, std::string_view query, Arena& arena) {
    size_t cap = path.size() * 3 + 2 + query.size();
    char* p = static_cast<char*>(arena.alloc(cap, 1));
    size_t n = 0;
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char c : path) {
        if (is_location_safe(c)) {
            p[n++] = static_cast<char>(c);
        } else {
            p[n++] = '%';
            p[n++] = kHex[c >> 4];
            p[n++] = kHex[c & 15];
        }
    }
    p[n++] = '/';
    if (!query.empty()) {
        p[n++] = '?';
        std::memcpy(p + n, query.data(), query.size());
        n += query.size();
    }
    return {p, n};
}

// `path` (absolute, normalised) as RootDir takes it: no leading '/', "." for the root. False
// when it does not fit.
bool relative_path(std::string_view path, char (&rel)[PATH_MAX]) {
    while (!path.empty() && path.front() == '/')
        path.remove_prefix(1);
    if (path.empty())
        path = ".";
    if (path.size() >= sizeof rel)
        return false;
    std::memcpy(rel, path.data(), path.size());
    rel[path.size()] = '\0';
    return true;
}

class StaticHandler final : public Handler {
public:
    StaticHandler(const StaticOptions& options, std::unique_ptr<RootDir> root,
                  std::shared_ptr<const MimeTypes> mime, size_t module_index)
        : opt_(options), root_(std::move(root)), mime_(std::move(mime)),
          module_index_(module_index) {}

    void handle(Request& req, BodyReader& body, ResponseWriter& out) const override;
    const std::string& root() const { return opt_.root; }

private:
    OpenResult open_path(Request& req, std::string_view path) const;
    void serve_path(Request& req, ResponseWriter& out, std::string_view path) const;
    void serve_directory(Request& req, ResponseWriter& out, std::string_view path) const;
    void serve_file(Request& req, ResponseWriter& out, OpenResult file,
                    std::string_view path) const;
    void serve_listing(Request& req, ResponseWriter& out, std::string_view path) const;
    void send_open_error(Request& req, ResponseWriter& out, int err) const;
    void send_redirect(Request& req, ResponseWriter& out, std::string_view path) const;
    // The type a file is served as (with the route's charset when textual) and whether it is
    // compressible: worked out once per type, not per response.
    struct TypeInfo {
        std::string_view type;
        bool compressible = false;
    };
    const TypeInfo& type_for(std::string_view path) const;
    void add_cache_control(ResponseHead& head) const {
        if (opt_.cache_control)
            head.headers.add("cache-control", *opt_.cache_control);
    }

    StaticOptions opt_;
    std::unique_ptr<RootDir> root_;
    std::shared_ptr<const MimeTypes> mime_;
    // By the type's own characters (MimeTypes' entries and kOctetStream do not move), so a
    // lookup is a pointer hash. Filled in each worker after the fork; a worker is one thread.
    mutable std::unordered_map<const char*, TypeInfo> types_;
    size_t module_index_; // finds the worker's StaticWorker (open-file cache)
    mutable std::deque<std::string> type_strings_; // the charset variants TypeInfo points at
};

void StaticHandler::handle(Request& req, BodyReader& body, ResponseWriter& out) const {
    if (req.has_body)
        body.discard();
    // A custom error page is served whatever the failed request's method was.
    if (req.override_status == 0) {
        if (req.method_id == Method::options) {
            ResponseHead head;
            head.status = 204;
            head.headers.add("allow", kAllow);
            out.send_headers(head, true);
            return;
        }
        if (req.method_id != Method::get && req.method_id != Method::head) {
            auto* w = req.arena->make<ExtraHeaderWriter>(out, "allow", kAllow);
            send_error(req, *w, 405, "static: method not allowed");
            return;
        }
    }
    std::string_view path = req.decoded_path.empty() ? std::string_view("/") : req.decoded_path;
    if (opt_.try_files.empty()) {
        serve_path(req, out, path);
        return;
    }

    // try_files: every entry but the last is a check; the last is the fallback (a URI served
    // in place of the request, or "=CODE").
    char buf[PATH_MAX];
    for (size_t k = 0; k < opt_.try_files.size(); ++k) {
        const std::string& entry = opt_.try_files[k];
        const bool last = k + 1 == opt_.try_files.size();
        if (last && entry.front() == '=') {
            int status = std::atoi(entry.c_str() + 1);
            fail(req, out, status, "static: try_files exhausted");
            return;
        }
        // Substitute $uri (validated at build time to be the only variable).
        size_t n = 0;
        bool too_long = false;
        for (size_t i = 0; i < entry.size();) {
            std::string_view piece;
            if (entry.compare(i, 4, "$uri") == 0) {
                piece = path;
                i += 4;
            } else {
                piece = std::string_view(entry).substr(i, 1);
                i += 1;
            }
            if (n + piece.size() >= sizeof buf) {
                too_long = true;
                break;
            }
            std::memcpy(buf + n, piece.data(), piece.size());
            n += piece.size();
        }
        if (too_long) {
            if (!last)
                continue;
            fail(req, out, 404, "static: try_files path too long");
            return;
        }
        std::string_view candidate(buf, n);
        if (last) {
            serve_path(req, out, req.arena->copy(candidate));
            return;
        }
        OpenResult f = open_path(req, candidate);
        if (f.error != 0)
            continue;
        const bool want_dir = candidate.back() == '/';
        if (want_dir && S_ISDIR(f.st.st_mode)) {
            serve_directory(req, out, req.arena->copy(candidate));
            return;
        }
        if (!want_dir && S_ISREG(f.st.st_mode)) {
            serve_file(req, out, f, req.arena->copy(candidate));
            return;
        }
        release(f);
    }
}

// Opens `path` (absolute, normalised) below the root, through the worker's open-file cache
// unless the route turned it off. Hidden paths are ENOENT.
OpenResult StaticHandler::open_path(Request& req, std::string_view path) const {
    OpenResult r;
    if (opt_.hide_dotfiles && is_hidden(path)) {
        r.error = ENOENT;
        return r;
    }
    char rel[PATH_MAX];
    if (!relative_path(path, rel)) {
        r.error = ENAMETOOLONG;
        return r;
    }
    if (opt_.open_file_cache.enabled && req.modules)
        if (auto* w = req.modules->get<StaticWorker>(module_index_))
            return w->cache.open(req.loop, *root_, rel, opt_.open_file_cache);
    return open_uncached(*root_, rel);
}

void StaticHandler::serve_path(Request& req, ResponseWriter& out, std::string_view path) const {
    OpenResult f = open_path(req, path);
    if (f.error != 0) {
        send_open_error(req, out, f.error);
        return;
    }
    if (S_ISDIR(f.st.st_mode)) {
        if (path.back() != '/') {
            if (req.override_status)
                fail(req, out, 404, "static: error page is a directory");
            else
                send_redirect(req, out, path);
            return;
        }
        serve_directory(req, out, path);
        return;
    }
    if (S_ISREG(f.st.st_mode)) {
        serve_file(req, out, f, path);
        return;
    }
    release(f);
    fail(req, out, 403, "static: not a regular file");
}

void StaticHandler::send_open_error(Request& req, ResponseWriter& out, int err) const {
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        fail(req, out, 404, "static: not found");
        return;
    case EACCES:
    case EPERM:
        fail(req, out, 403, "static: permission denied");
        return;
    case ELOOP:
    case EXDEV:
        fail(req, out, 404, "static: symlink refused by follow_symlinks");
        return;
    default:
        fail(req, out, 500, "static: cannot open file");
    }
}

void StaticHandler::send_redirect(Request& req, ResponseWriter& out, std::string_view path) const {
    ResponseHead head;
    head.status = 301;
    head.headers.add("location", directory_location(path, req.query, *req.arena));
    head.content_length = 0;
    out.send_headers(head, true);
}

void StaticHandler::serve_directory(Request& req, ResponseWriter& out,
                                    std::string_view path) const {
    char buf[PATH_MAX];
    for (const std::string& name : opt_.index) {
        if (path.size() + name.size() >= sizeof buf)
            continue;
        std::memcpy(buf, path.data(), path.size());
        std::memcpy(buf + path.size(), name.data(), name.size());
        std::string_view candidate(buf, path.size() + name.size());
        OpenResult f = open_path(req, candidate);
        if (f.error != 0)
            continue;
        if (S_ISREG(f.st.st_mode)) {
            serve_file(req, out, f, req.arena->copy(candidate));
            return;
        }
        release(f);
    }
    if (opt_.autoindex) {
        serve_listing(req, out, path);
        return;
    }
    fail(req, out, 403, "static: directory index forbidden");
}

// The directory's stat may have come from the cache, which keeps no directory descriptors:
// open it (under the root's rules, like any lookup) to read it.
void StaticHandler::serve_listing(Request& req, ResponseWriter& out, std::string_view path) const {
    char rel[PATH_MAX];
    int dir_fd = relative_path(path, rel) ? root_->open_file(rel) : -ENAMETOOLONG;
    if (dir_fd < 0) {
        send_open_error(req, out, -dir_fd);
        return;
    }
    std::vector<DirEntry> entries;
    const bool listed = read_directory(dir_fd, opt_.hide_dotfiles, entries);
    close(dir_fd);
    if (!listed) {
        fail(req, out, 403, "static: cannot read directory");
        return;
    }
    std::string_view html = req.arena->copy(render_autoindex(path, entries));
    ResponseHead head;
    head.status = req.override_status ? req.override_status : 200;
    head.headers.add("content-type", with_charset("text/html", opt_.charset, *req.arena));
    head.content_length = static_cast<int64_t>(html.size());
    if (req.method_id == Method::head) {
        out.send_headers(head, true);
        return;
    }
    out.send_headers(head, false);
    out.send_body(html, true);
}

const StaticHandler::TypeInfo& StaticHandler::type_for(std::string_view path) const {
    std::string_view type = mime_ ? mime_->for_path(path) : std::string_view{};
    if (type.empty())
        type = kOctetStream;
    auto [it, added] = types_.try_emplace(type.data());
    if (added) {
        Arena scratch(256);
        std::string_view served = with_charset(type, opt_.charset, scratch);
        if (served.data() != type.data())
            served = type_strings_.emplace_back(served);
        it->second = TypeInfo{served, is_compressible_type(served)};
    }
    return it->second;
}

void StaticHandler::serve_file(Request& req, ResponseWriter& out, OpenResult file,
                               std::string_view path) const {
    Arena& arena = *req.arena;
    const bool overridden = req.override_status != 0;
    const bool is_get =
        req.method_id == Method::get || (overridden && req.method_id != Method::head);
    const Header* range_field = req.headers.find("range");
    const bool wants_range = range_field && is_get && !overridden;

    // The type comes from the path; an open file is reached by one path, so it is kept with
    // the file.
    const auto* known = static_cast<const TypeInfo*>(file.file->memo(this));
    if (!known) {
        known = &type_for(path);
        file.file->set_memo(this, known);
    }
    const TypeInfo& type_info = *known;
    const std::string_view type = type_info.type;
    const bool compressible = type_info.compressible;

    // Precompressed sidecar: the best coding the client accepts that has a regular file.
    // Range requests are answered from the identity file, so that byte positions always
    // refer to the same bytes whatever the client's Accept-Encoding. Only compressible types
    // are looked up (images and archives are not precompressed), so serving them costs no
    // failed opens; compressible types always carry Vary: Accept-Encoding.
    std::string_view encoding;
    std::string_view etag_suffix;
    if (opt_.precompressed && compressible && !wants_range) {
        SharedPrecompressedStats* precompressed = nullptr;
        if (req.modules)
            if (auto* w = req.modules->get<StaticWorker>(module_index_))
                precompressed = w->precompressed;
        Coding order[coding_count];
        size_t n = acceptable_codings(accept_encoding(req.headers, arena), order);
        char buf[PATH_MAX];
        for (size_t k = 0; k < n && path.size() + 5 < sizeof buf; ++k) {
            std::string_view ext = coding_extension(order[k]);
            std::memcpy(buf, path.data(), path.size());
            std::memcpy(buf + path.size(), ext.data(), ext.size());
            OpenResult side = open_path(req, std::string_view(buf, path.size() + ext.size()));
            if (side.error != 0)
                continue;
            if (!S_ISREG(side.st.st_mode)) {
                release(side);
                continue;
            }
            release(file);
            file = side;
            encoding = coding_token(order[k]);
            etag_suffix = coding_etag_suffix(order[k]);
            if (precompressed)
                precompressed->served[static_cast<int>(order[k])].fetch_add(
                    1, std::memory_order_relaxed);
            break;
        }
        if (n > 0 && encoding.empty() && precompressed)
            precompressed->missed.fetch_add(1, std::memory_order_relaxed);
    }
    release_at_end(arena, file);
    const int fd = file.file->fd(); // shared with other exchanges: reads use explicit offsets
    const bool vary = compressible;

    const uint64_t size = static_cast<uint64_t>(file.st.st_size);
    const time_t mtime = file.st.st_mtim.tv_sec;
    // The open file outlives the exchange's use of these (release_at_end above).
    std::string_view etag;
    std::string_view last_modified;
    if (!overridden) {
        if (opt_.etag)
            etag = file.file->etag(etag_suffix);
        last_modified = file.file->last_modified();
    }

    ResponseHead head;
    auto add_validators = [&] {
        if (!etag.empty())
            head.headers.add("etag", etag);
        if (!last_modified.empty())
            head.headers.add("last-modified", last_modified);
        if (vary)
            head.headers.add("vary", "Accept-Encoding");
    };

    if (!overridden) {
        // RFC 9110 §13.2.2; only GET and HEAD get here, both "safe".
        switch (evaluate_preconditions(req.headers, true, etag, mtime)) {
        case Precondition::failed:
            fail(req, out, 412, "static: precondition failed");
            return;
        case Precondition::not_modified:
            head.status = 304;
            add_validators();
            add_cache_control(head);
            out.send_headers(head, true);
            return;
        case Precondition::pass:
            break;
        }
    }

    if (wants_range && if_range_allows(req.headers, etag, mtime)) {
        ByteRange ranges[max_range_parts];
        size_t count = 0;
        switch (parse_range(range_field->value, size, ranges, count)) {
        case RangeOutcome::ignore:
            break;
        case RangeOutcome::unsatisfiable: {
            auto* w =
                arena.make<ExtraHeaderWriter>(out, "content-range", unsatisfied_range(size, arena));
            send_error(req, *w, 416, "static: range not satisfiable");
            return;
        }
        case RangeOutcome::satisfiable:
            head.status = 206;
            add_validators();
            add_cache_control(head);
            if (count == 1) {
                head.headers.add("content-type", type);
                head.headers.add("content-range", content_range(ranges[0], size, arena));
                head.content_length = static_cast<int64_t>(ranges[0].length());
                out.send_headers(head, false);
                out.send_file(fd, static_cast<off_t>(ranges[0].first), ranges[0].length(), true);
                return;
            }
            Multipart m = make_multipart(ranges, count, size, type, arena);
            head.headers.add("content-type", m.content_type);
            head.content_length = static_cast<int64_t>(m.content_length);
            auto* segs = static_cast<Segment*>(
                arena.alloc(sizeof(Segment) * (2 * count + 1), alignof(Segment)));
            for (size_t k = 0; k < count; ++k) {
                segs[2 * k] = Segment{m.part_heads[k], 0, 0, false};
                segs[2 * k + 1] = Segment{{},
                                          static_cast<off_t>(ranges[k].first),
                                          static_cast<size_t>(ranges[k].length()),
                                          true};
            }
            segs[2 * count] = Segment{m.closing, 0, 0, false};
            auto* pump = arena.make<BodyPump>();
            pump->out = &out;
            pump->fd = fd;
            pump->segments = segs;
            pump->count = 2 * count + 1;
            out.on_abort([pump] { pump->aborted = true; });
            out.send_headers(head, false);
            pump->run();
            return;
        }
    }

    head.status = overridden ? req.override_status : 200;
    head.headers.add("content-type", type);
    if (!encoding.empty())
        head.headers.add("content-encoding", encoding);
    add_validators();
    // Ranges are served from the identity file only, so a coded variant does not offer them.
    if (!overridden && encoding.empty())
        head.headers.add("accept-ranges", "bytes");
    if (!overridden)
        add_cache_control(head);
    head.content_length = static_cast<int64_t>(size);
    if (!is_get || size == 0) {
        out.send_headers(head, true);
        return;
    }
    out.send_headers(head, false);
    // TLS and QUIC copy file bytes into records anyway: a small file comes from memory instead
    // of a pread per response. Plain TCP keeps sendfile (no copy at all).
    if (req.conn && req.conn->tls)
        if (std::string_view bytes = file.file->content(); bytes.size() == size) {
            out.send_shared_body(bytes, true); // the open file outlives the exchange
            return;
        }
    out.send_file(fd, 0, static_cast<size_t>(size), true);
}

bool has_dot_segment(std::string_view s) {
    size_t i = 0;
    while (i <= s.size()) {
        size_t end = s.find('/', i);
        if (end == std::string_view::npos)
            end = s.size();
        std::string_view seg = s.substr(i, end - i);
        if (seg == "." || seg == "..")
            return true;
        i = end + 1;
    }
    return false;
}

} // namespace

std::string check_index(const std::vector<std::string>& index) {
    for (const std::string& name : index) {
        if (name.empty() || name == "." || name == ".." ||
            name.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
            return "index entries must be plain file names (no '/'), got \"" + name + "\"";
    }
    return {};
}

std::string check_try_files(const std::vector<std::string>& try_files) {
    if (try_files.empty())
        return "try_files needs at least one entry";
    for (size_t k = 0; k < try_files.size(); ++k) {
        const std::string& e = try_files[k];
        if (e.empty())
            return "try_files entries may not be empty";
        if (e.front() == '=') {
            if (k + 1 != try_files.size())
                return "\"" + e + "\" (a status) may only be the last try_files entry";
            if (e.size() != 4 || e.find_first_not_of("0123456789", 1) != std::string::npos ||
                std::atoi(e.c_str() + 1) < 400 || std::atoi(e.c_str() + 1) > 599)
                return "\"" + e + "\": a try_files status must be \"=4xx\" or \"=5xx\"";
            continue;
        }
        if (e.front() != '/' && !e.starts_with("$uri"))
            return "\"" + e + "\": try_files entries start with \"/\" or \"$uri\"";
        std::string rest;
        for (size_t i = 0; i < e.size();) {
            if (e.compare(i, 4, "$uri") == 0) {
                rest += '/';
                i += 4;
                continue;
            }
            if (e[i] == '$')
                return "\"" + e + "\": $uri is the only variable try_files knows";
            rest += e[i++];
        }
        if (rest.find_first_of(std::string_view("?#\\\0", 4)) != std::string::npos)
            return "\"" + e + "\": try_files entries are paths (no '?', '#' or '\\')";
        if (has_dot_segment(rest))
            return "\"" + e + "\": try_files entries may not contain \".\" or \"..\" segments";
    }
    return {};
}

std::unique_ptr<Handler> make_static_handler(const StaticOptions& options,
                                             std::shared_ptr<const MimeTypes> mime,
                                             std::string& error, size_t module_index) {
    if (error = check_index(options.index); !error.empty())
        return nullptr;
    if (!options.try_files.empty()) {
        if (error = check_try_files(options.try_files); !error.empty())
            return nullptr;
    }
    auto root = RootDir::open(options.root, options.follow_symlinks, error);
    if (!root)
        return nullptr;
    return std::make_unique<StaticHandler>(options, std::move(root), std::move(mime), module_index);
}

const std::string* static_root(const Handler& handler) {
    const auto* h = dynamic_cast<const StaticHandler*>(&handler);
    return h ? &h->root() : nullptr;
}

} // namespace wraith::static_files
