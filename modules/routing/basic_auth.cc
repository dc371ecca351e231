// `basic_auth = { file = "users.htpasswd", realm = "Restricted" }` (RFC 7617) at server, site
// or route scope. The file is checked when the config loads (missing, unreadable or malformed:
// an error at the `file` key) and re-read by each worker when it changes on disk (a bad
// replacement keeps the old users and logs why).
//
// Timing: a wrong password costs one full hash computation, like a right one; an unknown user
// is checked against another user's hash, so it costs the same as a known one. Verified
// credentials are remembered per worker (a digest of user, password and stored hash, at most
// 1024), so a browser repeating them does not pay bcrypt's cost on every request: only a
// correct password can ever be answered from there.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_set>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/config_reader.h"
#include "common/log.h"
#include "common/strings.h"
#include "modules/geo/database.h"
#include "modules/routing/htpasswd.h"
#include "modules/routing/routing.h"

namespace wraith::routing {

namespace {

constexpr size_t kMaxFile = 16 << 20;
constexpr size_t kRemembered = 1024;

bool read_file(const std::string& path, std::string& out, std::string* error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *error = "cannot read \"" + path + "\": " + std::strerror(errno);
        return false;
    }
    std::ostringstream text;
    text << in.rdbuf();
    out = text.str();
    if (out.size() > kMaxFile) {
        *error = "\"" + path + "\" is larger than 16 MiB";
        return false;
    }
    return true;
}

std::shared_ptr<const Htpasswd> load(const std::string& path, std::string* error) {
    std::string text;
    if (!read_file(path, text, error))
        return nullptr;
    auto file = std::make_shared<Htpasswd>();
    std::string why;
    if (!parse_htpasswd(text, *file, &why)) {
        *error = "\"" + path + "\" " + why;
        return nullptr;
    }
    return file;
}

double now_seconds() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

// "Basic dXNlcjpwYXNz" -> user, password (in `storage`).
bool credentials(std::string_view field, std::string& storage, std::string_view& user,
                 std::string_view& password) {
    while (!field.empty() && field.front() == ' ')
        field.remove_prefix(1);
    if (field.size() < 6 || !iequals(field.substr(0, 6), "basic "))
        return false;
    std::string_view b64 = field.substr(6);
    while (!b64.empty() && b64.front() == ' ')
        b64.remove_prefix(1);
    while (!b64.empty() && b64.back() == ' ')
        b64.remove_suffix(1);
    if (b64.empty() || b64.size() > 4096 || b64.size() % 4 != 0)
        return false;
    storage.resize(b64.size() / 4 * 3);
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(storage.data()),
                            reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    if (n < 0)
        return false;
    size_t len = static_cast<size_t>(n);
    // EVP_DecodeBlock counts the padding's zero bytes: take them off again.
    if (b64.back() == '=')
        len -= b64[b64.size() - 2] == '=' ? 2 : 1;
    storage.resize(len);
    size_t colon = storage.find(':');
    if (colon == std::string::npos)
        return false;
    user = std::string_view(storage).substr(0, colon);
    password = std::string_view(storage).substr(colon + 1);
    return true;
}

class BasicAuth final : public Filter {
public:
    BasicAuth(std::string path, std::string realm, std::shared_ptr<const Htpasswd> file,
              geo::FileIdentity id)
        : path_(std::move(path)), file_(std::move(file)), identity_(id) {
        std::string escaped;
        for (char c : realm) {
            if (c == '"' || c == '\\')
                escaped.push_back('\\');
            escaped.push_back(c);
        }
        challenge_ = "Basic realm=\"" + escaped + "\", charset=\"UTF-8\"";
    }

    unsigned phases() const override { return phase_bit(Phase::access); }

