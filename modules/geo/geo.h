// Geo lookups ([geo]): the client address's country, continent, subdivision, city and ASN from
// MaxMind/DB-IP databases (.mmdb, libmaxminddb). A request asks the database at most once, and
// only when a rule, a variable or a log field needs the answer (geo::lookup caches it on the
// request). Each worker watches the files and re-opens one that changed on disk; a corrupt
// replacement keeps the old data and logs why. Variables: $geo_country, $geo_continent,
// $geo_subdivision, $geo_city, $geo_asn, $geo_asn_org.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/http.h"
#include "common/module.h"

namespace wraith::geo {

// What the databases say about one address; every view lives in the request's arena.
struct Lookup {
    std::string_view country;     // ISO 3166-1 alpha-2, upper-case ("DE"); empty: unknown
    std::string_view continent;   // "EU", "NA" ...
    std::string_view subdivision; // ISO 3166-2 code of the first subdivision ("BY")
    std::string_view city;        // English name
    uint32_t asn = 0;             // 0: unknown
    std::string_view asn_text;    // the number as text, for $geo_asn
    std::string_view asn_org;
};

// The answer for the request's client address (req.client_ip): looked up on first use.
// Without [geo] (or outside a worker that has the databases) every field is empty.
const Lookup& lookup(const Request& req);

// True when `code` is an assigned ISO 3166-1 alpha-2 code (upper-case), or one of the
// continent codes for `continent`.
bool known_country(std::string_view code);
bool known_continent(std::string_view code);

// Whether `config` has a [geo] table with a database (conditions on geo need one).
bool configured(const Config& config);

// The databases `config` loaded, as a worker starts with them but without watching the files:
// for `wraith route`, which explains a request without a running server. Null without [geo].
std::unique_ptr<ModuleWorker> make_worker(const Config& config);

} // namespace wraith::geo
