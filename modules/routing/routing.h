// The routing module family (modules/routing): route conditions (`match`), internal rewrites
// (`rewrite`), header rules (`headers`), access control (`allow`, `deny`, `basic_auth`,
// `forward_auth`) and the client address behind trusted proxies (`real_ip`). Each key is a
// ModuleSpec of its own (routing.cc); this header lists their build functions.
#pragma once

#include <memory>

#include "common/module.h"

namespace wraith::routing {

std::unique_ptr<RouteCondition> build_match(TableReader& r, BuildContext& ctx);
std::unique_ptr<RouteRewrite> build_rewrite(TableReader& r, BuildContext& ctx);
std::unique_ptr<Filter> build_headers(TableReader& r, BuildContext& ctx);
std::unique_ptr<Filter> build_allow(TableReader& r, BuildContext& ctx);
std::unique_ptr<Filter> build_deny(TableReader& r, BuildContext& ctx);
std::unique_ptr<Filter> build_basic_auth(TableReader& r, BuildContext& ctx);
std::unique_ptr<Filter> build_forward_auth(TableReader& r, BuildContext& ctx);
std::unique_ptr<Filter> build_real_ip(TableReader& r, BuildContext& ctx);

// Filter order (ModuleSpec::order): the client address first, refusals before credentials,
// header rules last among access filters and outermost around the response.
constexpr int kOrderRealIp = 5;
constexpr int kOrderAllowDeny = 20;
constexpr int kOrderBasicAuth = 30;
constexpr int kOrderForwardAuth = 40;
constexpr int kOrderHeaders = 90;

} // namespace wraith::routing
