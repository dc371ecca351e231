#include "master/generate_certs.h"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <pwd.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <toml++/toml.h>

#include "common/config.h"

namespace wraith {

const char kGenerateCertsHelp[] =
    "usage: wraith generate certs --self-signed [--hosts LIST] [--dir DIR] [--days N] [--force]\n"
    "                             [-c FILE]\n\n"
    "Makes development certificates for TLS listeners. --self-signed creates a local\n"
    "development CA (wraith-dev-ca.pem + wraith-dev-ca.key, valid 10 years; reused when it\n"
    "already exists, so it has to be trusted only once) and a certificate signed by it:\n"
    "localhost.pem (certificate, then the CA) and localhost.key (mode 0600), ECDSA P-256,\n"
    "for the names in LIST.\n\n"
    "  --hosts LIST   comma-separated DNS names (*.example.test allowed) and IP addresses\n"
    "                 (default localhost,127.0.0.1,::1)\n"
    "  --dir DIR      where to write (default server.cert_dir of FILE: /etc/wraith/certs as\n"
    "                 root, ~/.wraith/certs otherwise)\n"
    "  --days N       certificate validity (default 397; browsers refuse more than 398)\n"
    "  --force        replace an existing localhost.pem/localhost.key (kept otherwise)\n\n"
    "ACME certificates through DNS-01 (--dns) will come with a later version.\n";

namespace {

constexpr const char* kCaCert = "wraith-dev-ca.pem";
constexpr const char* kCaKey = "wraith-dev-ca.key";
constexpr const char* kLeafCert = "localhost.pem";
constexpr const char* kLeafKey = "localhost.key";
constexpr long kCaDays = 3650;
constexpr long kDefaultLeafDays = 397;
constexpr long kMaxDays = 3650;

// A problem worth one line on stderr; `code` is the exit code.
struct GenerateError : std::runtime_error {
    int code;
    GenerateError(const std::string& what, int code = 1) : std::runtime_error(what), code(code) {}
};

template <auto Free> struct Deleter {
    template <class T> void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;

// The newest OpenSSL error queued, as text, and clears the queue.
std::string openssl_error() {
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last == 0)
        return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(last, buf, sizeof(buf));
    return buf;
}

// One subjectAltName entry: an IP address (4 or 16 bytes) or a DNS name (lower case).
struct AltName {
    bool is_ip = false;
    std::string text; // as printed: "localhost", "::1"
    unsigned char addr[16]{};
    int addr_len = 0;
};

bool valid_dns_name(const std::string& name) {
    if (name.empty() || name.size() > 253)
        return false;
    std::string rest = name;
    if (rest.rfind("*.", 0) == 0) // RFC 6125 §6.4.3: a wildcard only as the whole left label
        rest = rest.substr(2);
    size_t start = 0;
    std::string last_label;
    while (true) {
        size_t dot = rest.find('.', start);
        std::string label = rest.substr(start, dot == std::string::npos ? dot : dot - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
            return false;
        for (char c : label)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
                return false;
        last_label = label;
        if (dot == std::string::npos)
            break;
        start = dot + 1;
    }
    // "127.1" is not an address inet_pton takes, and no top-level domain is all digits.
    return last_label.find_first_not_of("0123456789") != std::string::npos;
}

AltName parse_host(const std::string& entry) {
    AltName n;
    std::string h = entry;
    if (h.size() > 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    if (inet_pton(AF_INET, h.c_str(), n.addr) == 1) {
        n.is_ip = true;
        n.addr_len = 4;
    } else if (inet_pton(AF_INET6, h.c_str(), n.addr) == 1) {
        n.is_ip = true;
        n.addr_len = 16;
    }
    if (n.is_ip) {
        char text[INET6_ADDRSTRLEN];
        inet_ntop(n.addr_len == 4 ? AF_INET : AF_INET6, n.addr, text, sizeof(text));
        n.text = text;
        return n;
    }
    for (char& c : h)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!valid_dns_name(h))
        throw GenerateError("--hosts: \"" + entry +
                            "\" is neither a DNS name nor an IP address (e.g. "
                            "--hosts localhost,127.0.0.1,::1,app.test)");
    n.text = h;
    return n;
}

std::vector<AltName> parse_hosts(const std::string& list) {
    std::vector<AltName> out;
    size_t start = 0;
    while (true) {
        size_t comma = list.find(',', start);
        std::string entry = list.substr(start, comma == std::string::npos ? comma : comma - start);
        if (entry.empty())
            throw GenerateError("--hosts: empty entry in \"" + list +
                                "\" (expected names separated by single commas)");
        AltName n = parse_host(entry);
        bool duplicate = false;
        for (const AltName& o : out)
            duplicate = duplicate || (o.is_ip == n.is_ip && o.text == n.text);
        if (!duplicate)
            out.push_back(n);
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return out;
}

struct Options {
    bool self_signed = false;
    std::string hosts = "localhost,127.0.0.1,::1";
    std::string dir; // empty: server.cert_dir of the config
    long days = kDefaultLeafDays;
    bool force = false;
    bool help = false;
};

Options parse_options(const std::vector<std::string>& args) {
    Options o;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        // "--opt VALUE" or "--opt=VALUE"
        auto value = [&](const char* name, std::string* out) {
            std::string n = name;
            if (a == n) {
                if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
                    throw GenerateError(n + " needs a value", 2);
                *out = args[++i];
                return true;
            }
            if (a.rfind(n + "=", 0) == 0) {
                *out = a.substr(n.size() + 1);
                return true;
            }
            return false;
        };
        std::string days;
        if (a == "-h" || a == "--help") {
            o.help = true;
        } else if (a == "--self-signed") {
            o.self_signed = true;
        } else if (a == "--force") {
            o.force = true;
        } else if (a == "--dns" || a.rfind("--dns=", 0) == 0) {
            throw GenerateError("generate certs --dns (ACME DNS-01) is not supported by this "
                                "version yet; use --self-signed for development certificates",
                                2);
        } else if (value("--hosts", &o.hosts) || value("--dir", &o.dir)) {
            if (a.rfind("--dir", 0) == 0 && o.dir.empty())
                throw GenerateError("--dir must not be empty", 2);
        } else if (value("--days", &days)) {
            char* end = nullptr;
            errno = 0;
            long d = std::strtol(days.c_str(), &end, 10);
            if (days.empty() || *end != '\0' || errno != 0 || d < 1 || d > kMaxDays)
                throw GenerateError("--days: expected a number of days from 1 to " +
                                        std::to_string(kMaxDays) + ", got \"" + days + "\"",
                                    2);
            o.days = d;
        } else if (!a.empty() && a[0] == '-') {
            throw GenerateError("generate certs: unknown option " + a, 2);
        } else {
            throw GenerateError("generate certs: unexpected argument " + a, 2);
        }
    }
    if (!o.help && !o.self_signed)
        throw GenerateError("generate certs needs --self-signed (a development CA and a "
                            "certificate signed by it)",
                            2);
    return o;
}

// server.cert_dir of the config at `config_path` (resolved against its folder), or the default
// when the file does not exist or does not set it.
std::string cert_dir_from_config(const std::string& config_path) {
    std::string base = config_path.substr(0, config_path.rfind('/'));
    std::string configured;
    std::error_code ec;
    if (std::filesystem::exists(config_path, ec)) {
        try {
            toml::table t = toml::parse_file(config_path);
            if (auto v = t["server"]["cert_dir"].value<std::string>())
                configured = *v;
        } catch (const toml::parse_error& e) {
            throw GenerateError(config_path + ":" + std::to_string(e.source().begin.line) + ":" +
                                std::to_string(e.source().begin.column) + ": " +
                                std::string(e.description()) +
                                " (needed for server.cert_dir; fix it or pass --dir)");
        }
    }
    if (configured.empty())
        configured = geteuid() == 0 ? "/etc/wraith/certs" : home_dir() + "/.wraith/certs";
    return resolve_path(base, configured);
}

// mkdir -p; directories it creates get mode 0755 whatever the umask.
void make_dirs(const std::string& dir) {
    std::string path;
    size_t pos = 0;
    while (pos != std::string::npos) {
        size_t slash = dir.find('/', pos + 1);
        path = dir.substr(0, slash);
        pos = slash;
        if (path.empty() || path == "/")
            continue;
        if (mkdir(path.c_str(), 0755) == 0) {
            chmod(path.c_str(), 0755);
        } else if (errno != EEXIST) {
            throw GenerateError("cannot create " + path + ": " + strerror(errno) +
                                " (pass --dir with a folder you can write)");
        }
    }
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw GenerateError(dir + " is not a folder (pass --dir with a folder you can write)");
    if (access(dir.c_str(), W_OK | X_OK) != 0)
        throw GenerateError("cannot write to " + dir + ": " + strerror(errno) +
                            " (run as its owner, or pass --dir)");
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

// Writes a file through a temporary name and rename(2), so a reader never sees half a key
// and a key is never readable by others, not even for a moment.
template <class Write>
void write_file_atomically(const std::string& path, mode_t mode, Write write) {
    std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        throw GenerateError("cannot write " + path + ": " + strerror(errno));
    fchmod(fd, mode);
    FILE* f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp.c_str());
        throw GenerateError("cannot write " + path + ": " + strerror(errno));
    }
    bool ok = write(f);
    std::string why = ok ? "" : openssl_error();
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        ok = false;
        why = strerror(errno);
    }
    if (fclose(f) != 0 && ok) {
        ok = false;
        why = strerror(errno);
    }
    if (ok && rename(tmp.c_str(), path.c_str()) != 0) {
        ok = false;
        why = strerror(errno);
    }
    if (!ok) {
        unlink(tmp.c_str());
        throw GenerateError("cannot write " + path + ": " + why);
    }
}

void write_key(const std::string& path, EVP_PKEY* key) {
    write_file_atomically(path, 0600, [&](FILE* f) {
        return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    });
}

void write_certs(const std::string& path, std::initializer_list<X509*> chain) {
    write_file_atomically(path, 0644, [&](FILE* f) {
        for (X509* c : chain)
            if (PEM_write_X509(f, c) != 1)
                return false;
        return true;
    });
}

X509Ptr read_cert(const std::string& path) {
    FILE* f = fopen(path.c_str(), "re");
    if (!f)
        throw GenerateError("cannot read " + path + ": " + strerror(errno));
    X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
    fclose(f);
    if (!cert)
        throw GenerateError(path + " holds no PEM certificate: " + openssl_error());
    return cert;
}

PkeyPtr read_key(const std::string& path) {
    FILE* f = fopen(path.c_str(), "re");
    if (!f)
        throw GenerateError("cannot read " + path + ": " + strerror(errno));
    PkeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    fclose(f);
    if (!key)
        throw GenerateError(path + " holds no unencrypted PEM private key: " + openssl_error());
    return key;
}

PkeyPtr new_p256_key() {
    PkeyPtr key(EVP_EC_gen("P-256"));
    if (!key)
        throw GenerateError("cannot make an ECDSA P-256 key: " + openssl_error());
    return key;
}

// "2035-08-01" for an ASN.1 time.
std::string date_text(const ASN1_TIME* t) {
    struct tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return "?";
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
    return buf;
}

std::string user_at_host() {
    std::string user = "user";
    if (const passwd* pw = getpwuid(geteuid()))
        user = pw->pw_name;
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    return user + "@" + host;
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
        throw GenerateError(std::string("cannot add certificate extension ") + OBJ_nid2sn(nid) +
                            ": " + openssl_error());
}

void add_alt_names(X509* cert, const std::vector<AltName>& names) {
    NamesPtr gens(sk_GENERAL_NAME_new_null());
    for (const AltName& n : names) {
        GENERAL_NAME* g = GENERAL_NAME_new();
        if (n.is_ip) {
            ASN1_OCTET_STRING* ip = ASN1_OCTET_STRING_new();
            ASN1_OCTET_STRING_set(ip, n.addr, n.addr_len);
            GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        } else {
            ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
            ASN1_STRING_set(dns, n.text.data(), static_cast<int>(n.text.size()));
            GENERAL_NAME_set0_value(g, GEN_DNS, dns);
        }
        sk_GENERAL_NAME_push(gens.get(), g);
    }
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT) != 1)
        throw GenerateError("cannot add subjectAltName: " + openssl_error());
}

