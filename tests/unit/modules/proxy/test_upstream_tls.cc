// HTTPS upstream settings ([upstream.NAME] tls, pass = "https://..."): what loads, with which
// defaults, and every problem reported as FILE:LINE:COL, including those only found when the
// TLS context is built (a CA file without certificates, a key that is not the certificate's).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/config.h"
#include "modules/proxy/proxy.h"
#include "modules/proxy/upstream_config.h"
#include "modules/proxy/upstream_tls.h"

using namespace wraith;
using namespace wraith::proxy;

namespace {

// A temp folder with a self-signed certificate, its key, another key, and a file that is no
// PEM at all; removed at the end of the test.
struct Pki {
    std::filesystem::path dir;
    std::string cert, key, other_key, garbage;

    Pki() {
        char tmpl[] = "/tmp/wraith-uptls-unit-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        dir = tmpl;
        cert = (dir / "leaf.pem").string();
        key = (dir / "leaf.key").string();
        other_key = (dir / "other.key").string();
        garbage = (dir / "garbage.pem").string();
        EVP_PKEY* pkey = EVP_EC_gen("P-256");
        EVP_PKEY* other = EVP_EC_gen("P-256");
        REQUIRE((pkey && other));
        X509* x = X509_new();
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, pkey);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("unit"), -1, -1, 0);
        X509_set_issuer_name(x, name);
        REQUIRE(X509_sign(x, pkey, EVP_sha256()) > 0);
        write(cert, [&](FILE* f) { return PEM_write_X509(f, x); });
        write(key, [&](FILE* f) {
            return PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
        });
        write(other_key, [&](FILE* f) {
            return PEM_write_PrivateKey(f, other, nullptr, nullptr, 0, nullptr, nullptr);
        });
        write(garbage, [](FILE* f) { return std::fputs("not a certificate\n", f) >= 0 ? 1 : 0; });
        X509_free(x);
        EVP_PKEY_free(pkey);
        EVP_PKEY_free(other);
    }
    ~Pki() { std::filesystem::remove_all(dir); }

    template <class F> static void write(const std::string& path, F body) {
        FILE* f = std::fopen(path.c_str(), "w");
        REQUIRE(f);
        REQUIRE(body(f) == 1);
        std::fclose(f);
    }
};

std::shared_ptr<const Config> load(const std::string& text, std::vector<std::string>& errors) {
    Diagnostics diag;
    auto config = load_config_text(text, "test.toml", "/nonexistent", diag);
    for (const Diagnostic& d : diag.list())
        errors.push_back(d.text());
    return config;
}

// An upstream "app" with `tls_line` (line 3), used by a route.
std::string config(const std::string& tls_line, const std::string& route = "upstream = \"app\"") {
    return "[upstream.app]\n"
           "servers = [\"127.0.0.1:9443\"]\n" +
           tls_line +
           "\n"
           "[[listen]]\n"
           "address = \"8080\"\n"
           "[[site]]\n"
           "hosts = [\"*\"]\n"
           "  [[site.route]]\n"
           "  proxy = { " +
           route + " }\n";
}

std::string toml_string(const std::string& s) {
    return "\"" + s + "\"";
}

} // namespace

TEST_CASE("upstream tls = true: verified against the system CAs, names from the servers",
          "[proxy][tls][config]") {
    std::vector<std::string> errors;
    auto cfg = load(config("tls = true"), errors);
    REQUIRE(errors.empty());
    const UpstreamConfig& up = *proxy_config(*cfg)->upstreams.at("app");
    REQUIRE(up.tls);
    CHECK(up.tls->verify);
    CHECK(up.tls->ca.empty());
    CHECK(up.tls->server_name.empty());
    CHECK(up.tls->min_version == 0x0303);
    CHECK(up.tls->session_reuse);
    CHECK(up.tls->context != nullptr);

    errors.clear();
    cfg = load(config("tls = false"), errors);
    REQUIRE(errors.empty());
    CHECK(proxy_config(*cfg)->upstreams.at("app")->tls == nullptr);
}

TEST_CASE("upstream tls table: every key", "[proxy][tls][config]") {
    Pki pki;
    std::vector<std::string> errors;
    auto cfg = load(config("tls = { verify = false, ca = " + toml_string(pki.cert) +
                           ", server_name = \"App.Internal\", cert = " + toml_string(pki.cert) +
                           ", key = " + toml_string(pki.key) +
                           ", min_version = \"1.3\", session_reuse = false }"),
                    errors);
    REQUIRE(errors.empty());
    const UpstreamTls& tls = *proxy_config(*cfg)->upstreams.at("app")->tls;
    CHECK_FALSE(tls.verify);
    CHECK(tls.ca == pki.cert);
    CHECK(tls.server_name == "app.internal");
    CHECK(tls.cert == pki.cert);
    CHECK(tls.key == pki.key);
    CHECK(tls.min_version == 0x0304);
    CHECK_FALSE(tls.session_reuse);
    CHECK(tls.context != nullptr);

    errors.clear();
    cfg = load(config("tls = { server_name = \"[::1]\" }"), errors);
    REQUIRE(errors.empty());
    CHECK(proxy_config(*cfg)->upstreams.at("app")->tls->server_name == "::1");
}

