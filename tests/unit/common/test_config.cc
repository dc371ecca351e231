// Config loader: every error kind with its exact message and position, a full round trip, and
// multi-error reporting. Real modules are written elsewhere; routes here use the test-only
// modules registered below.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include <toml++/toml.h>

#include "common/config.h"
#include "common/mime.h"
#include "common/module.h"

using namespace wraith;

namespace {

// ---- test-only modules -----------------------------------------------------------------------

class TestHandler : public Handler {
public:
    std::string option;
    void handle(Request&, BodyReader&, ResponseWriter&) const override {}
};

std::unique_ptr<Handler> build_test_handler(TableReader& options, BuildContext& ctx) {
    auto h = std::make_unique<TestHandler>();
    h->option = options.string("option", "default");
    if (h->option == "fail") {
        options.error("option", "cannot be \"fail\"");
        return nullptr;
    }
    return h;
}

// Fails without reporting why: the loader must still fail the load.
std::unique_ptr<Handler> build_silent_handler(TableReader&, BuildContext&) {
    return nullptr;
}

class TestFilter : public Filter {
public:
    TestFilter(std::string name, Phase phase, int64_t level)
        : name(std::move(name)), phase_(phase), level(level) {}
    std::string name;
    Phase phase_;
    int64_t level;
    unsigned phases() const override { return phase_bit(phase_); }
};

std::unique_ptr<Filter> build_response_filter(TableReader& options, BuildContext&) {
    return std::make_unique<TestFilter>("test_filter", Phase::response,
                                        options.integer("level", 5, 1, 9));
}
std::unique_ptr<Filter> build_early_filter(TableReader&, BuildContext&) {
    return std::make_unique<TestFilter>("test_early_filter", Phase::response, 0);
}
std::unique_ptr<Filter> build_access_filter(TableReader&, BuildContext&) {
    return std::make_unique<TestFilter>("test_access_filter", Phase::access, 0);
}
// Only for sites listing "default-on.test", so routes that other tests in this binary build
// are left alone (an implicit default_on build may return nullptr: "not needed here").
std::unique_ptr<Filter> build_default_filter(TableReader&, BuildContext& ctx) {
    for (const HostMatch& h : ctx.site ? ctx.site->hosts : std::vector<HostMatch>{})
        if (h.text == "default-on.test")
            return std::make_unique<TestFilter>("test_default_filter", Phase::log, 0);
    return nullptr;
}

const ModuleRegistrar test_handler_registrar{
    ModuleSpec{.key = "test_handler", .is_handler = true, .build_handler = build_test_handler}};
const ModuleRegistrar test_other_handler_registrar{ModuleSpec{
    .key = "test_other_handler", .is_handler = true, .build_handler = build_test_handler}};
const ModuleRegistrar test_silent_handler_registrar{ModuleSpec{
    .key = "test_silent_handler", .is_handler = true, .build_handler = build_silent_handler}};
const ModuleRegistrar test_filter_registrar{
    ModuleSpec{.key = "test_filter", .order = 20, .build_filter = build_response_filter}};
const ModuleRegistrar test_early_filter_registrar{
    ModuleSpec{.key = "test_early_filter", .order = 10, .build_filter = build_early_filter}};
const ModuleRegistrar test_access_filter_registrar{
    ModuleSpec{.key = "test_access_filter", .order = 50, .build_filter = build_access_filter}};
// On by default (for "default-on.test" sites) unless a route says `test_default_filter = false`.
const ModuleRegistrar test_default_filter_registrar{ModuleSpec{.key = "test_default_filter",
                                                               .order = 0,
                                                               .build_filter = build_default_filter,
                                                               .default_on = true}};

// ---- helpers ---------------------------------------------------------------------------------

const std::string test_dir = "/nonexistent/wraith-config-test";

// Raw strings start with a newline for readability; line 1 is the line after it.
std::string strip(std::string_view text) {
    if (!text.empty() && text.front() == '\n')
        text.remove_prefix(1);
    return std::string(text);
}

struct Loaded {
    std::shared_ptr<const Config> config;
    std::vector<std::string> errors;
};

Loaded load(std::string_view text, const std::string& dir = test_dir) {
    Diagnostics diag;
    Loaded out;
    out.config = load_config_text(strip(text), "test.toml", dir, diag);
    for (const Diagnostic& d : diag.list())
        out.errors.push_back(d.text());
    if (out.config)
        REQUIRE(out.errors.empty());
    else
        REQUIRE(!out.errors.empty());
    return out;
}

std::vector<std::string> errors(std::string_view text) {
    return load(text).errors;
}

// A valid tail to append after the section under test.
const char* const valid_tail = R"toml(
[[listen]]
address = "8080"

[[site]]
hosts = ["example.com"]

  [[site.route]]
  test_handler = {}
)toml";

std::string with_tail(std::string_view head) {
    return strip(head) + strip(valid_tail);
}

std::vector<std::string> one(std::string message) {
    return {std::move(message)};
}

// PCRE2's message for a pattern that does not compile (common/regex.h).
std::string regex_error_text(const std::string& source) {
    std::string why;
    if (Regex::compile(source, Regex::none, &why))
        return "(no error)";
    return why;
}

const TestFilter* as_test_filter(const Filter* f) {
    return dynamic_cast<const TestFilter*>(f);
}

std::vector<std::string> test_filter_names(const Route& route) {
    std::vector<std::string> names;
    for (const Filter* f : route.filters.chain)
        if (const TestFilter* t = as_test_filter(f))
            names.push_back(t->name);
    return names;
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char pattern[] = "/tmp/wraith-config-test-XXXXXX";
        path = mkdtemp(pattern);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    void write(const std::string& name, std::string_view text) const {
        std::ofstream(path / name) << text;
    }
};

} // namespace