// The subjectAltName entries of `cert`, as text ("localhost, 127.0.0.1").
std::string alt_names_text(X509* cert) {
    std::string out;
    auto* gens =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (!gens)
        return out;
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
        std::string item;
        if (g->type == GEN_DNS) {
            item.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                        ASN1_STRING_length(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            char text[INET6_ADDRSTRLEN] = "?";
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress),
                          text, sizeof(text));
            item = text;
        } else {
            continue;
        }
        out += (out.empty() ? "" : ", ") + item;
    }
    GENERAL_NAMES_free(gens);
    return out;
}

std::string names_text(const std::vector<AltName>& names) {
    std::string out;
    for (const AltName& n : names)
        out += (out.empty() ? "" : ", ") + n.text;
    return out;
}

// What a new certificate says about itself and who signs it.
struct CertSpec {
    EVP_PKEY* key = nullptr; // the certificate's own key
    std::string common_name;
    std::string organization;
    X509* issuer = nullptr; // nullptr: self-signed
    EVP_PKEY* issuer_key = nullptr;
    long days = 0;
    bool ca = false;
    std::vector<AltName> alt_names;
};

X509Ptr make_cert(const CertSpec& spec) {
    X509Ptr cert(X509_new());
    if (!cert)
        throw GenerateError("cannot make a certificate: " + openssl_error());
    X509* x = cert.get();
    X509_set_version(x, X509_VERSION_3);

    // RFC 5280 §4.1.2.2: positive, at most 20 octets; random so reissues never collide.
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        throw GenerateError("cannot make a serial number: " + openssl_error());
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    BignumPtr bn(BN_bin2bn(serial, sizeof(serial), nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)))
        throw GenerateError("cannot set the serial number: " + openssl_error());

    // An hour of slack for clocks that run a little behind.
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_time_adj_ex(X509_getm_notAfter(x), static_cast<int>(spec.days), 0, nullptr);
    X509_set_pubkey(x, spec.key);

    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.organization.c_str()),
                               -1, -1, 0);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                                   -1, -1, 0) != 1)
        throw GenerateError("cannot set the certificate's name: " + openssl_error());
    X509_set_issuer_name(x, spec.issuer ? X509_get_subject_name(spec.issuer) : name);

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, spec.issuer ? spec.issuer : x, x, nullptr, nullptr, 0);
    if (spec.ca) {
        add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(x, &ctx, NID_subject_key_identifier, "hash");
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    } else {
        add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature");
        add_ext(x, &ctx, NID_ext_key_usage, "serverAuth");
        add_ext(x, &ctx, NID_subject_key_identifier, "hash");
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid,issuer");
        add_alt_names(x, spec.alt_names);
    }
    if (X509_sign(x, spec.issuer_key ? spec.issuer_key : spec.key, EVP_sha256()) == 0)
        throw GenerateError("cannot sign the certificate: " + openssl_error());
    return cert;
}