    AccessVerdict access(Request& req, ResponseWriter& out, AccessResume&) const override {
        refresh();
        std::string storage;
        std::string_view user, password;
        bool ok = false;
        if (const Header* h = req.headers.find("authorization");
            h && credentials(h->value, storage, user, password))
            ok = check(user, password);
        OPENSSL_cleanse(storage.data(), storage.size());
        if (ok)
            return AccessVerdict::next;
        ErrorLog::limited(LogLevel::info, "basic_auth: %s, client: %.*s",
                          user.empty() ? "no credentials" : "wrong user or password",
                          static_cast<int>(client_ip_of(req).size()), client_ip_of(req).data());
        static constexpr std::string_view body =
            "<!DOCTYPE html>\n<html><head><title>401 Unauthorized</title></head>\n"
            "<body><h1>401 Unauthorized</h1></body></html>\n";
        auto* head = req.arena->make<ResponseHead>();
        head->status = 401;
        head->headers.add("www-authenticate", challenge_);
        head->headers.add("content-type", "text/html; charset=utf-8");
        head->content_length = static_cast<int64_t>(body.size());
        if (req.method_id == Method::head) {
            out.send_headers(*head, true);
        } else {
            out.send_headers(*head, false);
            out.send_body(body, true);
        }
        return AccessVerdict::answered;
    }

private:
    bool check(std::string_view user, std::string_view password) const {
        const Htpasswd& file = *file_;
        if (file.entries.empty())
            return false;
        const HtpasswdEntry* e = file.find(user);
        // An unknown user is checked against the first user's hash, so it costs the same.
        const std::string& hash = e ? e->hash : file.entries.front().hash;
        std::string key = remember_key(user, password, hash);
        if (e && remembered_.count(key))
            return true;
        bool ok = verify_password(password, hash) && e;
        if (ok) {
            if (order_.size() == kRemembered) {
                remembered_.erase(order_.front());
                order_.pop_front();
            }
            remembered_.insert(key);
            order_.push_back(std::move(key));
        }
        return ok;
    }

    static std::string remember_key(std::string_view user, std::string_view password,
                                    const std::string& hash) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
        for (std::string_view part : {std::string_view(hash), user, password}) {
            uint64_t len = part.size(); // lengths first: no two triples hash alike
            EVP_DigestUpdate(ctx, &len, sizeof len);
            EVP_DigestUpdate(ctx, part.data(), part.size());
        }
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx, md, &n);
        EVP_MD_CTX_free(ctx);
        return std::string(reinterpret_cast<char*>(md), n);
    }

    // At most once a second: a changed file is read again; a bad one keeps the old users.
    void refresh() const {
        double now = now_seconds();
        if (now - checked_ < 1.0)
            return;
        checked_ = now;
        geo::FileIdentity id;
        if (!geo::identify(path_, id) || id == identity_ || id == failed_)
            return;
        std::string error;
        std::shared_ptr<const Htpasswd> fresh = load(path_, &error);
        if (!fresh) {
            failed_ = id;
            WLOG_ERROR("basic_auth: %s; keeping the users read before", error.c_str());
            return;
        }
        file_ = std::move(fresh);
        identity_ = id;
        remembered_.clear();
        order_.clear();
        WLOG_INFO("basic_auth: reread %s (%zu users)", path_.c_str(), file_->entries.size());
    }

    std::string path_;
    std::string challenge_;
    // A worker's view of the file. The filter is built before the workers fork, so each worker
    // process changes its own copy; a worker is single-threaded.
    mutable std::shared_ptr<const Htpasswd> file_;
    mutable geo::FileIdentity identity_, failed_;
    mutable double checked_ = 0;
    mutable std::unordered_set<std::string> remembered_;
    mutable std::deque<std::string> order_;
};

} // namespace

std::unique_ptr<Filter> build_basic_auth(TableReader& r, BuildContext& ctx) {
    const size_t errors = r.diag().count();
    std::string path;
    std::shared_ptr<const Htpasswd> file;
    geo::FileIdentity id;
    if (std::optional<std::string> f = r.string("file")) {
        path = resolve_path(ctx.config.dir, *f);
        std::string error;
        geo::identify(path, id);
        if (f->empty())
            r.error("file", "must not be empty");
        else if (!(file = load(path, &error)))
            r.error("file", error);
        else if (file->entries.empty())
            r.error("file", "\"" + path + "\" has no users (add one with htpasswd -B)");
    } else if (!r.has("file")) {
        r.error("file", "required: an htpasswd file (htpasswd -cB users.htpasswd NAME)");
    }
    std::string realm = r.string("realm", "Restricted");
    if (!is_clean_field_value(realm))
        r.error("realm", "must not contain control characters");
    if (r.diag().count() != errors)
        return nullptr;
    return std::make_unique<BasicAuth>(std::move(path), std::move(realm), std::move(file), id);
}

} // namespace wraith::routing
