// NGINX's command line on top of wraith's (`wraith -t`, `-T`, `-s reload`, `-c`, `-p`, `-g`,
// `-v`, `-V`, `-q`), with NGINX's messages and exit codes, so scripts, Ansible roles and
// monitoring written for `nginx -t && nginx -s reload` work with the name swapped. The native
// subcommands (`wraith serve|check|reload ...`) are untouched; wraith(8) documents both.
#pragma once

#include <string>
#include <vector>

namespace wraith {

// What main.cc knows only at its own compile time (it alone sees the package version).
struct BuildInfo {
    const char* version;         // "0.1.0"
    const char* package_version; // "0.1.0-1", "" outside a distribution package
    const char* build_type;      // CMake's build type
};

// True when `args` are NGINX-style: not empty, and every argument is a single-dash option or
// an option's value, with no native subcommand (`wraith -t`, `wraith -c F -s reload`).
bool is_nginx_command_line(const std::vector<std::string>& args);

// Runs an NGINX-style command line; returns the process exit code (NGINX's: 0 or 1).
int nginx_main(const std::vector<std::string>& args, const BuildInfo& build);

// The -g directives NGINX's command line takes (the documented subset), turned into what
// wraith uses: TOML merged over the file ([server] keys), whether to detach, and the pid file.
struct NginxGlobals {
    std::string toml;     // "[server]\nworkers = 4\n..." or ""
    bool daemon = true;   // `daemon off;` clears it
    std::string pid_file; // `pid FILE;`, absolute; "" when not given
};

// Parses `text` ("daemon off; worker_processes 2;"); relative paths resolve against
// `base_dir`. False with an NGINX-shaped message in *error ("unknown directive \"x\" in
// command line").
bool parse_nginx_globals(const std::string& text, const std::string& base_dir, NginxGlobals* out,
                         std::string* error);

// `wraith -V`: the version, the package version, compiler and library versions.
std::string nginx_version_text(const BuildInfo& build, bool with_build);

} // namespace wraith
