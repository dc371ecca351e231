// A server's locations (and its server-level return/rewrite) as Wraith routes.
#pragma once

#include <map>
#include <string>

#include "convert/converter.h"

namespace wraith::convert {

// Appends the routes of `info`'s server to `site`; error pages of its locations are merged
// into `pages` (Wraith's error_pages are per site).
void make_routes(Converter& c, ServerInfo& info, SiteOut& site, std::map<int, std::string>& pages);

// NGINX variables in a redirect target as Wraith's ($scheme, $host, $request_uri, $uri,
// $query, $1..$9, $arg_/$http_/$cookie_NAME); false when one has no equivalent.
// `server_name` stands in for $server_name.
bool map_redirect_variables(const std::string& in, const std::string& server_name, std::string* out,
                            std::string* unknown);
// The same for other strings with variables (rewrite replacements, respond bodies): $args
// instead of a redirect's $query.
bool map_variables(const std::string& in, const std::string& server_name, std::string* out,
                   std::string* unknown, bool redirect);

// A case-insensitive PCRE pattern (location ~*) as a case-sensitive one:
// letters become [aA] classes, letter ranges in classes get their other case.
std::string fold_case(const std::string& pattern);

} // namespace wraith::convert
