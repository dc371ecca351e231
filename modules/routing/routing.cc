// The routing module family's keys: one ModuleSpec each, registered in modules/modules.cc.
#include "modules/routing/routing.h"

namespace wraith {

// `match = { ... }`: conditions a route needs besides its path.
const ModuleSpec& match_module() {
    static const ModuleSpec spec{.key = "match", .build_condition = routing::build_match};
    return spec;
}

// `rewrite = { pattern, replace }`: an internal rewrite, then routing again.
const ModuleSpec& rewrite_module() {
    static const ModuleSpec spec{.key = "rewrite", .build_rewrite = routing::build_rewrite};
    return spec;
}

// `headers = { request, response, preset }`: header rules, adding up down the scopes.
const ModuleSpec& headers_module() {
    static const ModuleSpec spec{
        .key = "headers", .order = routing::kOrderHeaders, .build_filter = routing::build_headers};
    return spec;
}

// `allow = [...]`, `deny = [...]`: client addresses and countries.
const ModuleSpec& allow_module() {
    static const ModuleSpec spec{.key = "allow",
                                 .order = routing::kOrderAllowDeny,
                                 .build_filter = routing::build_allow,
                                 .takes_value = true};
    return spec;
}

const ModuleSpec& deny_module() {
    static const ModuleSpec spec{.key = "deny",
                                 .order = routing::kOrderAllowDeny,
                                 .build_filter = routing::build_deny,
                                 .takes_value = true};
    return spec;
}

// `basic_auth = { file, realm }`: htpasswd users.
const ModuleSpec& basic_auth_module() {
    static const ModuleSpec spec{.key = "basic_auth",
                                 .order = routing::kOrderBasicAuth,
                                 .build_filter = routing::build_basic_auth};
    return spec;
}

// `forward_auth = { pass | upstream, uri, copy_headers }`: an auth service decides.
const ModuleSpec& forward_auth_module() {
    static const ModuleSpec spec{.key = "forward_auth",
                                 .order = routing::kOrderForwardAuth,
                                 .build_filter = routing::build_forward_auth};
    return spec;
}

// `[server] real_ip = { header, trusted }`: the client address behind trusted proxies.
const ModuleSpec& real_ip_module() {
    static const ModuleSpec spec{
        .key = "real_ip", .order = routing::kOrderRealIp, .build_filter = routing::build_real_ip};
    return spec;
}

} // namespace wraith