struct Ca {
    X509Ptr cert;
    PkeyPtr key;
};

// The development CA in `dir`: the existing one, checked, or a new one.
Ca load_or_make_ca(const std::string& dir) {
    const std::string cert_path = dir + "/" + kCaCert, key_path = dir + "/" + kCaKey;
    bool have_cert = file_exists(cert_path), have_key = file_exists(key_path);
    Ca ca;
    if (have_cert && have_key) {
        ca.cert = read_cert(cert_path);
        ca.key = read_key(key_path);
        if (X509_check_private_key(ca.cert.get(), ca.key.get()) != 1)
            throw GenerateError(key_path + " is not the key of " + cert_path +
                                ": remove both to make a new development CA");
        if (X509_check_ca(ca.cert.get()) == 0)
            throw GenerateError(cert_path + " is not a CA certificate: remove it and " + key_path +
                                " to make a new development CA");
        if (X509_cmp_current_time(X509_get0_notAfter(ca.cert.get())) <= 0)
            throw GenerateError(cert_path + " expired on " +
                                date_text(X509_get0_notAfter(ca.cert.get())) + ": remove it and " +
                                key_path + " to make a new one (and trust that one again)");
        printf("wraith: using the development CA %s (valid until %s)\n", cert_path.c_str(),
               date_text(X509_get0_notAfter(ca.cert.get())).c_str());
        return ca;
    }
    if (have_cert || have_key)
        throw GenerateError("found " + (have_cert ? cert_path : key_path) + " without " +
                            (have_cert ? key_path : cert_path) +
                            ": restore it, or remove both to make a new development CA");
    ca.key = new_p256_key();
    CertSpec spec;
    spec.key = ca.key.get();
    spec.organization = "Wraith development CA";
    spec.common_name = "Wraith development CA " + user_at_host();
    if (spec.common_name.size() > 64) // X.520 ub-common-name
        spec.common_name.resize(64);
    spec.days = kCaDays;
    spec.ca = true;
    ca.cert = make_cert(spec);
    write_key(key_path, ca.key.get());
    write_certs(cert_path, {ca.cert.get()});
    printf("wraith: created the development CA %s (key %s, valid until %s)\n", cert_path.c_str(),
           key_path.c_str(), date_text(X509_get0_notAfter(ca.cert.get())).c_str());
    return ca;
}

