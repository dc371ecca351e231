// The built-in modules. A module lives in its own folder and defines its ModuleSpec there;
// this file is the only place outside that folder that names it: a declaration and a place in
// the list. The list's order is the registry's (module indexes; filters of equal `order` run
// in it).
#include "modules/modules.h"

#include "common/module.h"

namespace wraith {

const ModuleSpec& static_module();   // modules/static
const ModuleSpec& proxy_module();    // modules/proxy
const ModuleSpec& redirect_module(); // modules/redirect
const ModuleSpec& respond_module();  // modules/respond
const ModuleSpec& compress_module(); // modules/compress
const ModuleSpec& tcp_module();      // modules/tcp
const ModuleSpec& geo_module();      // modules/geo
const ModuleSpec& match_module();    // modules/routing
const ModuleSpec& rewrite_module();
const ModuleSpec& headers_module();
const ModuleSpec& allow_module();
const ModuleSpec& deny_module();
const ModuleSpec& basic_auth_module();
const ModuleSpec& forward_auth_module();
const ModuleSpec& real_ip_module();
const ModuleSpec& limit_module();   // modules/limit
const ModuleSpec& observe_module(); // modules/metrics
const ModuleSpec& metrics_module();
const ModuleSpec& dashboard_module();
const ModuleSpec& trace_module();    // modules/trace
const ModuleSpec& dns_module();      // modules/dns
const ModuleSpec& dot_module();
const ModuleSpec& doq_module();
const ModuleSpec& crowdsec_module(); // modules/crowdsec
const ModuleSpec& waf_module();      // modules/waf

void register_builtin_modules() {
    static bool done = false;
    if (done)
        return;
    done = true;
    for (const ModuleSpec* spec :
         {&static_module(),     &proxy_module(),        &redirect_module(),  &respond_module(),
          &compress_module(),   &tcp_module(),          &geo_module(),       &match_module(),
          &rewrite_module(),    &headers_module(),      &allow_module(),     &deny_module(),
          &basic_auth_module(), &forward_auth_module(), &real_ip_module(),   &limit_module(),
          &observe_module(),    &metrics_module(),      &dashboard_module(), &trace_module(),
          &dns_module(),        &dot_module(),          &doq_module(),       &crowdsec_module(),
          &waf_module()})
        ModuleRegistry::instance().add(*spec);
}

} // namespace wraith
