// wraith: command-line front door. `serve` becomes the master; the other subcommands validate
// a config or talk to a running master over its control socket.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/config.h"
#include "convert/convert.h"
#include "master/control_client.h"
#include "master/generate_certs.h"
#include "master/master.h"
#include "master/nginx_cli.h"
#include "master/route_cli.h"
#include "master/top.h"
#include "modules/modules.h"
#include "worker/sandbox.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/wraith/wraith.toml";

const char* kUsage =
    "usage: wraith <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve [-c FILE] [--daemon]   run the server (master + workers) in the foreground\n"
    "  check [-c FILE]              validate a configuration; every problem as FILE:LINE:COL\n"
    "  status [-c FILE]             show the running master, its generations and workers\n"
    "  top [-c FILE] [-d S] [-n N]  live view of a running server's traffic, like top(1)\n"
    "  reload [-c FILE]             load the configuration again; old workers drain\n"
    "  stop [-c FILE] [--fast]      stop gracefully (in-flight requests finish), or at once\n"
    "  upgrade [-c FILE]            start the (new) binary beside the running one (USR2)\n"
    "  generate certs ...           development CA and certificate for TLS (help generate)\n"
    "  convert [-o OUT] NGINX_CONF  translate an NGINX configuration into wraith.toml\n"
    "  route [-c FILE] 'GET URL'    explain which site and route a request takes, and why\n"
    "  help [COMMAND]               explain a command\n"
    "\n"
    "options:\n"
    "  -c, --config FILE            configuration file (default /etc/wraith/wraith.toml)\n"
    "  -h, --help                   this text\n"
    "  -V, --version                print the version\n"
    "  -d, --daemon                 (serve) detach from the terminal once listening\n"
    "  -g DIRECTIVES                (serve, check) NGINX-style global settings, e.g.\n"
    "                               'worker_processes 2; pid /run/w.pid;' (wraith -h)\n"
    "\n"
    "NGINX's command line works too: wraith -t, -T, -s reload|reopen|quit|stop, -v, -V,\n"
    "-q, -p PREFIX, -c FILE, -g DIRECTIVES (wraith -h lists them).\n"
    "\n"
    "See wraith(8) and wraith.toml(5).\n";

struct CommandHelp {
    const char* name;
    const char* text;
};

const CommandHelp kHelp[] = {
    {"serve",
     "usage: wraith serve [-c FILE] [--daemon]\n\n"
     "Runs the master process in the foreground: it validates FILE, binds every [[listen]]\n"
     "address, writes server.pid_file, opens server.control_socket and forks server.workers\n"
     "worker processes (as server.user when started as root). Stops on SIGTERM/SIGINT (fast)\n"
     "or SIGQUIT (graceful); SIGHUP reloads; SIGUSR1 reopens logs. --daemon detaches from the\n"
     "terminal after the configuration has been validated.\n"},
    {"check",
     "usage: wraith check [-c FILE]\n\n"
     "Validates FILE without starting anything. Prints each problem as FILE:LINE:COL: message\n"
     "on stderr and exits 1 if there is any; prints \"ok: FILE is valid\" and exits 0 "
     "otherwise.\n"},
    {"status",
     "usage: wraith status [-c FILE] [--json]\n\n"
     "Asks the master running with FILE (found through server.control_socket) for its pid,\n"
     "config, generation and uptime, and per worker: slot, generation, pid, state, uptime,\n"
     "open connections and requests served. --json prints the same as one JSON object:\n"
     "{\"master\": {pid, config, generation, uptime_seconds}, \"workers\": [{slot,\n"
     "generation, pid, state, uptime_seconds, connections, requests}, ...]}.\n"},
    {"top", wraith::kTopHelp},
    {"reload",
     "usage: wraith reload [-c FILE]\n\n"
     "Tells the running master to load its configuration again (like kill -HUP). Returns 0\n"
     "once the new worker generation is serving; the old one drains in-flight requests and\n"
     "exits. With an invalid configuration nothing changes: the errors are printed and the\n"
     "exit code is 1.\n"},
    {"stop",
     "usage: wraith stop [-c FILE] [--fast]\n\n"
     "Stops the running master. By default gracefully (like kill -QUIT): workers stop\n"
     "accepting, finish in-flight requests (up to server.drain_timeout) and exit. With --fast\n"
     "(like kill -TERM) connections are closed at once. Returns when the master has exited.\n"},
    {"upgrade",
     "usage: wraith upgrade [-c FILE]\n\n"
     "Binary upgrade (like kill -USR2): the running master starts the wraith binary again from\n"
     "its path (the new one, after a package upgrade), handing it the listening TCP and UDP\n"
     "sockets. Returns 0 once the new master's workers serve; both then serve side by side.\n"
     "The old master's pid file is renamed to PIDFILE.oldbin; stop the old master with\n"
     "kill -QUIT $(cat PIDFILE.oldbin) and its workers drain. If the new binary fails to\n"
     "start, the old master keeps serving, the error is printed and the exit code is 1.\n"},
    {"generate", wraith::kGenerateCertsHelp},
    {"convert", wraith::convert::kConvertHelp},
    {"route", wraith::kRouteHelp},
    {"help", "usage: wraith help [COMMAND]\n\nExplains COMMAND, or lists the commands.\n"},
};

int usage_error(const std::string& msg) {
    fprintf(stderr, "wraith: %s\n%s", msg.c_str(), "Run 'wraith --help' for usage.\n");
    return 2;
}

