#include "modules/geo/geo.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>

#include <cstring>

#include <toml++/toml.h>

#include "common/cidr.h"
#include "common/config_reader.h"
#include "common/log.h"
#include "common/module.h"
#include "common/variables.h"
#include "modules/geo/database.h"

namespace wraith {
const ModuleSpec& geo_module();
}

namespace wraith::geo {

namespace {

// ISO 3166-1 alpha-2 codes in use, plus XK (Kosovo), which the databases carry.
constexpr std::string_view kCountries =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
    "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
    "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
    "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
    "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
    "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
    "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS XK YE YT ZA ZM ZW";
constexpr std::string_view kContinents = "AF AN AS EU NA OC SA";

bool in_list(std::string_view list, std::string_view code) {
    if (code.size() != 2)
        return false;
    for (size_t i = 0; i + 2 <= list.size(); i += 3)
        if (list.substr(i, 2) == code)
            return true;
    return false;
}

// What [geo] says, and the databases opened while loading it (so `wraith check` reports a
// missing or corrupt file, and workers start with them).
struct GeoConfig final : ModuleConfig {
    std::string database;     // City or Country database
    std::string asn_database; // "" = none (ASN fields then come from `database`, if it has them)
    Duration watch{1000};     // how often a worker looks for a replaced file
    std::shared_ptr<const Database> city;
    std::shared_ptr<const Database> asn;
};

void load_geo(const toml::node& value, TableContext& ctx) {
    const toml::table* t = value.as_table();
    if (!t) {
        ctx.diag.error(&value, "geo: expected a table [geo], got " + describe_value(value));
        return;
    }
    auto cfg = std::make_unique<GeoConfig>();
    TableReader r(*t, ctx.diag, "geo");
    auto open = [&](std::string_view key, std::string& path, std::shared_ptr<const Database>& out) {
        std::optional<std::string> p = r.string(key);
        if (!p)
            return;
        if (p->empty()) {
            r.error(key, "must not be empty");
            return;
        }
        path = resolve_path(ctx.config.dir, *p);
        std::string error;
        out = Database::open(path, &error);
        if (!out)
            r.error(key, error);
    };
    open("database", cfg->database, cfg->city);
    if (!r.has("database"))
        ctx.diag.error(r.table_pos(), "geo.database: required, the path of a GeoLite2/GeoIP2 "
                                      "City or Country database (.mmdb)");
    open("asn_database", cfg->asn_database, cfg->asn);
    if (std::optional<Duration> d = r.duration("watch")) {
        if (d->count() < 100)
            r.error("watch", "must be at least 100ms");
        else
            cfg->watch = *d;
    }
    r.finish();
    ctx.config.modules["geo"] = std::move(cfg);
}

// One watched database file in a worker: the open copy and the identity of the file that last
// failed to open (not retried until the file changes again).
struct Watched {
    std::string path;
    std::shared_ptr<const Database> db;
    FileIdentity failed;
    bool missing_logged = false;

    void check() {
        if (path.empty())
            return;
        FileIdentity now;
        if (!identify(path, now)) {
            if (!missing_logged)
                WLOG_ERROR("geo: %s is gone; keeping the data loaded before", path.c_str());
            missing_logged = true;
            return;
        }
        missing_logged = false;
        if ((db && now == db->identity()) || now == failed)
            return;
        std::string error;
        std::shared_ptr<const Database> fresh = Database::open(path, &error);
        if (!fresh) {
            failed = now;
            WLOG_ERROR("geo: %s; keeping the data loaded before", error.c_str());
            return;
        }
        db = std::move(fresh); // requests under way keep their copies (shared_ptr)
        WLOG_INFO("geo: reopened %s", path.c_str());
    }
};

// A worker's databases: they start as the ones the config loaded (mapped before the fork) and
// are replaced when the files change on disk.
class GeoWorker final : public ModuleWorker {
public:
    GeoWorker(struct ev_loop* loop, const GeoConfig& cfg) : loop_(loop) {
        city_ = {cfg.database, cfg.city};
        asn_ = {cfg.asn_database, cfg.asn};
        if (loop_) {
            ev_timer_init(&timer_, on_timer, cfg.watch.count() / 1000.0,
                          cfg.watch.count() / 1000.0);
            timer_.data = this;
            ev_timer_start(loop_, &timer_);
            ev_unref(loop_); // watching alone does not keep a worker alive
        }
    }
    ~GeoWorker() override { stop(); }
    void drain() override { stop(); }

    const Database* city() const { return city_.db.get(); }
    const Database* asn() const { return asn_.db.get(); }

private:
    void stop() {
        if (loop_ && ev_is_active(&timer_)) {
            ev_ref(loop_);
            ev_timer_stop(loop_, &timer_);
        }
    }
    static void on_timer(struct ev_loop*, ev_timer* w, int) {
        auto* self = static_cast<GeoWorker*>(w->data);
        self->city_.check();
        self->asn_.check();
    }