// ---- durations and sizes ---------------------------------------------------------------------

TEST_CASE("parse_duration accepts an integer with a unit", "[config]") {
    CHECK(parse_duration("250ms") == Duration{250});
    CHECK(parse_duration("30s") == Duration{30000});
    CHECK(parse_duration("5m") == Duration{300000});
    CHECK(parse_duration("1h") == Duration{3600000});
    CHECK(parse_duration("2d") == Duration{172800000});
    CHECK(parse_duration("0s") == Duration{0});
}

TEST_CASE("parse_duration rejects malformed, negative, fractional and overflowing input",
          "[config]") {
    for (std::string_view bad : {"", "30", "s", "-5s", "1.5s", "10 s", "10 parsecs", "5M", "5sec",
                                 "99999999999999999999s", "9999999999999999d"})
        CHECK_FALSE(parse_duration(bad).has_value());
}

TEST_CASE("parse_size accepts bytes and binary multiples in any case", "[config]") {
    CHECK(parse_size("512") == 512u);
    CHECK(parse_size("64k") == 65536u);
    CHECK(parse_size("64K") == 65536u);
    CHECK(parse_size("10m") == 10485760u);
    CHECK(parse_size("1G") == 1073741824u);
    CHECK(parse_size("0") == 0u);
}

TEST_CASE("parse_size rejects malformed, negative, fractional and overflowing input", "[config]") {
    for (std::string_view bad :
         {"", "k", "-1", "1.5m", "10 m", "10mb", "10t", "18446744073709551616", "17179869184g"})
        CHECK_FALSE(parse_size(bad).has_value());
}

TEST_CASE("Diagnostic text is FILE:LINE:COL: message", "[config]") {
    CHECK(Diagnostic{{"a.toml", 3, 7}, "bad"}.text() == "a.toml:3:7: bad");
    CHECK(Diagnostic{{"a.toml", 0, 0}, "unreadable"}.text() == "a.toml: unreadable");
}

// ---- whole files -----------------------------------------------------------------------------

TEST_CASE("a minimal config loads with defaults", "[config]") {
    Loaded l = load(valid_tail);
    const Config& c = *l.config;
    CHECK(c.dir == test_dir);
    CHECK(c.path == test_dir + "/test.toml");
    CHECK(c.server.workers == 0);
    CHECK(c.server.user == "www-data");
    CHECK(c.server.error_log == "stderr");
    CHECK(c.server.log_level == "info");
    CHECK(c.server.drain_timeout == Duration{30000});
    if (geteuid() == 0) {
        CHECK(c.server.pid_file == "/run/wraith.pid");
        CHECK(c.server.control_socket == "/run/wraith.sock");
        CHECK(c.server.cert_dir == "/etc/wraith/certs");
    } else {
        std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
        CHECK(c.server.pid_file == home + "/.wraith/wraith.pid");
        CHECK(c.server.control_socket == home + "/.wraith/wraith.sock");
        CHECK(c.server.cert_dir == home + "/.wraith/certs");
    }
    CHECK(c.server.mime_types.empty()); // no mime.types beside the config: built-in table
    REQUIRE(c.mime);
    CHECK(c.mime->lookup("html") == "text/html");
    CHECK(c.http.max_header_size == 32768);
    CHECK(c.access_log.path.empty());
    REQUIRE(c.listeners.size() == 1);
    const ListenConfig& l0 = c.listeners[0];
    CHECK(l0.address == "8080");
    CHECK(l0.backlog == 511);
    CHECK(l0.protocols == std::vector<std::string>{"http/1.1"});
    REQUIRE(l0.addr.ss_family == AF_INET6);
    CHECK(l0.addr_len == sizeof(sockaddr_in6));
    const auto* sa6 = reinterpret_cast<const sockaddr_in6*>(&l0.addr);
    CHECK(ntohs(sa6->sin6_port) == 8080);
    CHECK(IN6_IS_ADDR_UNSPECIFIED(&sa6->sin6_addr));
    REQUIRE(c.sites.size() == 1);
    CHECK(c.sites[0]->is_default); // the only (first) site is the default
    REQUIRE(c.sites[0]->routes.size() == 1);
    const Route& r = c.sites[0]->routes[0];
    CHECK(r.match.kind == PathMatch::Kind::prefix);
    CHECK(r.match.text == "/");
    CHECK(r.handler_name == "test_handler");
    REQUIRE(r.handler);
    CHECK(dynamic_cast<const TestHandler&>(*r.handler).option == "default");
    CHECK(test_filter_names(r).empty()); // the default-on test filter skips this site
}

