#include "master/nginx_cli.h"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <ares_version.h>
#include <ev.h>
#include <gnutls/gnutls.h>
#include <nghttp2/nghttp2ver.h>
#include <nghttp3/version.h>
#include <ngtcp2/version.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <zlib.h>
#include <zstd.h>

#include "common/config.h"
#include "common/config_overrides.h"
#include "master/control_client.h"
#include "master/control_path.h"
#include "master/master.h"

namespace wraith {

namespace {

constexpr const char* kDefaultConfig = "/etc/wraith/wraith.toml";

const char kNginxUsage[] =
    "usage: wraith [-?hvVtTq] [-s signal] [-p prefix] [-c filename] [-g directives]\n"
    "\n"
    "NGINX-compatible options (see wraith(8), \"NGINX COMMAND LINE\"):\n"
    "  -?,-h         : this help\n"
    "  -v            : show version and exit\n"
    "  -V            : show version, build information and exit\n"
    "  -t            : test configuration and exit\n"
    "  -T            : test configuration, dump it and exit\n"
    "  -q            : suppress non-error messages during configuration testing\n"
    "  -s signal     : send signal to a master process: stop, quit, reopen, reload\n"
    "  -p prefix     : set prefix path (relative -c and -g paths resolve against it)\n"
    "  -c filename   : set configuration file (default: /etc/wraith/wraith.toml)\n"
    "  -g directives : set global directives: daemon, master_process, worker_processes,\n"
    "                  pid, error_log, user\n"
    "\n"
    "Without -t, -T, -s, -v or -V the server starts (detached unless -g 'daemon off;').\n"
    "Native commands: wraith help.\n";

void say(const std::string& line) {
    fprintf(stderr, "wraith: %s\n", line.c_str());
}

std::string quoted(const std::string& s) {
    return "\"" + s + "\"";
}

std::string toml_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string join_path(const std::string& base, const std::string& p) {
    if (p.empty() || p[0] == '/' || base.empty())
        return p;
    return base.back() == '/' ? base + p : base + "/" + p;
}

std::string cwd() {
    char buf[PATH_MAX];
    return getcwd(buf, sizeof(buf)) ? std::string(buf) : std::string();
}

// Directives of a -g string: words separated by blanks, quotes as in nginx.conf, each
// directive ended by ';'.
bool split_directives(const std::string& text, std::vector<std::vector<std::string>>* out,
                      std::string* error) {
    std::vector<std::string> current;
    std::string word;
    bool in_word = false;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '"' || c == '\'') {
            size_t end = text.find(c, i + 1);
            if (end == std::string::npos) {
                *error = "unexpected end of parameter, expecting " + std::string(1, c) +
                         " in command line";
                return false;
            }
            word += text.substr(i + 1, end - i - 1);
            in_word = true;
            i = end;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';') {
            if (in_word)
                current.push_back(word);
            word.clear();
            in_word = false;
            if (c == ';') {
                if (current.empty()) {
                    *error = "unexpected \";\" in command line";
                    return false;
                }
                out->push_back(std::move(current));
                current.clear();
            }
        } else {
            word += c;
            in_word = true;
        }
    }
    if (in_word)
        current.push_back(word);
    if (!current.empty()) {
        *error = "unexpected end of parameter, expecting \";\" in command line";
        return false;
    }
    return true;
}

// nginx's error_log levels -> wraith's four.
const char* log_level_of(const std::string& level) {
    if (level == "debug")
        return "debug";
    if (level == "info" || level == "notice")
        return "info";
    if (level == "warn")
        return "warn";
    if (level == "error" || level == "crit" || level == "alert" || level == "emerg")
        return "error";
    return nullptr;
}

struct Options {
    bool help = false, version = false, build = false, test = false, dump = false, quiet = false;
    std::string signal, prefix, config, globals;
    bool has_config = false;
};

// NGINX's own parser shape: flags may be grouped (-tq), an option's value follows it in the
// same word (-cFILE) or in the next one.
bool parse(const std::vector<std::string>& args, Options* o, std::string* error) {
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.size() < 2 || a[0] != '-') {
            *error = "invalid option: " + quoted(a);
            return false;
        }
        for (size_t j = 1; j < a.size(); ++j) {
            char c = a[j];
            auto value = [&](const char* what, std::string* into) {
                if (j + 1 < a.size()) {
                    *into = a.substr(j + 1);
                } else if (i + 1 < args.size()) {
                    *into = args[++i];
                } else {
                    *error = "option \"-" + std::string(1, c) + "\" requires " + what;
                    return false;
                }
                j = a.size();
                return true;
            };
            switch (c) {
            case '?':
            case 'h':
                o->help = true;
                break;
            case 'v':
                o->version = true;
                break;
            case 'V':
                o->version = o->build = true;
                break;
            case 't':
                o->test = true;
                break;
            case 'T':
                o->test = o->dump = true;
                break;
            case 'q':
                o->quiet = true;
                break;
            case 'p':
                if (!value("directory name", &o->prefix))
                    return false;
                break;
            case 'c':
                if (!value("file name", &o->config))
                    return false;
                o->has_config = true;
                break;
            case 'g': {
                std::string g;
                if (!value("parameter", &g))
                    return false;
                o->globals += (o->globals.empty() ? "" : " ") + g;
                break;
            }
            case 's':
                if (!value("parameter", &o->signal))
                    return false;
                if (o->signal != "stop" && o->signal != "quit" && o->signal != "reopen" &&
                    o->signal != "reload") {
                    *error = "invalid option: \"-s " + o->signal + "\"";
                    return false;
                }
                break;
            default:
                *error = "invalid option: " + quoted(std::string(1, c));
                return false;
            }
        }
    }
    return true;
}