TEST_CASE("upstream tls: type, unknown keys, files, names and versions", "[proxy][tls][config]") {
    std::vector<std::string> errors;
    load(config("tls = \"yes\""), errors);
    CHECK(errors == std::vector<std::string>{
                        "test.toml:3:7: upstream.app.tls: expected true or a table { ca = "
                        "\"ca.pem\", ... }, got \"yes\"",
                        "test.toml:9:24: proxy.upstream: unknown upstream \"app\" (define it "
                        "with [upstream.app] servers = [...])",
                    });

    errors.clear();
    load(config("tls = { ca = \"/nonexistent/ca.pem\", server_name = \"bad name\", "
                "min_version = \"1.1\", sni = true }"),
         errors);
    REQUIRE(errors.size() >= 4);
    CHECK(errors[0] == "test.toml:3:14: upstream.app.tls.ca: cannot read "
                       "\"/nonexistent/ca.pem\": No such file or directory");
    CHECK(errors[1] == "test.toml:3:51: upstream.app.tls.server_name: expected a host name "
                       "such as \"app.internal\" or an IP address, got \"bad name\"");
    CHECK(errors[2] == "test.toml:3:77: upstream.app.tls.min_version: expected one of \"1.2\", "
                       "\"1.3\", got \"1.1\"");
    CHECK(errors[3] == "test.toml:3:84: unknown key \"sni\" in upstream.app.tls (expected one "
                       "of: verify, ca, server_name, cert, key, min_version, session_reuse)");

    errors.clear();
    load(config("tls = { cert = \"/nonexistent/c.pem\" }"), errors);
    REQUIRE(errors.size() >= 1);
    CHECK(errors[0] == "test.toml:3:16: upstream.app.tls.cert: needs key: the private key (PEM) "
                       "of the client certificate");
}

TEST_CASE("upstream tls: CA files and key pairs are checked when the context is built",
          "[proxy][tls][config]") {
    Pki pki;
    std::vector<std::string> errors;
    load(config("tls = { ca = " + toml_string(pki.garbage) + " }"), errors);
    REQUIRE(!errors.empty());
    CHECK(errors[0].rfind("test.toml:3:14: upstream.app.tls.ca: cannot load CA certificates "
                          "from " +
                              pki.garbage + ": ",
                          0) == 0);

    errors.clear();
    load(config("tls = { cert = " + toml_string(pki.cert) +
                ", key = " + toml_string(pki.other_key) + " }"),
         errors);
    REQUIRE(!errors.empty());
    CHECK(errors[0] == "test.toml:3:16: upstream.app.tls.key: private key " + pki.other_key +
                           " does not match certificate " + pki.cert);
}

TEST_CASE("pass = \"https://...\": TLS with the defaults, port 443", "[proxy][tls][config]") {
    UpstreamConfig up;
    CHECK(parse_pass_url("https://127.0.0.1", up).empty());
    REQUIRE(up.servers.size() == 1);
    CHECK(up.servers[0].address == "127.0.0.1:443");
    REQUIRE(up.tls);
    CHECK(up.tls->verify);

    UpstreamConfig named;
    CHECK(parse_pass_url("https://app.internal:8443/", named).empty());
    CHECK(named.servers[0].host == "app.internal");
    CHECK(named.servers[0].port == 8443);
    CHECK(named.tls);

    UpstreamConfig plain;
    CHECK(parse_pass_url("http://127.0.0.1", plain).empty());
    CHECK(plain.servers[0].address == "127.0.0.1:80");
    CHECK_FALSE(plain.tls);

    UpstreamConfig bad;
    CHECK(parse_pass_url("ftp://x", bad) ==
          "expected a URL like \"http://127.0.0.1:9000\", \"https://app.internal\" or "
          "\"grpc://127.0.0.1:50051\" (or h2c://, grpcs://, h3://), got \"ftp://x\"");

    // HTTP/2: cleartext (h2c, grpc) or TLS (grpcs); Unix sockets for the cleartext ones.
    for (const char* url : {"h2c://127.0.0.1:50051", "grpc://127.0.0.1:50051"}) {
        UpstreamConfig h2;
        CHECK(parse_pass_url(url, h2).empty());
        CHECK(h2.http2);
        CHECK_FALSE(h2.tls);
    }
    UpstreamConfig grpcs;
    CHECK(parse_pass_url("grpcs://app.internal", grpcs).empty());
    CHECK((grpcs.http2 && grpcs.tls && grpcs.servers[0].port == 443));
    UpstreamConfig unix_h2;
    CHECK(parse_pass_url("grpc://unix:/run/app.sock", unix_h2).empty());
    CHECK(unix_h2.servers[0].addr.ss_family == AF_UNIX);

    std::vector<std::string> errors;
    auto cfg = load(config("", "pass = \"https://127.0.0.1:9443\""), errors);
    CHECK(errors.empty());
    CHECK(cfg != nullptr);
}