TEST_CASE("a full config round-trips every key", "[config]") {
    Loaded l = load(R"toml(
[server]
workers = 4
user = "root"
group = "root"
pid_file = "run/w.pid"
control_socket = "/tmp/w.sock"
error_log = "logs/error.log"
log_level = "debug"
drain_timeout = "5m"
cert_dir = "certs"
max_connections = 500

[http]
client_max_body_size = "10m"
max_request_target = "4k"
max_header_size = "16k"
max_headers = 50
header_timeout = "10s"
body_timeout = 20
keepalive_timeout = "1h"
send_timeout = "250ms"
keepalive_requests = 99
server_header = ""

[access_log]
path = "logs/access.log"
format = "json"

[[listen]]
address = "[::]:8080"
ipv6_only = true
backlog = 1024
tls = false
protocols = ["http/1.1"]

[[listen]]
address = "127.0.0.1:8080"

[[listen]]
address = "*:9090"

[[listen]]
address = 9091

[[site]]
hosts = ["Example.COM", "*.example.com", "~^api[0-9]+\\.example\\.org$", "[::1]", "default-on.test"]
access_log = { path = "off" }
error_pages = { "404" = "/404.html", "503" = "/busy.html" }

  [[site.route]]
  path = "=/healthz"
  test_handler = { option = "health" }
  test_filter = { level = 7 }
  test_access_filter = true
  test_early_filter = {}

  [[site.route]]
  path = "~\\.php$"
  test_other_handler = {}
  test_default_filter = false

  [[site.route]]
  path = "/static/"
  test_handler = {}

[[site]]
hosts = "*"
default = true
access_log = { format = "combined" }

  [[site.route]]
  test_handler = {}
)toml");
    const Config& c = *l.config;
    CHECK(c.server.workers == 4);
    CHECK(c.server.user == "root");
    CHECK(c.server.group == "root");
    CHECK(c.server.pid_file == test_dir + "/run/w.pid");
    CHECK(c.server.control_socket == "/tmp/w.sock");
    CHECK(c.server.error_log == test_dir + "/logs/error.log");
    CHECK(c.server.log_level == "debug");
    CHECK(c.server.drain_timeout == Duration{300000});
    CHECK(c.server.cert_dir == test_dir + "/certs");
    CHECK(c.server.max_connections == 500);

    CHECK(c.http.client_max_body_size == 10u << 20);
    CHECK(c.http.max_request_target == 4096);
    CHECK(c.http.max_header_size == 16384);
    CHECK(c.http.max_headers == 50);
    CHECK(c.http.header_timeout == Duration{10000});
    CHECK(c.http.body_timeout == Duration{20000});
    CHECK(c.http.keepalive_timeout == Duration{3600000});
    CHECK(c.http.send_timeout == Duration{250});
    CHECK(c.http.keepalive_requests == 99);
    CHECK(c.http.server_header.empty());

    CHECK(c.access_log.path == test_dir + "/logs/access.log");
    CHECK(c.access_log.format == "json");

    REQUIRE(c.listeners.size() == 4);
    CHECK(c.listeners[0].ipv6_only);
    CHECK(c.listeners[0].backlog == 1024);
    CHECK(c.listeners[0].pos.line == 30);
    CHECK(c.listeners[0].pos.column == 11);
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&c.listeners[1].addr);
    CHECK(v4->sin_family == AF_INET);
    CHECK(c.listeners[1].addr_len == sizeof(sockaddr_in));
    CHECK(ntohl(v4->sin_addr.s_addr) == INADDR_LOOPBACK);
    CHECK(ntohs(v4->sin_port) == 8080);
    const auto* any4 = reinterpret_cast<const sockaddr_in*>(&c.listeners[2].addr);
    CHECK(any4->sin_family == AF_INET);
    CHECK(any4->sin_addr.s_addr == htonl(INADDR_ANY));
    CHECK(ntohs(any4->sin_port) == 9090);
    CHECK(c.listeners[3].address == "9091");
    CHECK(c.listeners[3].addr.ss_family == AF_INET6);

    REQUIRE(c.sites.size() == 2);
    const Site& s0 = *c.sites[0];
    CHECK_FALSE(s0.is_default);
    CHECK(s0.pos.line == 45);
    REQUIRE(s0.hosts.size() == 5);
    CHECK(s0.hosts[0].kind == HostMatch::Kind::exact);
    CHECK(s0.hosts[0].text == "example.com");
    CHECK(s0.hosts[1].kind == HostMatch::Kind::wildcard);
    CHECK(s0.hosts[1].text == ".example.com");
    CHECK(s0.hosts[2].kind == HostMatch::Kind::regex);
    REQUIRE(s0.hosts[2].regex);
    CHECK(s0.hosts[2].regex->search("API12.example.org"));
    CHECK(s0.hosts[3].text == "[::1]");
    CHECK(s0.access_log.path == "off");    // the site turned it off; the global log stays on
    CHECK(s0.access_log.format == "json"); // inherited from [access_log]
    CHECK(s0.error_pages == std::map<int, std::string>{{404, "/404.html"}, {503, "/busy.html"}});

    REQUIRE(s0.routes.size() == 3);
    const Route& health = s0.routes[0];
    CHECK(health.match.kind == PathMatch::Kind::exact);
    CHECK(health.match.text == "/healthz");
    CHECK(dynamic_cast<const TestHandler&>(*health.handler).option == "health");
    // By the modules' `order` (each phase runs the chain's filters of that phase in it).
    CHECK(test_filter_names(health) == std::vector<std::string>{"test_default_filter",
                                                                "test_early_filter", "test_filter",
                                                                "test_access_filter"});
    for (const Filter* f : health.filters.chain)
        if (const TestFilter* t = as_test_filter(f); t && t->name == "test_filter")
            CHECK(t->level == 7);
    const Route& php = s0.routes[1];
    CHECK(php.match.kind == PathMatch::Kind::regex);
    REQUIRE(php.match.regex);
    CHECK(php.match.regex->search("/index.php"));
    CHECK(php.handler_name == "test_other_handler");
    CHECK(test_filter_names(php).empty());
    CHECK(s0.routes[2].match.kind == PathMatch::Kind::prefix);
    CHECK(s0.routes[2].match.text == "/static/");
    CHECK(test_filter_names(s0.routes[2]) == std::vector<std::string>{"test_default_filter"});

    const Site& s1 = *c.sites[1];
    CHECK(s1.is_default);
    REQUIRE(s1.hosts.size() == 1);
    CHECK(s1.hosts[0].kind == HostMatch::Kind::wildcard);
    CHECK(s1.hosts[0].text.empty()); // "*": every host ends with ""
    CHECK(s1.access_log.path == test_dir + "/logs/access.log");
    CHECK(s1.access_log.format == "combined");
    CHECK(test_filter_names(s1.routes[0]).empty());
}