// Days from now until `t` (rounded down), or 0 if it has passed.
long days_until(const ASN1_TIME* t) {
    int days = 0, secs = 0;
    if (ASN1_TIME_diff(&days, &secs, nullptr, t) != 1 || days < 0)
        return 0;
    return days;
}

void print_trust_hints(const std::string& dir) {
    const std::string ca = dir + "/" + kCaCert;
    printf("\n"
           "Serve them from a TLS site in wraith.toml:\n"
           "  tls = { cert = \"%s/%s\", key = \"%s/%s\" }\n"
           "\n"
           "Trust the development CA once (it signs every certificate made here):\n"
           "  Debian/Ubuntu:   sudo cp %s /usr/local/share/ca-certificates/wraith-dev-ca.crt"
           " && sudo update-ca-certificates\n"
           "  curl:            curl --cacert %s https://localhost:8443/\n"
           "  Chromium (NSS):  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n wraith-dev -i %s\n"
           "                   (certutil is in libnss3-tools; Firefox: Settings > Certificates >"
           " Import)\n"
           "Keep %s/%s private: whoever has it can make certificates this machine trusts.\n",
           dir.c_str(), kLeafCert, dir.c_str(), kLeafKey, ca.c_str(), ca.c_str(), ca.c_str(),
           dir.c_str(), kCaKey);
}