bool read_file(const std::string& path, std::string* out) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return false;
    std::ostringstream s;
    s << in.rdbuf();
    *out = s.str();
    return true;
}

int test_config(const Options& o, const std::string& config, const NginxGlobals& g) {
    Diagnostics diag;
    auto loaded = load_full_config(config, diag, nullptr, nullptr, g.toml);
    if (!loaded.config) {
        for (const auto& d : diag.list())
            say("[emerg] " + d.text());
        say("configuration file " + config + " test failed");
        return 1;
    }
    if (!o.quiet) {
        say("the configuration file " + config + " syntax is ok");
        say("configuration file " + config + " test is successful");
    }
    if (o.dump) {
        // Every file the configuration consists of, as nginx -T does with its includes.
        std::vector<std::string> files{config};
        if (!loaded.config->server.mime_types.empty())
            files.push_back(loaded.config->server.mime_types);
        for (const auto& f : files) {
            std::string text;
            read_file(f, &text);
            printf("# configuration file %s:\n%s%s\n", f.c_str(), text.c_str(),
                   !text.empty() && text.back() != '\n' ? "\n" : "");
        }
        if (!g.toml.empty())
            printf("# %s:\n%s\n", kOverridesSource, g.toml.c_str());
    }
    return 0;
}

// -s: through the control socket when the master answers there (a reload then reports a
// broken configuration and fails), else NGINX's way: the signal to the pid in the pid file.
int send_signal(const Options& o, const std::string& config, const NginxGlobals& g) {
    struct Mapping {
        const char* name;
        const char* command;
        int sig;
        bool first_line;
    };
    static const Mapping kMap[] = {{"reload", "reload", SIGHUP, false},
                                   {"reopen", "reopen", SIGUSR1, false},
                                   {"quit", "stop", SIGQUIT, true},
                                   {"stop", "stop-fast", SIGTERM, true}};
    const Mapping* m = nullptr;
    for (const auto& x : kMap)
        if (o.signal == x.name)
            m = &x;
    ControlAnswer answer = control_request(config, m->command, m->first_line);
    if (answer.reached) {
        if (answer.failed()) {
            std::istringstream lines(answer.text);
            for (std::string line; std::getline(lines, line);)
                if (!line.empty())
                    say("[error] " + line);
            return 1;
        }
        return 0;
    }
    std::string pid_path, error;
    if (!pid_file_path(config, g.pid_file, &pid_path, &error)) {
        say("[error] " + error);
        return 1;
    }
    std::ifstream in(pid_path);
    if (!in) {
        int e = errno;
        say("[error] open() " + quoted(pid_path) + " failed (" + std::to_string(e) + ": " +
            std::strerror(e) + ")");
        return 1;
    }
    std::string text;
    std::getline(in, text);
    char* end = nullptr;
    long pid = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || pid <= 0 || pid > INT_MAX) {
        say("[error] invalid PID number " + quoted(text) + " in " + quoted(pid_path));
        return 1;
    }
    if (kill(static_cast<pid_t>(pid), m->sig) != 0) {
        int e = errno;
        say("[alert] kill(" + std::to_string(pid) + ", " + std::to_string(m->sig) + ") failed (" +
            std::to_string(e) + ": " + std::strerror(e) + ")");
        return 1;
    }
    return 0;
}

} // namespace

bool is_nginx_command_line(const std::vector<std::string>& args) {
    if (args.empty())
        return false;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a.size() < 2 || a[0] != '-' || a[1] == '-')
            return false;
        // -c, -p, -g and -s take the rest of the word, or the next word when they end it.
        size_t valued = a.find_first_of("cpgs", 1);
        if (valued == a.size() - 1)
            ++i;
    }
    return true;
}