TEST_CASE("every error in a file is reported at once, in file order", "[config]") {
    CHECK(errors(R"toml(
[server]
log_level = "loud"
workers = "many"

[[listen]]
address = "localhost:80"

[[site]]
hosts = ["example.com"]

  [[site.route]]
  test_handler = {}
)toml") == std::vector<std::string>{
               "test.toml:2:13: server.log_level: expected one of \"error\", \"warn\", "
               "\"info\", \"debug\", got \"loud\"",
               "test.toml:3:11: server.workers: expected \"auto\" or an integer between 1 "
               "and 256, got \"many\"",
               "test.toml:6:11: listen.address: \"localhost:80\" is a host name; listen on an "
               "IP address (\"127.0.0.1:80\", \"[::1]:80\") or a port number",
           });
}

TEST_CASE("a TOML syntax error is reported with its position", "[config]") {
    CHECK(errors("[server]\nworkers = \n") ==
          one("test.toml:2:11: Error while parsing key-value pair: expected value, saw '\\n'"));
}

TEST_CASE("load_config reports an unreadable file", "[config]") {
    Diagnostics diag;
    CHECK_FALSE(load_config("/nonexistent/wraith.toml", diag));
    REQUIRE(diag.list().size() == 1);
    CHECK(diag.list()[0].text() ==
          "/nonexistent/wraith.toml: cannot read config file: No such file or directory");
}

TEST_CASE("load_config resolves paths against the file's directory", "[config]") {
    TempDir dir;
    dir.write("wraith.toml", std::string("[server]\npid_file = \"w.pid\"\n") + valid_tail);
    dir.write("mime.types", "types { text/x-test test; }\n");
    Diagnostics diag;
    auto cfg = load_config((dir.path / "wraith.toml").string(), diag);
    REQUIRE(diag.ok());
    REQUIRE(cfg);
    CHECK(cfg->path == (dir.path / "wraith.toml").string());
    CHECK(cfg->dir == dir.path.string());
    CHECK(cfg->server.pid_file == (dir.path / "w.pid").string());
    // The mime.types beside the config replaces the built-in table.
    CHECK(cfg->server.mime_types == (dir.path / "mime.types").string());
    CHECK(cfg->mime->lookup("test") == "text/x-test");
    CHECK(cfg->mime->lookup("html") == MimeTypes::default_type);
}

TEST_CASE("errors in the default mime.types are reported with that file's position", "[config]") {
    TempDir dir;
    dir.write("mime.types", "types {\n  text/html html\n}\n");
    Diagnostics diag;
    auto cfg = load_config_text(strip(valid_tail), "test.toml", dir.path.string(), diag);
    CHECK_FALSE(cfg);
    REQUIRE(diag.list().size() == 1);
    CHECK(diag.list()[0].text() == (dir.path / "mime.types").string() +
                                       ":3:1: expected \";\" after the extensions of "
                                       "\"text/html\", got \"}\"");
}

TEST_CASE("an explicit server.mime_types is loaded instead of the built-in table", "[config]") {
    TempDir dir;
    std::filesystem::create_directory(dir.path / "types");
    dir.write("types/my.types", "types { application/x-mine mine; }\n");
    Diagnostics diag;
    auto cfg = load_config_text("[server]\nmime_types = \"types/my.types\"\n" + strip(valid_tail),
                                "test.toml", dir.path.string(), diag);
    REQUIRE(diag.ok());
    CHECK(cfg->server.mime_types == (dir.path / "types/my.types").string());
    CHECK(cfg->mime->lookup("MINE") == "application/x-mine");
}

TEST_CASE("TableReader::error prefixes WHERE.KEY once", "[config]") {
    toml::table table = toml::parse("root = \"/nope\"\n", std::string_view("t.toml"));
    Diagnostics diag;
    TableReader reader(table, diag, "static");
    reader.error("root", "directory \"/nope\" does not exist");
    reader.error("root", "static.root: already prefixed");
    reader.finish();
    REQUIRE(diag.list().size() == 2);
    CHECK(diag.list()[0].text() == "t.toml:1:8: static.root: directory \"/nope\" does not exist");
    CHECK(diag.list()[1].text() == "t.toml:1:8: static.root: already prefixed");
}

TEST_CASE("TableReader reports unknown keys once, in the order getters asked", "[config]") {
    toml::table table = toml::parse("b = 1\nzz = 2\n", std::string_view("t.toml"));
    Diagnostics diag;
    {
        TableReader reader(table, diag, "mod");
        reader.integer("b", 0, 0, 9);
        reader.string("a");
    } // the destructor finishes
    REQUIRE(diag.list().size() == 1);
    CHECK(diag.list()[0].text() ==
          "t.toml:2:1: unknown key \"zz\" in [mod] (expected one of: b, a)");
}

TEST_CASE("the repository's conf/wraith.toml loads when its modules are linked", "[config]") {
#ifdef WRAITH_SOURCE_DIR
    const ModuleRegistry& registry = ModuleRegistry::instance();
    if (!registry.find("static") || !registry.find("respond"))
        return; // built without the real modules
    Diagnostics diag;
    auto cfg = load_config(std::string(WRAITH_SOURCE_DIR) + "/conf/wraith.toml", diag);
    for (const Diagnostic& d : diag.list())
        UNSCOPED_INFO(d.text());
    CHECK(cfg);
#endif
}

// ---- top level ---------------------------------------------------------------------------

TEST_CASE("unknown top-level key", "[config]") {
    CHECK(errors(with_tail("workers = 4\n")) ==
          one("test.toml:1:1: unknown key \"workers\" in the top level (expected one of: "
              "server, http, http2, http3, access_log, listen, site, upstream, geo, limit, admin, "
              "trace, dns, crowdsec)"));
}

TEST_CASE("a section that is not a table", "[config]") {
    CHECK(errors(with_tail("server = 4\n")) ==
          one("test.toml:1:10: server: expected a table, got 4"));
}