std::string absolute(const std::string& p) {
    if (!p.empty() && p[0] == '/')
        return p;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return p;
    return std::string(cwd) + "/" + p;
}

// Sends one command line to the master and copies its answer to stdout (or stderr for
// lines starting with "error"). Returns the exit code.
int control(const std::string& config_path, const std::string& command) {
    wraith::ControlAnswer answer = wraith::control_request(config_path, command);
    if (!answer.reached) {
        wraith::print_unreachable(answer, config_path);
        return 1;
    }
    if (answer.failed()) {
        fputs(answer.text.c_str(), stderr);
        return 1;
    }
    fputs(answer.text.c_str(), stdout);
    if (command == "stop" || command == "stop-fast")
        wraith::wait_stopped(answer);
    return 0;
}

int check(const std::string& config_path, const std::string& overrides) {
    wraith::Diagnostics diag;
    auto config = wraith::load_full_config(config_path, diag, nullptr, nullptr, overrides).config;
    diag.print(!config, config_path);
    if (!config)
        return 1;
    // Valid, but the kernel may not give what it asks for: said, not an error.
    for (const std::string& w : wraith::sandbox_warnings(*config))
        fprintf(stderr, "warning: %s: %s\n", config_path.c_str(), w.c_str());
    printf("ok: %s is valid\n", config_path.c_str());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    wraith::register_builtin_modules();
    std::vector<std::string> args(argv + 1, argv + argc);
    if (wraith::is_nginx_command_line(args)) {
        wraith::BuildInfo build{WRAITH_VERSION, WRAITH_PACKAGE_VERSION, WRAITH_BUILD_TYPE};
        return wraith::nginx_main(args, build);
    }
    if (args.empty()) {
        fputs(kUsage, stderr);
        return 2;
    }
    std::string command;
    std::string config_path = kDefaultConfig;
    std::string globals;
    bool daemon = false, fast = false, json = false;
    std::vector<std::string> positional;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        // `convert`, `route` and `top` take their own options.
        if (command == "convert" || command == "route" || command == "top") {
            positional.push_back(a);
            continue;
        }
        // `generate certs` has options of its own; only -c is shared.
        if (command == "generate" && a != "-c" && a != "--config" && a.rfind("--config=", 0) != 0) {
            positional.push_back(a);
            continue;
        }
        if (a == "-h" || a == "--help") {
            fputs(kUsage, stdout);
            return 0;
        }
        if (a == "-V" || a == "--version" || a == "version") {
            printf("wraith %s\n", WRAITH_VERSION);
            return 0;
        }
        if (a == "-c" || a == "--config") {
            if (i + 1 >= args.size())
                return usage_error(a + " needs a file name");
            config_path = args[++i];
        } else if (a.rfind("--config=", 0) == 0) {
            config_path = a.substr(9);
        } else if (a == "-g") {
            if (i + 1 >= args.size())
                return usage_error(a + " needs directives");
            globals += (globals.empty() ? "" : " ") + args[++i];
        } else if (a == "--daemon" || a == "-d") {
            daemon = true;
        } else if (a == "--fast") {
            fast = true;
        } else if (a == "--json") {
            json = true;
        } else if (!a.empty() && a[0] == '-') {
            return usage_error("unknown option " + a);
        } else if (command.empty()) {
            command = a;
        } else {
            positional.push_back(a);
        }
    }
    if (command == "help") {
        if (positional.empty()) {
            fputs(kUsage, stdout);
            return 0;
        }
        for (const auto& h : kHelp)
            if (positional[0] == h.name) {
                fputs(h.text, stdout);
                return 0;
            }
        return usage_error("no such command: " + positional[0]);
    }
    if (command == "convert")
        return wraith::convert::convert_main(positional);
    if (command == "route")
        return wraith::route_main(positional, config_path);
    if (command == "top")
        return wraith::top_main(positional, config_path);
    if (command == "generate") {
        if (!positional.empty() && (positional[0] == "-h" || positional[0] == "--help")) {
            fputs(wraith::kGenerateCertsHelp, stdout);
            return 0;
        }
        if (positional.empty() || positional[0] != "certs")
            return usage_error("generate what? e.g. 'wraith generate certs --self-signed'");
        return wraith::generate_certs({positional.begin() + 1, positional.end()},
                                      absolute(config_path));
    }
    if (!positional.empty())
        return usage_error("unexpected argument " + positional[0]);
    if ((daemon && command != "serve") || (fast && command != "stop") ||
        (json && command != "status") ||
        (!globals.empty() && command != "serve" && command != "check"))
        return usage_error("option not valid for '" + command + "'");
    config_path = absolute(config_path);
    wraith::NginxGlobals nginx_globals;
    std::string globals_error;
    if (!wraith::parse_nginx_globals(globals, absolute("."), &nginx_globals, &globals_error)) {
        fprintf(stderr, "wraith: -g: %s\n", globals_error.c_str());
        return 2;
    }
    if (command == "serve") {
        wraith::MasterOptions opts;
        opts.config_path = config_path;
        opts.daemon = daemon;
        opts.overrides = nginx_globals.toml;
        opts.globals = globals;
        wraith::Master master(opts);
        return master.run();
    }
    if (command == "check")
        return check(config_path, nginx_globals.toml);
    if (command == "status")
        return control(config_path, json ? "status-json" : "status");
    if (command == "reload")
        return control(config_path, "reload");
    if (command == "stop")
        return control(config_path, fast ? "stop-fast" : "stop");
    if (command == "upgrade")
        return control(config_path, "upgrade");
    return usage_error("unknown command '" + command + "'");
}
