// `wraith convert nginx.conf`: NGINX configuration in, wraith.toml out, with a comment at
// every approximation and a list (FILE:LINE) of what could not be converted.
// The pieces: nginx_conf.* reads the files, directives.cc says what each directive means
// (one entry per directive: a handler, or "not yet" with the reason), converter.cc walks
// main -> http -> server -> location with NGINX's inheritance, output.cc writes the TOML.
#pragma once

#include <string>
#include <vector>

#include "convert/nginx_conf.h"

namespace wraith::convert {

struct ConvertResult {
    bool ok = false;                         // false: the input could not be read or parsed
    std::string toml;                        // the wraith.toml text
    std::vector<std::string> errors;         // "FILE:LINE: message" when !ok
    std::vector<std::string> not_converted;  // "FILE:LINE: directive ...: why"
    std::vector<std::string> approximations; // "FILE:LINE: what differs"
};

// Converts the parsed configuration; `main_file` names it in the output's header.
ConvertResult convert_nginx(const NginxConf& conf, const std::string& main_file);

// `wraith convert [-o OUT] FILE`: exit code 0 (converted, the lists on stderr), 1 (the input
// could not be read or parsed), 2 (usage).
int convert_main(const std::vector<std::string>& args);

extern const char kConvertHelp[];

} // namespace wraith::convert