bool parse_nginx_globals(const std::string& text, const std::string& base_dir, NginxGlobals* out,
                         std::string* error) {
    std::vector<std::vector<std::string>> directives;
    if (!split_directives(text, &directives, error))
        return false;
    std::string server;
    for (const auto& d : directives) {
        const std::string& name = d[0];
        size_t args = d.size() - 1;
        auto arg_count = [&](size_t lo, size_t hi) {
            if (args >= lo && args <= hi)
                return true;
            *error =
                "invalid number of arguments in " + quoted(name) + " directive in command line";
            return false;
        };
        auto on_off = [&](bool* into) {
            if (d[1] == "on" || d[1] == "off") {
                *into = d[1] == "on";
                return true;
            }
            *error = "invalid value " + quoted(d[1]) + " in " + quoted(name) +
                     " directive, it must be \"on\" or \"off\" in command line";
            return false;
        };
        if (name == "daemon") {
            if (!arg_count(1, 1) || !on_off(&out->daemon))
                return false;
        } else if (name == "master_process") {
            bool on = true;
            if (!arg_count(1, 1) || !on_off(&on))
                return false;
            if (!on) {
                *error = "\"master_process off\" is not supported: wraith always runs a master "
                         "and its workers in command line";
                return false;
            }
        } else if (name == "worker_processes") {
            if (!arg_count(1, 1))
                return false;
            const std::string& v = d[1];
            if (v == "auto") {
                server += "workers = \"auto\"\n";
            } else if (!v.empty() && v.size() < 6 &&
                       v.find_first_not_of("0123456789") == std::string::npos) {
                server += "workers = " + v + "\n";
            } else {
                *error = "invalid value " + quoted(v) + " in command line";
                return false;
            }
        } else if (name == "pid") {
            if (!arg_count(1, 1))
                return false;
            out->pid_file = join_path(base_dir, d[1]);
            server += "pid_file = " + toml_string(out->pid_file) + "\n";
        } else if (name == "error_log") {
            if (!arg_count(1, 2))
                return false;
            std::string path = d[1] == "stderr" ? "stderr" : join_path(base_dir, d[1]);
            server += "error_log = " + toml_string(path) + "\n";
            if (args == 2) {
                const char* level = log_level_of(d[2]);
                if (!level) {
                    *error = "invalid value " + quoted(d[2]) + " in command line";
                    return false;
                }
                server += "log_level = " + toml_string(level) + "\n";
            }
        } else if (name == "user") {
            if (!arg_count(1, 2))
                return false;
            server += "user = " + toml_string(d[1]) + "\n";
            if (args == 2)
                server += "group = " + toml_string(d[2]) + "\n";
        } else {
            *error = "unknown directive " + quoted(name) + " in command line";
            return false;
        }
    }
    if (!server.empty())
        out->toml = "[server]\n" + server;
    return true;
}

std::string nginx_version_text(const BuildInfo& build, bool with_build) {
    std::string out = "wraith version: wraith/" + std::string(build.version);
    if (build.package_version && *build.package_version)
        out += " (package " + std::string(build.package_version) + ")";
    out += "\n";
    if (!with_build)
        return out;
#if defined(__clang__)
    out += "built by clang " __clang_version__ "\n";
#elif defined(__GNUC__)
    out += "built by gcc " __VERSION__ "\n";
#endif
    out += "built with " OPENSSL_VERSION_TEXT " (running with " +
           std::string(OpenSSL_version(OPENSSL_VERSION)) + ")\n";
    out += "built with nghttp2 " NGHTTP2_VERSION ", ngtcp2 " NGTCP2_VERSION
           ", nghttp3 " NGHTTP3_VERSION ", GnuTLS " GNUTLS_VERSION ", c-ares " ARES_VERSION_STR
           ", libev " +
           std::to_string(EV_VERSION_MAJOR) + "." + std::to_string(EV_VERSION_MINOR) +
           ", zlib " ZLIB_VERSION ", zstd " ZSTD_VERSION_STRING "\n";
    out += "TLS SNI support enabled\n";
    out += "configure arguments: -DCMAKE_BUILD_TYPE=" + std::string(build.build_type) + "\n";
    return out;
}

int nginx_main(const std::vector<std::string>& args, const BuildInfo& build) {
    Options o;
    std::string error;
    if (!parse(args, &o, &error)) {
        say(error);
        return 1;
    }
    if (o.help) {
        fputs(kNginxUsage, stderr);
        return 0;
    }
    if (o.version) {
        fputs(nginx_version_text(build, o.build).c_str(), stderr);
        if (!o.test && o.signal.empty())
            return 0;
    }
    std::string prefix = o.prefix.empty() ? cwd() : join_path(cwd(), o.prefix);
    std::string config = o.has_config ? join_path(prefix, o.config) : kDefaultConfig;
    NginxGlobals g;
    if (!parse_nginx_globals(o.globals, prefix, &g, &error)) {
        say("[emerg] " + error);
        return 1;
    }
    if (o.test)
        return test_config(o, config, g);
    if (!o.signal.empty())
        return send_signal(o, config, g);
    MasterOptions opts;
    opts.config_path = config;
    opts.daemon = g.daemon;
    opts.overrides = g.toml;
    opts.globals = o.globals;
    Master master(opts);
    return master.run();
}

} // namespace wraith
