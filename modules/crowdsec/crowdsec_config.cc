// [crowdsec]: where the Local API is, the bouncer's key, how often to pull, what to do before
// the first pull and with remediations the bouncer does not implement, the ban page.
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "common/http_fetch.h"
#include "modules/crowdsec/crowdsec.h"
#include "modules/crowdsec/decision_table.h"

namespace wraith::crowdsec {

namespace {

constexpr const char* kDefaultBanPage =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>403 Forbidden</title></head>\n"
    "<body><h1>Access denied</h1><p>Your address is blocked by this site's security policy "
    "(CrowdSec).</p></body></html>\n";

std::string trim(std::string s) {
    const char* ws = " \t\r\n";
    s.erase(s.find_last_not_of(ws) + 1);
    s.erase(0, s.find_first_not_of(ws));
    return s;
}

bool read_whole(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return !in.bad();
}

// "ip,range" style lists for the stream's query: lower-case names, letters, digits, - _ : only.
std::string query_list(TableReader& r, std::string_view key) {
    std::string out;
    if (auto list = r.strings(key)) {
        for (const std::string& v : *list) {
            bool ok = !v.empty();
            for (char c : v)
                ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                            c == ':' || c == '.');
            if (!ok) {
                r.error(key, in_quotes(v) + " is not a scope or origin name");
                continue;
            }
            out += (out.empty() ? "" : ",") + v;
        }
        if (list->empty())
            r.error(key, "needs at least one entry (leave the key out for all)");
    }
    return out;
}

} // namespace

const CrowdsecConfig* crowdsec_config(const Config& config) {
    return config.module_config<CrowdsecConfig>("crowdsec");
}

void load_crowdsec(const toml::node& value, TableContext& ctx) {
    const toml::table* t = value.as_table();
    if (!t) {
        ctx.diag.error(&value, "crowdsec: expected a table, e.g. [crowdsec] url = "
                               "\"http://127.0.0.1:8080/\"");
        return;
    }
    const size_t errors = ctx.diag.count();
    auto cc = std::make_unique<CrowdsecConfig>();
    cc->pos = ctx.diag.pos(t);
    TableReader r(*t, ctx.diag, "crowdsec");
    cc->url = r.string("url", "http://127.0.0.1:8080/");
    {
        std::string host, path, host_field;
        uint16_t port = 0;
        if (!HttpFetch::split_url(cc->url, host, port, path, host_field) ||
            path.find_first_of(" ?#\r\n") != std::string::npos)
            r.error("url", "expected the Local API as http://HOST[:PORT]/ (https is not "
                           "supported yet: run the LAPI on a local address), got " +
                               in_quotes(cc->url));
        std::string base = cc->url;
        if (base.back() != '/')
            base += '/';
        cc->stream_url = base + "v1/decisions/stream";
    }
    if (std::optional<std::string> key_file = r.string("api_key_file")) {
        std::string path = readable_file(r, "api_key_file", *key_file, ctx.config.dir);
        std::string key;
        if (ctx.diag.count() == errors && read_whole(path, key)) {
            cc->api_key = trim(key);
            if (cc->api_key.empty())
                r.error("api_key_file", in_quotes(path) + " is empty: put the key of `cscli "
                                                          "bouncers add wraith` in it");
            else if (cc->api_key.find_first_of("\r\n\t ") != std::string::npos ||
                     cc->api_key.size() > 4096)
                r.error("api_key_file", in_quotes(path) + " holds more than one API key");
        }
    } else if (!r.has("api_key_file")) {
        r.error("api_key_file", "required: a file with the bouncer's key from `cscli bouncers "
                                "add wraith`");
    }
    if (std::optional<Duration> iv = r.duration("interval")) {
        if (iv->count() < 100 || iv->count() > 24 * 3600 * 1000)
            r.error("interval", "must be between 100ms and 24h");
        cc->interval = static_cast<double>(iv->count()) / 1000.0;
    }
    if (std::optional<Duration> to = r.duration("timeout")) {
        if (to->count() < 100)
            r.error("timeout", "must be at least 100ms");
        cc->timeout = static_cast<double>(to->count()) / 1000.0;
    }
    cc->fallback_block = r.choice("fallback", "pass", {"pass", "block"}) == "block";
    cc->unknown_ban = r.choice("fallback_remediation", "ban", {"ban", "pass"}) == "ban";
    cc->ban_at_accept = r.boolean("ban_at_accept", false);
    cc->ban_page = kDefaultBanPage;
    if (std::optional<std::string> page = r.string("ban_page")) {
        std::string path = readable_file(r, "ban_page", *page, ctx.config.dir);
        std::string body;
        if (ctx.diag.count() == errors && !read_whole(path, body))
            r.error("ban_page", "cannot read " + in_quotes(path));
        else if (body.size() > (1u << 20))
            r.error("ban_page", in_quotes(path) + " is over 1 MiB");
        cc->ban_page = std::move(body);
    }
    cc->max_decisions =
        static_cast<uint32_t>(r.integer("max_decisions", cc->max_decisions, 16, 16 * 1024 * 1024));
    cc->max_answer = r.size("max_answer", cc->max_answer);
    const std::string scopes = query_list(r, "scopes");
    const std::string origins = query_list(r, "origins");
    std::string query;
    query += "scopes=" + (scopes.empty() ? std::string("ip,range") : scopes);
    if (!origins.empty())
        query += "&origins=" + origins;
    cc->stream_url += "?" + query;
    r.finish();
    if (ctx.diag.count() != errors)
        return;
    ctx.config.modules["crowdsec"] = std::move(cc);
}

void declare_zones(const Config& config, std::vector<ZoneSpec>& out) {
    if (const CrowdsecConfig* cc = crowdsec_config(config))
        out.push_back(
            {kZoneName, zone_size(cc->max_decisions), kZoneVersion, init_zone, /*handover=*/true});
}

} // namespace wraith::crowdsec