    struct ev_loop* loop_;
    ev_timer timer_{};
    Watched city_, asn_;
};

std::unique_ptr<ModuleWorker> start_geo(const WorkerContext& ctx) {
    const GeoConfig* cfg = ctx.config->module_config<GeoConfig>("geo");
    if (!cfg)
        return nullptr;
    return std::make_unique<GeoWorker>(ctx.loop, *cfg);
}

std::string_view copy_string(const MMDB_entry_data_s& d, Arena& arena) {
    if (!d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING)
        return {};
    return arena.copy({d.utf8_string, d.data_size});
}

bool to_sockaddr(std::string_view ip_text, sockaddr_storage& ss) {
    IpAddress ip = ip_of(ip_text);
    ss = {};
    if (ip.family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        std::memcpy(&a->sin_addr, ip.bytes, 4);
        return true;
    }
    if (ip.family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        std::memcpy(&a->sin6_addr, ip.bytes, 16);
        return true;
    }
    return false;
}

void read_asn(const Database& db, const sockaddr_storage& ss, Lookup& out, Arena& arena) {
    int error = 0;
    MMDB_lookup_result_s res =
        MMDB_lookup_sockaddr(db.mmdb(), reinterpret_cast<const sockaddr*>(&ss), &error);
    if (error != MMDB_SUCCESS || !res.found_entry)
        return;
    MMDB_entry_data_s d;
    if (MMDB_get_value(&res.entry, &d, "autonomous_system_number", nullptr) == MMDB_SUCCESS &&
        d.has_data) {
        uint64_t n = d.type == MMDB_DATA_TYPE_UINT32   ? d.uint32
                     : d.type == MMDB_DATA_TYPE_UINT16 ? d.uint16
                     : d.type == MMDB_DATA_TYPE_UINT64 ? d.uint64
                                                       : 0;
        if (n > 0 && n <= UINT32_MAX) {
            out.asn = static_cast<uint32_t>(n);
            char buf[12];
            int len = std::snprintf(buf, sizeof buf, "%u", out.asn);
            out.asn_text = arena.copy({buf, static_cast<size_t>(len)});
        }
    }
    if (MMDB_get_value(&res.entry, &d, "autonomous_system_organization", nullptr) == MMDB_SUCCESS)
        out.asn_org = copy_string(d, arena);
}

size_t geo_index() {
    // The registry keeps copies of the specs: look ours up by key.
    static const size_t index =
        ModuleRegistry::instance().index_of(*ModuleRegistry::instance().find(geo_module().key));
    return index;
}

// Variables: $geo_country, $geo_continent, $geo_subdivision, $geo_city, $geo_asn, $geo_asn_org.
void register_variables() {
    Variables& v = Variables::instance();
    v.add("geo_country",
          [](const Request& r, std::string_view, Arena&) { return lookup(r).country; });
    v.add("geo_continent",
          [](const Request& r, std::string_view, Arena&) { return lookup(r).continent; });
    v.add("geo_subdivision",
          [](const Request& r, std::string_view, Arena&) { return lookup(r).subdivision; });
    v.add("geo_city", [](const Request& r, std::string_view, Arena&) { return lookup(r).city; });
    v.add("geo_asn", [](const Request& r, std::string_view, Arena&) { return lookup(r).asn_text; });
    v.add("geo_asn_org",
          [](const Request& r, std::string_view, Arena&) { return lookup(r).asn_org; });
}

} // namespace

bool known_country(std::string_view code) {
    return in_list(kCountries, code);
}

bool known_continent(std::string_view code) {
    return in_list(kContinents, code);
}

bool configured(const Config& config) {
    return config.module_config<GeoConfig>("geo") != nullptr;
}

const Lookup& lookup(const Request& req) {
    static const Lookup none;
    if (req.geo)
        return *req.geo;
    const GeoWorker* w = req.modules ? req.modules->get<GeoWorker>(geo_index()) : nullptr;
    if (!w || !req.arena)
        return none;
    auto* out = req.arena->make<Lookup>();
    req.geo = out;
    sockaddr_storage ss;
    if (!to_sockaddr(client_ip_of(req), ss))
        return *out;
    Arena& arena = *req.arena;
    if (const Database* db = w->city()) {
        int error = 0;
        MMDB_lookup_result_s res =
            MMDB_lookup_sockaddr(db->mmdb(), reinterpret_cast<const sockaddr*>(&ss), &error);
        if (error == MMDB_SUCCESS && res.found_entry) {
            MMDB_entry_data_s d;
            if (MMDB_get_value(&res.entry, &d, "country", "iso_code", nullptr) == MMDB_SUCCESS)
                out->country = copy_string(d, arena);
            if (MMDB_get_value(&res.entry, &d, "continent", "code", nullptr) == MMDB_SUCCESS)
                out->continent = copy_string(d, arena);
            if (MMDB_get_value(&res.entry, &d, "subdivisions", "0", "iso_code", nullptr) ==
                MMDB_SUCCESS)
                out->subdivision = copy_string(d, arena);
            if (MMDB_get_value(&res.entry, &d, "city", "names", "en", nullptr) == MMDB_SUCCESS)
                out->city = copy_string(d, arena);
        }
        if (!w->asn())
            read_asn(*db, ss, *out, arena); // a database with both (DB-IP's, test fixtures)
    }
    if (const Database* db = w->asn())
        read_asn(*db, ss, *out, arena);
    return *out;
}

// For `wraith route` and tests: the databases a config loaded, as a worker would start with.
std::unique_ptr<ModuleWorker> make_worker(const Config& config) {
    const GeoConfig* cfg = config.module_config<GeoConfig>("geo");
    return cfg ? std::make_unique<GeoWorker>(nullptr, *cfg) : nullptr;
}

} // namespace wraith::geo

namespace wraith {

// Geo lookups over libmaxminddb: [geo] database (+ asn_database), variables $geo_*, and the
// country/continent/subdivision/asn conditions of `match` and `allow`/`deny` (modules/routing).
const ModuleSpec& geo_module() {
    static const ModuleSpec spec = [] {
        geo::register_variables();
        return ModuleSpec{.key = "geo",
                          .table = "geo",
                          .load_table = geo::load_geo,
                          .worker_start = geo::start_geo};
    }();
    return spec;
}

} // namespace wraith