TEST_CASE("no [[listen]] and no [[site]]", "[config]") {
    CHECK(errors("[server]\nworkers = 2\n") ==
          std::vector<std::string>{
              "test.toml:1:1: no [[listen]] table: add one, e.g. [[listen]] address = "
              "\"[::]:8080\"",
              "test.toml:1:1: no [[site]] table: add one, e.g. [[site]] hosts = [\"*\"] with a "
              "[[site.route]]",
          });
}

// ---- [server] ----------------------------------------------------------------------------

TEST_CASE("unknown key in [server] lists the known ones", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
wrokers = 4
)toml")) == one("test.toml:2:1: unknown key \"wrokers\" in [server] (expected one of: "
                "workers, user, group, pid_file, control_socket, error_log, log_level, "
                "drain_timeout, cert_dir, mime_types, max_connections, seccomp, landlock, "
                  "landlock_allow)"));
}

TEST_CASE("server.drain_timeout must be a duration", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
drain_timeout = "10 parsecs"
)toml")) == one("test.toml:2:17: server.drain_timeout: expected a duration like \"250ms\", "
                "\"30s\", \"5m\", got \"10 parsecs\""));
}

TEST_CASE("server.drain_timeout must be longer than 0", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
drain_timeout = 0
)toml")) == one("test.toml:2:17: server.drain_timeout: must be longer than 0"));
}

TEST_CASE("server.workers is auto or 1..256", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
workers = 257
)toml")) == one("test.toml:2:11: server.workers: expected \"auto\" or an integer between 1 "
                "and 256, got 257"));
}

TEST_CASE("server.log_level is one of the levels", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
log_level = "verbose"
)toml")) == one("test.toml:2:13: server.log_level: expected one of \"error\", \"warn\", "
                "\"info\", \"debug\", got \"verbose\""));
}

TEST_CASE("server.max_connections is 1..1000000", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
max_connections = 0
)toml")) == one("test.toml:2:19: server.max_connections: expected an integer between 1 and "
                "1000000, got 0"));
}

TEST_CASE("a string option given another type", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
pid_file = 42
)toml")) == one("test.toml:2:12: server.pid_file: expected a string, got 42"));
}

TEST_CASE("server.error_log must not be empty", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
error_log = ""
)toml")) == one("test.toml:2:13: server.error_log: must not be empty (use \"stderr\", "
                "\"stdout\" or a path)"));
}

TEST_CASE("server.user and group must exist when running as root", "[config]") {
    std::string text = with_tail(R"toml(
[server]
user = "no-such-user-wraith"
group = "no-such-group-wraith"
)toml");
    if (geteuid() == 0) {
        CHECK(load(text).errors ==
              std::vector<std::string>{
                  "test.toml:2:8: server.user: user \"no-such-user-wraith\" does not exist",
                  "test.toml:3:9: server.group: group \"no-such-group-wraith\" does not exist",
              });
    } else {
        CHECK(load(text).errors.empty()); // not root: user and group are not used
    }
}

TEST_CASE("an explicit server.mime_types must exist", "[config]") {
    CHECK(errors(with_tail(R"toml(
[server]
mime_types = "nope.types"
)toml")) == one("test.toml:2:14: server.mime_types: file \"" + test_dir +
                "/nope.types\" does not exist"));
}

// ---- [http] and [access_log] -------------------------------------------------------------

TEST_CASE("http sizes must be sizes", "[config]") {
    CHECK(errors(with_tail(R"toml(
[http]
client_max_body_size = "1.5m"
)toml")) == one("test.toml:2:24: http.client_max_body_size: expected a size like \"512\", "
                "\"64k\", \"10m\", \"1g\", got \"1.5m\""));
}

TEST_CASE("http.max_request_target lies between 256 and max_header_size", "[config]") {
    CHECK(errors(with_tail(R"toml(
[http]
max_header_size = "8k"
max_request_target = "16k"
)toml")) == one("test.toml:3:22: http.max_request_target: must be between 256 and "
                "max_header_size (8192), got 16384"));
}