int run(const std::vector<std::string>& args, const std::string& config_path) {
    Options opts = parse_options(args);
    if (opts.help) {
        fputs(kGenerateCertsHelp, stdout);
        return 0;
    }
    // Check the names before touching the disk.
    std::vector<AltName> names = parse_hosts(opts.hosts);
    std::string dir = opts.dir.empty() ? cert_dir_from_config(config_path) : opts.dir;
    char cwd[PATH_MAX];
    if (dir[0] != '/' && getcwd(cwd, sizeof(cwd)))
        dir = resolve_path(cwd, dir);
    while (dir.size() > 1 && dir.back() == '/')
        dir.pop_back();
    make_dirs(dir);

    Ca ca = load_or_make_ca(dir);
    const std::string leaf_path = dir + "/" + kLeafCert, key_path = dir + "/" + kLeafKey;
    if (!opts.force && file_exists(leaf_path)) {
        X509Ptr leaf = read_cert(leaf_path);
        PkeyPtr ca_public(X509_get_pubkey(ca.cert.get()));
        if (X509_check_issued(ca.cert.get(), leaf.get()) != X509_V_OK ||
            X509_verify(leaf.get(), ca_public.get()) != 1)
            throw GenerateError(leaf_path + " was not issued by " + dir + "/" + kCaCert +
                                ": run again with --force to replace it");
        if (!file_exists(key_path))
            throw GenerateError("found " + leaf_path + " without " + key_path +
                                ": run again with --force to replace both");
        printf("wraith: kept %s for %s (valid until %s); --force replaces it\n", leaf_path.c_str(),
               alt_names_text(leaf.get()).c_str(),
               date_text(X509_get0_notAfter(leaf.get())).c_str());
        print_trust_hints(dir);
        return 0;
    }

    long days = opts.days;
    long ca_left = days_until(X509_get0_notAfter(ca.cert.get()));
    if (days > ca_left) {
        printf("wraith: the development CA expires in %ld days; the certificate will too\n",
               ca_left);
        days = ca_left > 0 ? ca_left : 1;
    }
    PkeyPtr key = new_p256_key();
    CertSpec spec;
    spec.key = key.get();
    spec.organization = "Wraith development certificate";
    spec.common_name = names.front().text.size() <= 64 ? names.front().text : "wraith development";
    spec.issuer = ca.cert.get();
    spec.issuer_key = ca.key.get();
    spec.days = days;
    spec.alt_names = names;
    X509Ptr leaf = make_cert(spec);
    write_key(key_path, key.get());
    write_certs(leaf_path, {leaf.get(), ca.cert.get()});
    printf("wraith: wrote %s (certificate + CA) and %s for %s, valid until %s\n", leaf_path.c_str(),
           key_path.c_str(), names_text(names).c_str(),
           date_text(X509_get0_notAfter(leaf.get())).c_str());
    print_trust_hints(dir);
    return 0;
}

} // namespace

int generate_certs(const std::vector<std::string>& args, const std::string& config_path) {
    try {
        return run(args, config_path);
    } catch (const GenerateError& e) {
        fflush(stdout);
        fprintf(stderr, "wraith: %s\n", e.what());
        if (e.code == 2)
            fputs("Run 'wraith help generate' for usage.\n", stderr);
        return e.code;
    }
}

} // namespace wraith
