// [limit.NAME] tables (limit_config.h).
#include "modules/limit/limit_config.h"

#include <charconv>

#include <toml++/toml.h>

#include "common/hash.h"
#include "common/http.h"
#include "modules/limit/zone_table.h"

namespace wraith::limit {

namespace {

constexpr uint64_t kMaxCount = 1000000000;
constexpr uint64_t kMaxBurst = 1000000;
// GCRA arithmetic is in signed 64-bit nanoseconds: burst * interval stays far below 2^62.
constexpr int64_t kMaxTolerance = int64_t(1) << 60;

// Where in a string value a problem at byte `at` is: the value's position is its opening quote.
SourcePos inside(const SourcePos& value, size_t at) {
    SourcePos p = value;
    if (p.line > 0)
        p.column += static_cast<int>(at) + 1;
    return p;
}

class Loader {
public:
    Loader(TableContext& ctx, LimitConfig& out) : diag_(ctx.diag), out_(out) {}

    void load(const toml::table& all) {
        for (const auto& [key, value] : all) {
            std::string name(key.str());
            const toml::table* t = value.as_table();
            if (!t) {
                diag_.error(&value, "limit." + name + ": expected a table [limit." + name +
                                        "], got " + describe_value(value));
                continue;
            }
            if (!valid_name(name)) {
                diag_.error(&value, "limit." + name +
                                        ": a zone name is letters, digits, '_' and '-' (at "
                                        "most 64)");
                continue;
            }
            if (auto z = load_zone(name, *t)) {
                z->index = out_.by_index.size();
                out_.by_index.push_back(z.get());
                out_.zones.emplace(name, std::move(z));
            }
        }
    }

private:
    static bool valid_name(std::string_view n) {
        if (n.empty() || n.size() > 64)
            return false;
        for (char c : n)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-'))
                return false;
        return true;
    }

    // `key` as a rate; false (reported) when it is not one.
    bool read_rate(TableReader& r, std::string_view key, Rate& out) {
        std::optional<std::string> text = r.string(key);
        if (!text)
            return false;
        if (std::string err = parse_rate(*text, out); !err.empty()) {
            r.error(key, err);
            return false;
        }
        return true;
    }

    // Turns count/period and burst into GCRA's interval and tolerance.
    bool finish_rate(TableReader& r, std::string_view key, Rate& rate, uint64_t burst) {
        const int64_t period_ns = static_cast<int64_t>(rate.period_s) * 1000000000;
        rate.gcra.interval_ns = period_ns / static_cast<int64_t>(rate.count);
        if (rate.gcra.interval_ns < 1000) {
            r.error(key, "at most 1000000 per second");
            return false;
        }
        if (static_cast<int64_t>(burst) > kMaxTolerance / rate.gcra.interval_ns) {
            r.error("burst", "too large for this rate (burst times one request's share of the "
                             "period must stay under 36 years)");
            return false;
        }
        rate.gcra.tolerance_ns = static_cast<int64_t>(burst) * rate.gcra.interval_ns;
        return true;
    }

    void read_key(TableReader& r, ZoneConfig& z) {
        if (std::optional<std::string> k = r.string("key"))
            z.key_text = *k;
        std::string err;
        size_t at = 0;
        if (!z.key.compile(z.key_text, &err, &at)) {
            diag_.error(inside(r.pos("key"), at), "limit." + z.name + ".key: " + err);
            return;
        }
        if (z.key_text.size() > 1024)
            r.error("key", "at most 1024 characters");
    }

    void read_size(TableReader& r, ZoneConfig& z) {
        if (!r.has("size"))
            return;
        std::optional<uint64_t> size = r.size("size");
        if (!size)
            return;
        if (*size < ZoneTable::kMinSize)
            r.error("size", "too small: a zone needs at least \"32k\" (about " +
                                std::to_string(ZoneTable::capacity_for(ZoneTable::kMinSize)) +
                                " keys)");
        else if (*size > ZoneTable::kMaxSize)
            r.error("size", "too large: at most \"1g\" (about " +
                                std::to_string(ZoneTable::capacity_for(ZoneTable::kMaxSize)) +
                                " keys)");
        else
            z.size = *size;
    }