TEST_CASE("http.max_header_size lies between 1k and 1m", "[config]") {
    CHECK(errors(with_tail(R"toml(
[http]
max_header_size = "2m"
)toml")) == one("test.toml:2:19: http.max_header_size: must be between 1k and 1m, got 2097152"));
}

TEST_CASE("http timeouts must be longer than 0", "[config]") {
    CHECK(errors(with_tail(R"toml(
[http]
keepalive_timeout = "0s"
)toml")) == one("test.toml:2:21: http.keepalive_timeout: must be longer than 0"));
}

TEST_CASE("http.server_header must not contain control characters", "[config]") {
    CHECK(errors(with_tail(R"toml(
[http]
server_header = "wraith\r\nX-Evil: 1"
)toml")) == one("test.toml:2:17: http.server_header: must not contain control characters"));
}

TEST_CASE("access_log.format is combined, json or a format with variables", "[config]") {
    CHECK(errors(with_tail(R"toml(
[access_log]
format = "xml"
)toml")) == one("test.toml:2:10: access_log.format: expected \"combined\", \"json\" or a "
                "format with variables (\"$remote_addr \\\"$request\\\" $status "
                "$request_time\"), got \"xml\""));
    CHECK(errors(with_tail(R"toml(
[access_log]
format = "$status $nope"
)toml")) == one("test.toml:2:10: access_log.format: unknown variable $nope (at byte 9 of the "
                "format)"));
    CHECK(errors(with_tail(R"toml(
[access_log]
format = "$status $request_time $upstream_addr $ssl_protocol"
escape = "json"
)toml")).empty());
}

// ---- [[listen]] --------------------------------------------------------------------------

TEST_CASE("listen.address that cannot be parsed", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "1.2.3:80"
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:2:11: listen.address: cannot parse \"1.2.3:80\" (expected \"[::]:80\", "
               "\"0.0.0.0:80\", \"127.0.0.1:8080\" or a port number)"));
}

TEST_CASE("listen.address forms that cannot be parsed", "[config]") {
    for (std::string bad : {"[::1]", "[::1]:", "::1:80", "[nope]:80", "1.2.3.4:", "1.2.3.4:http",
                            ":80", "1.2.3.4:123456"}) {
        std::string text = "[[listen]]\naddress = \"" + bad +
                           "\"\n[[site]]\nhosts = [\"*\"]\n"
                           "[[site.route]]\ntest_handler = {}\n";
        CHECK(errors(text) ==
              one("test.toml:2:11: listen.address: cannot parse \"" + bad +
                  "\" (expected \"[::]:80\", \"0.0.0.0:80\", \"127.0.0.1:8080\" or a port "
                  "number)"));
    }
}

TEST_CASE("listen.address refuses host names", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "example.com:443"
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:2:11: listen.address: \"example.com:443\" is a host name; listen on "
               "an IP address (\"127.0.0.1:80\", \"[::1]:80\") or a port number"));
}

TEST_CASE("listen.address refuses port 0 and ports above 65535", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "0.0.0.0:0"
[[listen]]
address = 70000
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == std::vector<std::string>{
               "test.toml:2:11: listen.address: port 0 is not allowed (expected 1..65535)",
               "test.toml:4:11: listen.address: port 70000 is out of range (expected "
               "1..65535)",
           });
}

TEST_CASE("listen.address is required", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
backlog = 10
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:1:1: listen.address: required, e.g. address = \"[::]:8080\""));
}

TEST_CASE("listen given as a table instead of [[listen]]", "[config]") {
    CHECK(errors(R"toml(
[listen]
address = "8080"
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:1:1: listen: expected [[listen]] tables, got a table"));
}

TEST_CASE("listen.tls needs a site with a certificate", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "8443"
tls = true
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:2:11: listen.tls: no [[site]] has a certificate; add tls = { cert = "
               "..., key = ... } to a site"));
}

TEST_CASE("site.tls: cert and key must be readable files, min_version 1.2 or 1.3", "[config]") {
    CHECK(errors(R"toml(
[server]
cert_dir = "/nonexistent-certs"
[[listen]]
address = "8443"
tls = true
[[site]]
hosts = ["*"]
tls = { cert = "a.pem", key = "/nope/a.key", min_version = "1.1" }
[[site.route]]
test_handler = {}
)toml") == std::vector<std::string>{
               "test.toml:8:16: site.tls.cert: cannot read \"/nonexistent-certs/a.pem\": No such "
               "file or directory",
               "test.toml:8:31: site.tls.key: cannot read \"/nope/a.key\": No such file or "
               "directory",
               "test.toml:8:60: site.tls.min_version: expected one of \"1.2\", \"1.3\", got "
               "\"1.1\"",
           });
    CHECK(errors(R"toml(
[[listen]]
address = "8443"
tls = true
[[site]]
hosts = ["*"]
tls = { certificates = [], cert = "x" }
[[site.route]]
test_handler = {}
)toml")[1] == "test.toml:6:24: site.tls.certificates: give either cert + key or "
              "certificates, not both");
}

TEST_CASE("listen.protocols: h2 needs TLS, h2c is cleartext, h3 not yet", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "8080"
protocols = ["h3", "h2", "http/1.1", "spdy", "http/1.1"]
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == std::vector<std::string>{
               "test.toml:3:14: listen.protocols: \"h3\" is HTTP/3 over QUIC, which is always "
               "encrypted: it needs tls = true",
               "test.toml:3:20: listen.protocols: \"h2\" needs tls = true; cleartext HTTP/2 is "
               "\"h2c\"",
               "test.toml:3:38: listen.protocols: unknown protocol \"spdy\" (expected \"h3\", "
               "\"h2\", \"http/1.1\", \"h2c\", or a stream protocol: \"tcp\", \"dot\", or over "
               "QUIC: \"doq\")",
               "test.toml:3:46: listen.protocols: \"http/1.1\" is listed twice",
           });
}

TEST_CASE("listen: a stream protocol takes its options from a key of its name", "[config]") {
    // A stream protocol with no options key is placed at the listener. A server of stream
    // listeners only needs no [[site]].
    CHECK(errors(R"toml(
[[listen]]
address = "9000"
protocols = ["tcp"]
)toml") == one("test.toml:2:11: listen.tcp.pass: required, the upstream's address, "
               "e.g. tcp = { pass = \"127.0.0.1:5432\" }"));
    // Options for a protocol the listener does not carry.
    CHECK(errors(R"toml(
[[listen]]
address = "9000"
tcp = { pass = "127.0.0.1:1" }
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:3:7: listen.tcp: the listener does not carry \"tcp\" (add it "
               "to protocols)"));
    // Cleartext: no way to tell protocols apart, so a stream protocol stands alone.
    CHECK(errors(R"toml(
[[listen]]
address = "9000"
protocols = ["tcp", "http/1.1"]
tcp = { pass = "127.0.0.1:1" }
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:3:13: listen.protocols: \"tcp\" must be the listener's only "
               "protocol (cleartext connections cannot say which protocol they speak)"));
    // A bad option is reported at its own key.
    CHECK(errors(R"toml(
[[listen]]
address = "9000"
protocols = ["tcp"]
tcp = { pass = "nowhere", idle_timeout = "forever" }
)toml")
              .size() == 2);
    CHECK(load(R"toml(
[[listen]]
address = "9000"
protocols = ["tcp"]
tcp = { pass = "127.0.0.1:5432", connect_timeout = "3s", idle_timeout = "1h" }
)toml")
              .config->listeners.at(0)
              .streams.at(0)
              .handler);
}

