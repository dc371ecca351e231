// `wraith route -c FILE 'GET https://example.com/old/x' -H 'X-Beta: 1' --client-ip 203.0.113.9`:
// explains which site and route a request takes and why every earlier candidate was skipped,
// from the configuration alone (no running server). The same text goes to the debug log of a
// running server for each request (worker/pipeline.cc).
#pragma once

#include <string>
#include <vector>

namespace wraith {

extern const char kRouteHelp[];

// `args` after the word "route"; `default_config` when no -c is given. Exit code: 0 a route
// serves the request, 1 no route (404), a rewrite failed (500) or the config has errors,
// 2 usage.
int route_main(const std::vector<std::string>& args, const std::string& default_config);

} // namespace wraith