    // A key given to a kind it does not apply to.
    void only_for(TableReader& r, std::string_view key, std::string_view kind) {
        if (r.has(key)) {
            r.node(key);
            r.error(key, "applies to " + std::string(kind));
        }
    }

    std::shared_ptr<ZoneConfig> load_zone(const std::string& name, const toml::table& t) {
        auto z = std::make_shared<ZoneConfig>();
        z->name = name;
        z->pos = diag_.pos(&t);
        const size_t errors_before = diag_.count();
        TableReader r(t, diag_, "limit." + name);
        r.set_heading("[limit." + name + "]");

        const bool requests = r.has("rate");
        const bool connections = r.has("connections") || r.has("connection_rate");
        const bool bandwidth = r.has("bandwidth");
        if (int(requests) + int(connections) + int(bandwidth) != 1) {
            diag_.error(r.table_pos(),
                        "limit." + name +
                            (requests || connections || bandwidth
                                 ? ": a zone limits one thing: requests (rate), connections "
                                   "(connections, connection_rate) or bandwidth; split it into "
                                   "two [limit.*] tables"
                                 : ": says nothing to limit; give rate = \"20/s\", connections "
                                   "= 10, connection_rate = \"5/s\" or bandwidth = \"500k\""));
            for (const auto& [k, v] : t)
                r.node(k.str()); // the problem is the table as a whole, not each key
            r.finish();
            return nullptr;
        }

        if (requests) {
            z->kind = Kind::requests;
            read_key(r, *z);
            z->burst = static_cast<uint64_t>(r.integer("burst", 0, 0, kMaxBurst));
            if (read_rate(r, "rate", z->rate))
                finish_rate(r, "rate", z->rate, z->burst);
            std::string mode = r.choice("mode", "reject", {"reject", "delay", "dry_run"});
            z->mode = mode == "delay" ? Mode::delay : mode == "dry_run" ? Mode::dry_run
                                                                          : Mode::reject;
            if (r.has("delay_after")) {
                z->delay_after =
                    static_cast<uint64_t>(r.integer("delay_after", 0, 0, kMaxBurst));
                if (z->mode != Mode::delay)
                    r.error("delay_after", "applies to mode = \"delay\"");
                else if (z->delay_after > z->burst)
                    r.error("delay_after", "cannot be more than burst (" +
                                               std::to_string(z->burst) + ")");
            }
            read_answer(r, *z, 429);
            read_size(r, *z);
            only_for(r, "bandwidth_after", "bandwidth zones");
        } else if (connections) {
            z->kind = Kind::connections;
            read_key(r, *z);
            if (z->key.constant()) {
                z->key_constant = true;
            } else if (z->key_text != "$client_ip" && z->key_text != "${client_ip}") {
                r.error("key", "a connection limit is checked at accept, before any request "
                               "is read: its key is \"$client_ip\" (per client address) or "
                               "a constant such as \"all\" (one count for every client)");
            }
            if (r.has("connections"))
                z->connections =
                    static_cast<uint32_t>(r.integer("connections", 0, 1, 1000000));
            z->burst = static_cast<uint64_t>(r.integer("burst", 0, 0, kMaxBurst));
            if (r.has("connection_rate") && read_rate(r, "connection_rate", z->connection_rate))
                z->has_connection_rate =
                    finish_rate(r, "connection_rate", z->connection_rate, z->burst);
            if (r.has("burst") && !r.has("connection_rate"))
                r.error("burst", "applies to connection_rate");
            // A global cap refuses everyone alike: "unavailable", not "you asked too much".
            read_answer(r, *z, z->key_constant ? 503 : 429);
            if (!z->body.empty() || r.has("content_type"))
                r.error(r.has("body") ? "body" : "content_type",
                        "a refused connection gets a status line only (no body)");
            read_size(r, *z);
            for (std::string_view k : {"mode", "delay_after"})
                only_for(r, k, "request rates (rate)");
        } else {
            z->kind = Kind::bandwidth;
            std::optional<uint64_t> rate = r.size("bandwidth");
            if (rate && *rate < 1024)
                r.error("bandwidth", "at least \"1k\" (bytes per second)");
            else if (rate)
                z->bandwidth = *rate;
            z->bandwidth_after = r.size("bandwidth_after", 0);
            for (std::string_view k : {"key", "size", "burst", "mode", "delay_after", "status",
                                       "body", "content_type", "headers"})
                only_for(r, k, "request and connection zones (a bandwidth paces each "
                               "connection on its own)");
        }
        r.finish();
        if (diag_.count() != errors_before)
            return nullptr;
        return z;
    }