TEST_CASE("listen.backlog is 1..65535", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "8080"
backlog = 0
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:3:11: listen.backlog: expected an integer between 1 and 65535, got 0"));
}

TEST_CASE("listen.ipv6_only on an IPv4 address", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "127.0.0.1:8080"
ipv6_only = true
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:3:13: listen.ipv6_only: applies only to IPv6 addresses, and "
               "\"127.0.0.1:8080\" is IPv4"));
}

TEST_CASE("unknown key in [[listen]]", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "8080"
reuseport = true
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:3:1: unknown key \"reuseport\" in [[listen]] (expected one of: "
               "address, ipv6_only, backlog, tls, proxy_protocol, protocols)"));
}

TEST_CASE("a duplicate listener names the first one", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "8080"
[[listen]]
address = "[::]:8080"
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:4:11: listen.address: \"[::]:8080\" is already listened on at "
               "test.toml:2:11"));
}

TEST_CASE("a dual-stack listener overlaps IPv4 on the same port", "[config]") {
    CHECK(errors(R"toml(
[[listen]]
address = "127.0.0.1:80"
[[listen]]
address = "[::]:80"
[[listen]]
address = "[::]:81"
ipv6_only = true
[[listen]]
address = "0.0.0.0:81"
[[site]]
hosts = ["*"]
[[site.route]]
test_handler = {}
)toml") == one("test.toml:4:11: listen.address: \"[::]:80\" overlaps \"127.0.0.1:80\" at "
               "test.toml:2:11 ([::] also accepts IPv4 unless ipv6_only = true)"));
}

// ---- [[site]] ----------------------------------------------------------------------------

const char* const listen_head = "[[listen]]\naddress = \"8080\"\n";

TEST_CASE("site.hosts is required", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
default = true
  [[site.route]]
  test_handler = {}
)toml")) == one("test.toml:3:1: site.hosts: required, e.g. hosts = [\"example.com\"] (\"*\" "
                "matches any host)"));
}

TEST_CASE("a host listed by two sites", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["example.com", "*.example.com"]
  [[site.route]]
  test_handler = {}
[[site]]
hosts = ["www.example.org", "EXAMPLE.com"]
  [[site.route]]
  test_handler = {}
)toml")) == one("test.toml:8:29: site.hosts: \"EXAMPLE.com\" is already listed at "
                "test.toml:4:10"));
}

TEST_CASE("a host regex that does not compile", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["~^(api"]
  [[site.route]]
  test_handler = {}
)toml")) == one("test.toml:4:10: site.hosts: bad regex \"^(api\": " + regex_error_text("^(api")));
}

TEST_CASE("malformed host names", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["exa mple.com", "*.", "www.*.com", "a..b", 7]
  [[site.route]]
  test_handler = {}
)toml")) == std::vector<std::string>{
                "test.toml:4:10: site.hosts: \"exa mple.com\" is not a host name (expected "
                "\"example.com\", \"*.example.com\", \"~regex\" or \"*\")",
                "test.toml:4:26: site.hosts: \"*.\" is not a host name (expected "
                "\"example.com\", \"*.example.com\", \"~regex\" or \"*\")",
                "test.toml:4:32: site.hosts: \"www.*.com\" is not a host name (expected "
                "\"example.com\", \"*.example.com\", \"~regex\" or \"*\")",
                "test.toml:4:45: site.hosts: \"a..b\" is not a host name (expected "
                "\"example.com\", \"*.example.com\", \"~regex\" or \"*\")",
                "test.toml:4:53: site.hosts: expected an array of strings, got 7",
            });
}

TEST_CASE("two default sites name both positions", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["a.example"]
default = true
  [[site.route]]
  test_handler = {}
[[site]]
hosts = ["b.example"]
default = true
  [[site.route]]
  test_handler = {}
)toml")) == one("test.toml:10:11: site.default: only one site may be the default, and the "
                "site at test.toml:3:1 already is"));
}

TEST_CASE("site.error_pages keys are error statuses and values are URIs", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["*"]
error_pages = { "302" = "/moved.html", "404" = "404.html", "abc" = "/x" }
  [[site.route]]
  test_handler = {}
)toml")) == std::vector<std::string>{
                "test.toml:5:17: site.error_pages: \"302\" is not an error status (expected "
                "\"400\" to \"599\")",
                "test.toml:5:48: site.error_pages.404: expected a URI starting with \"/\", "
                "got \"404.html\"",
                "test.toml:5:60: site.error_pages: \"abc\" is not an error status (expected "
                "\"400\" to \"599\")",
            });
}

TEST_CASE("a site without routes", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["*"]
)toml")) == one("test.toml:3:1: [[site]] needs at least one [[site.route]]"));
}

TEST_CASE("unknown key in [[site]]", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["*"]
root = "/srv"
  [[site.route]]
  test_handler = {}
)toml")) == one("test.toml:5:1: unknown key \"root\" in [[site]] (expected one of: hosts, "
                "default, access_log, tls, error_pages, route)"));
}

TEST_CASE("unknown key in a site's access_log", "[config]") {
    CHECK(errors(listen_head + strip(R"toml(
[[site]]
hosts = ["*"]
access_log = { path = "stdout", buffer = "64k" }
  [[site.route]]
  test_handler = {}
)toml")) == one("test.toml:5:33: unknown key \"buffer\" in site.access_log (expected one of: "
                "path, format, escape)"));
}

// ---- [[site.route]] ----------------------------------------------------------------------

const char* const site_head = "[[listen]]\naddress = \"8080\"\n[[site]]\nhosts = [\"*\"]\n";

