// The DNS module: [dns] (dns_config.h) and `dns = {}` on routes, DNS over HTTPS (doh.cc), and
// the `dot` listener protocol, DNS over TLS (dot.cc), and the `doq` one, DNS over QUIC (doq.cc),
// all answered from a block list, a cache shared by every worker (cache.h) or plain upstreams
// (forwarder.h). docs/decisions.md, "DNS", says why it is built this way.
#pragma once

#include <memory>

#include "common/module.h"

namespace wraith::dns {

std::unique_ptr<Handler> build_doh(TableReader& r, BuildContext& ctx);
void load_dns_table(const toml::node& value, TableContext& ctx);
std::shared_ptr<const StreamHandler> build_dot(TableReader& r, BuildContext& ctx);

} // namespace wraith::dns