    void read_answer(TableReader& r, ZoneConfig& z, int default_status) {
        z.status = static_cast<int>(r.integer("status", default_status, 400, 599));
        if (std::optional<std::string> body = r.string("body")) {
            if (body->size() > 64 * 1024)
                r.error("body", "at most 64 KiB");
            z.body = *body;
        }
        z.content_type = r.string("content_type", "text/plain; charset=utf-8");
        if (!is_clean_field_value(z.content_type))
            r.error("content_type", "control characters are not allowed in a field value");
        if (r.has("content_type") && !r.has("body"))
            r.error("content_type", "applies to body");
        z.headers = r.boolean("headers", true);
    }

    Diagnostics& diag_;
    LimitConfig& out_;
};

} // namespace

std::string parse_rate(std::string_view text, Rate& out) {
    auto bad = [&] {
        return "expected a rate like \"20/s\", \"600/m\", \"1000/h\" or \"10000/d\", got " +
               in_quotes(text);
    };
    size_t slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 2 != text.size())
        return bad();
    std::string_view number = text.substr(0, slash);
    if (number.back() == 'r')
        number.remove_suffix(1); // NGINX writes "10r/s"
    uint64_t count = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), count);
    if (number.empty() || ec != std::errc() || end != number.data() + number.size())
        return ec == std::errc::result_out_of_range ? "rate too large: " + in_quotes(text)
                                                    : bad();
    switch (text.back()) {
    case 's':
        out.period_s = 1;
        break;
    case 'm':
        out.period_s = 60;
        break;
    case 'h':
        out.period_s = 3600;
        break;
    case 'd':
        out.period_s = 86400;
        break;
    default:
        return bad();
    }
    if (count == 0)
        return "a rate must allow at least one request per period; to block a route, answer "
               "it with respond = { status = 403 }";
    if (count > kMaxCount)
        return "rate too large: " + in_quotes(text);
    out.count = count;
    return {};
}

uint32_t ZoneConfig::zone_version() const {
    std::string what = std::to_string(static_cast<int>(kind)) + "\n" + key_text;
    return (ZoneTable::kLayoutVersion << 24) ^ static_cast<uint32_t>(mix64(fnv1a64(what)) >> 40);
}

const LimitConfig* limit_config(const Config& config) {
    return config.module_config<LimitConfig>("limit");
}

void load_limit_tables(const toml::node& value, TableContext& ctx) {
    const toml::table* all = value.as_table();
    if (!all) {
        ctx.diag.error(&value, "limit: expected tables [limit.NAME], got " + describe_value(value));
        return;
    }
    auto lc = std::make_unique<LimitConfig>();
    Loader(ctx, *lc).load(*all);
    ctx.config.modules["limit"] = std::move(lc);
}

void declare_limit_zones(const Config& config, std::vector<ZoneSpec>& out) {
    const LimitConfig* lc = limit_config(config);
    if (!lc)
        return;
    for (const ZoneConfig* z : lc->by_index) {
        if (z->kind == Kind::bandwidth)
            continue;
        // Handed over on binary upgrade: both masters' workers use one table, so counts
        // and rates carry across.
        out.push_back({z->zone_name(), z->size, z->zone_version(), ZoneTable::init, true});
    }
}

} // namespace wraith::limit
