// NGINX's limit_req, limit_conn and limit_rate as [limit.NAME] tables and `limit = [...]`
// keys. The directives record what they say in the Scope; each route then lists the zones its
// scope uses (limit_keys), which also settles what NGINX said at the use (burst, nodelay,
// status) on the zone, and puts connection zones in [server] limit: Wraith counts connections
// at accept, for the whole server.
#pragma once

#include <string>

#include "convert/converter.h"

namespace wraith::convert {

// Directive handlers (directives.cc lists them).
void h_limit_req_zone(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_req(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_req_status(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_req_dry_run(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_conn_zone(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_conn(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_conn_status(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_conn_dry_run(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_rate(Converter& c, Scope& s, const NginxDirective& d);
void h_limit_rate_after(Converter& c, Scope& s, const NginxDirective& d);

// The `limit = [...]` line of a route whose scope is `s` (none when nothing limits it).
void limit_keys(Converter& c, const Scope& s, RouteOut& out);

// An NGINX limit_req_zone key as a Wraith key: $binary_remote_addr and $remote_addr become
// $client_ip; $http_/$cookie_/$arg_NAME, $host, $uri, $request_uri, $args, $scheme and
// $request_method their Wraith names; $server_name and $http_host become $host (noted in
// `note`). False, with the variable in `unknown`, for any other.
bool limit_key(const std::string& in, std::string* out, std::string* unknown, std::string* note);

} // namespace wraith::convert