TEST_CASE("route path forms", "[config]") {
    CHECK(errors(site_head + strip(R"toml(
  [[site.route]]
  path = "api/"
  test_handler = {}
  [[site.route]]
  path = "~[a-"
  test_handler = {}
)toml")) == std::vector<std::string>{
                "test.toml:6:10: site.route.path: expected \"/prefix\", \"=/exact\" or "
                "\"~regex\", got \"api/\"",
                "test.toml:9:10: site.route.path: bad regex \"[a-\": " + regex_error_text("[a-"),
            });
}

TEST_CASE("an unknown route key lists path and the modules", "[config]") {
    std::vector<std::string> e = errors(site_head + strip(R"toml(
  [[site.route]]
  test_handler = {}
  fastcgi = { pass = "app" }
)toml"));
    REQUIRE(e.size() == 1);
    CHECK_THAT(e[0], Catch::StartsWith("test.toml:7:3: unknown key \"fastcgi\" in [[site.route]] "
                                       "(expected path or a module: "));
    CHECK_THAT(e[0], Catch::Contains("test_handler") && Catch::Contains("test_filter") &&
                         Catch::EndsWith(")"));
}

TEST_CASE("a route needs a handler", "[config]") {
    std::vector<std::string> e = errors(site_head + strip(R"toml(
  [[site.route]]
  path = "/"
  test_filter = {}
)toml"));
    REQUIRE(e.size() == 1);
    CHECK_THAT(e[0], Catch::StartsWith("test.toml:5:3: route needs one handler ("));
    CHECK_THAT(e[0], Catch::Contains("test_handler, test_other_handler") &&
                         !Catch::Contains("test_filter"));
}

TEST_CASE("a route with two handlers", "[config]") {
    CHECK(errors(site_head + strip(R"toml(
  [[site.route]]
  test_other_handler = {}
  test_handler = {}
)toml")) == one("test.toml:7:3: route has a second handler \"test_handler\"; it already has "
                "\"test_other_handler\" at test.toml:6:3"));
}

TEST_CASE("a handler module's value must be a table", "[config]") {
    CHECK(errors(site_head + strip(R"toml(
  [[site.route]]
  test_handler = "yes"
)toml")) == one("test.toml:6:18: site.route.test_handler: expected a table, got \"yes\""));
}

TEST_CASE("a filter module's value is a table or a boolean", "[config]") {
    CHECK(errors(site_head + strip(R"toml(
  [[site.route]]
  test_handler = {}
  test_filter = 3
)toml")) == one("test.toml:7:17: site.route.test_filter: expected a table or true/false, got 3"));
}

TEST_CASE("a module's own errors carry its key and position", "[config]") {
    CHECK(errors(site_head + strip(R"toml(
  [[site.route]]
  test_handler = { option = "fail" }
  test_filter = { level = 10, colour = "red" }
)toml")) == std::vector<std::string>{
                "test.toml:6:29: test_handler.option: cannot be \"fail\"",
                "test.toml:7:27: test_filter.level: expected an integer between 1 and 9, "
                "got 10",
                "test.toml:7:31: unknown key \"colour\" in test_filter (expected one of: "
                "level)",
            });
}

TEST_CASE("a module that returns nothing without saying why still fails the load", "[config]") {
    CHECK(errors(site_head + strip(R"toml(
  [[site.route]]
  test_silent_handler = {}
)toml")) == one("test.toml:6:25: site.route.test_silent_handler: the module could not be built"));
}

// ---- [http3] -----------------------------------------------------------------------------

TEST_CASE("http3.versions defaults to v2 then v1 and keeps the order written", "[config]") {
    CHECK(load(with_tail("")).config->http3.versions ==
          std::vector<uint32_t>{Http3Config::kVersion2, Http3Config::kVersion1});
    CHECK(load(with_tail("[http3]\nversions = [\"v1\", \"v2\"]\n")).config->http3.versions ==
          std::vector<uint32_t>{Http3Config::kVersion1, Http3Config::kVersion2});
    CHECK(load(with_tail("[http3]\nversions = [\"v1\"]\n")).config->http3.versions ==
          std::vector<uint32_t>{Http3Config::kVersion1});
}

TEST_CASE("http3.versions names known versions, each once, at least one", "[config]") {
    CHECK(errors(with_tail("[http3]\nversions = [\"v1\", \"draft-29\"]\n")) ==
          one("test.toml:2:19: http3.versions: expected \"v1\" or \"v2\", got \"draft-29\""));
    CHECK(errors(with_tail("[http3]\nversions = [\"v2\", \"v2\"]\n")) ==
          one("test.toml:2:19: http3.versions: v2 is listed twice"));
    CHECK(errors(with_tail("[http3]\nversions = []\n")) ==
          one("test.toml:2:12: http3.versions: must name at least one version, such as [\"v1\"]"));
}

TEST_CASE("http3.udp_buffer_size is 64k..1g", "[config]") {
    CHECK(load(with_tail("[http3]\nudp_buffer_size = \"2m\"\n")).config->http3.udp_buffer_size ==
          2u << 20);
    CHECK(errors(with_tail("[http3]\nudp_buffer_size = \"1k\"\n")) ==
          one("test.toml:2:19: http3.udp_buffer_size: must be between 64k and 1g, got 1024"));
}

TEST_CASE("http3.cipher_suites takes the TLS 1.3 suites by IANA name", "[config]") {
    CHECK(load(with_tail("")).config->http3.cipher_suites.empty());
    CHECK(load(with_tail("[http3]\ncipher_suites = [\"TLS_CHACHA20_POLY1305_SHA256\"]\n"))
              .config->http3.cipher_suites == std::vector<std::string>{"TLS_CHACHA20_POLY1305_SHA256"});
    CHECK(errors(with_tail("[http3]\ncipher_suites = [\"AES128-GCM\"]\n")) ==
          one("test.toml:2:18: http3.cipher_suites: expected TLS_AES_128_GCM_SHA256, "
              "TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256, got \"AES128-GCM\""));
}
