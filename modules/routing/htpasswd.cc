#include "modules/routing/htpasswd.h"

#include <crypt.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>
#include <memory>

namespace wraith::routing {

namespace {

constexpr size_t kMaxLine = 4096;
constexpr size_t kMaxEntries = 100000;

bool starts(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

// MD5 over pieces, through OpenSSL's EVP interface.
class Md5 {
public:
    Md5() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_md5(), nullptr); }
    ~Md5() { EVP_MD_CTX_free(ctx_); }
    Md5& add(std::string_view s) {
        EVP_DigestUpdate(ctx_, s.data(), s.size());
        return *this;
    }
    void finish(unsigned char out[16]) {
        unsigned int n = 0;
        EVP_DigestFinal_ex(ctx_, out, &n);
    }

private:
    EVP_MD_CTX* ctx_;
};

std::string_view bytes(const unsigned char* p, size_t n) {
    return {reinterpret_cast<const char*>(p), n};
}

void to64(std::string& out, unsigned long v, int n) {
    static constexpr char itoa64[] =
        "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    while (n-- > 0) {
        out.push_back(itoa64[v & 0x3f]);
        v >>= 6;
    }
}

// crypt_r's state is ~32 KiB: one per thread, made on first use.
crypt_data* crypt_state() {
    thread_local std::unique_ptr<crypt_data> data;
    if (!data)
        data = std::make_unique<crypt_data>();
    return data.get();
}

} // namespace

const HtpasswdEntry* Htpasswd::find(std::string_view user) const {
    for (const HtpasswdEntry& e : entries)
        if (e.user == user)
            return &e;
    return nullptr;
}

bool supported_hash(std::string_view h) {
    return starts(h, "$2y$") || starts(h, "$2a$") || starts(h, "$2b$") || starts(h, "$5$") ||
           starts(h, "$6$") || starts(h, "$1$") || starts(h, "$apr1$") || starts(h, "{SHA}");
}

bool parse_htpasswd(std::string_view text, Htpasswd& out, std::string* error) {
    out.entries.clear();
    size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty() || line.front() == '#')
            continue;
        auto bad = [&](const std::string& why) {
            *error = "line " + std::to_string(line_no) + ": " + why;
            return false;
        };
        if (line.size() > kMaxLine)
            return bad("longer than 4096 bytes");
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return bad("expected \"user:hash\"");
        std::string_view user = line.substr(0, colon);
        std::string_view hash = line.substr(colon + 1);
        // Apache's digest files have "user:realm:hash"; a hash never contains ':'.
        if (hash.find(':') != std::string_view::npos)
            return bad("expected \"user:hash\" (a digest file \"user:realm:hash\" is not "
                       "supported)");
        for (char c : line)
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                return bad("control character");
        if (!supported_hash(hash))
            return bad("user \"" + std::string(user) +
                       "\": unsupported hash (expected bcrypt $2y$, SHA-crypt $5$/$6$, "
                       "MD5 $apr1$/$1$ or {SHA}; create it with htpasswd -B)");
        if (out.entries.size() == kMaxEntries)
            return bad("more than 100000 users");
        if (!out.find(user))
            out.entries.push_back({std::string(user), std::string(hash)});
    }
    return true;
}

std::string apr1_crypt(std::string_view pw, std::string_view salt) {
    static constexpr std::string_view magic = "$apr1$";
    if (salt.size() > 8)
        salt = salt.substr(0, 8);
    unsigned char alt[16], fin[16];
    Md5().add(pw).add(salt).add(pw).finish(alt);
    Md5 ctx;
    ctx.add(pw).add(magic).add(salt);
    for (size_t left = pw.size(); left > 0; left -= std::min<size_t>(left, 16))
        ctx.add(bytes(alt, std::min<size_t>(left, 16)));
    static constexpr unsigned char zero = 0;
    for (size_t i = pw.size(); i; i >>= 1)
        ctx.add((i & 1) ? bytes(&zero, 1) : pw.substr(0, 1));
    ctx.finish(fin);
    // 1000 rounds to slow down guessing (the algorithm's definition).
    for (int i = 0; i < 1000; ++i) {
        Md5 round;
        if (i & 1)
            round.add(pw);
        else
            round.add(bytes(fin, 16));
        if (i % 3)
            round.add(salt);
        if (i % 7)
            round.add(pw);
        if (i & 1)
            round.add(bytes(fin, 16));
        else
            round.add(pw);
        round.finish(fin);
    }
    std::string out(magic);
    out.append(salt).push_back('$');
    to64(out, (fin[0] << 16) | (fin[6] << 8) | fin[12], 4);
    to64(out, (fin[1] << 16) | (fin[7] << 8) | fin[13], 4);
    to64(out, (fin[2] << 16) | (fin[8] << 8) | fin[14], 4);
    to64(out, (fin[3] << 16) | (fin[9] << 8) | fin[15], 4);
    to64(out, (fin[4] << 16) | (fin[10] << 8) | fin[5], 4);
    to64(out, fin[11], 2);
    return out;
}

bool verify_password(std::string_view password, std::string_view hash) {
    std::string computed;
    if (starts(hash, "$apr1$")) {
        std::string_view rest = hash.substr(6);
        computed = apr1_crypt(password, rest.substr(0, rest.find('$')));
    } else if (starts(hash, "{SHA}")) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1(reinterpret_cast<const unsigned char*>(password.data()), password.size(), md);
        unsigned char b64[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
        int n = EVP_EncodeBlock(b64, md, SHA_DIGEST_LENGTH);
        computed = "{SHA}" + std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
    } else {
        // crypt_r reads NUL-terminated strings: a password with a NUL cannot be one that
        // htpasswd hashed.
        if (password.find('\0') != std::string_view::npos)
            return false;
        std::string pw(password), setting(hash);
        const char* r = crypt_r(pw.c_str(), setting.c_str(), crypt_state());
        if (!r || r[0] == '*')
            return false; // libcrypt's failure token ("*0"): a malformed hash
        computed = r;
        OPENSSL_cleanse(pw.data(), pw.size());
    }
    // Equal lengths for every correct hash; the compare itself takes the same time for any
    // content (the length of a stored hash is no secret).
    bool ok = computed.size() == hash.size() &&
              CRYPTO_memcmp(computed.data(), hash.data(), hash.size()) == 0;
    OPENSSL_cleanse(computed.data(), computed.size());
    return ok;
}

} // namespace wraith::routing
