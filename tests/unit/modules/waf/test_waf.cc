// modules/waf: the `waf` key's errors at their FILE:LINE:COL (wraith.toml's, and a rule file's
// own for ModSecurity's parser errors), IncludeOptional made loadable line for line, one engine
// per distinct option set per generation, and the measured cost of one CRS evaluation of a
// 128 KiB body (printed, not asserted: docs/decisions.md, "WAF (ModSecurity)").
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

#include "common/config.h"
#include "modules/waf/waf_engine.h"
#include "modules/waf/waf_filter.h"

using namespace wraith;

namespace {

const std::string kListen = "[[listen]]\naddress = \"127.0.0.1:8080\"\n";
const std::string kBase = std::string(WRAITH_SOURCE_DIR) + "/conf/waf/modsecurity.conf";
const std::string kCrs = "/usr/share/modsecurity-crs/owasp-crs.load";

std::vector<std::string> errors(const std::string& text) {
    Diagnostics diag;
    auto cfg = load_config_text(kListen + text, "waf.toml", "/tmp", diag);
    std::vector<std::string> out;
    for (const auto& d : diag.list())
        out.push_back(d.text());
    return out;
}

std::string site(const std::string& waf) {
    return "[[site]]\nhosts = [\"*\"]\nwaf = " + waf +
           "\n  [[site.route]]\n  path = \"/\"\n  respond = { body = \"ok\" }\n";
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) {
        char name[] = "/tmp/wraith-waf-test-XXXXXX";
        int fd = mkstemp(name);
        REQUIRE(fd >= 0);
        REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        close(fd);
        path = name;
    }
    ~TempFile() { unlink(path.c_str()); }
};

} // namespace

TEST_CASE("waf: ModSecurity's parser error becomes a position and a message") {
    SourcePos pos;
    std::string message;
    REQUIRE(waf::parse_rules_error(
        "Rules error. File: /etc/x.conf. Line: 12. Column: 20. Invalid input:  SecBogus 1", pos,
        message));
    CHECK(pos.file == "/etc/x.conf");
    CHECK(pos.line == 12);
    CHECK(pos.column == 20);
    CHECK(message == "invalid directive:  SecBogus 1");
    CHECK_FALSE(waf::parse_rules_error("Failed to open the file: /nope\n", pos, message));
}

TEST_CASE("waf: IncludeOptional becomes Include or a comment, line for line") {
    TempFile present("# nothing\n");
    std::string text = "A\n  IncludeOptional " + present.path +
                       "\nIncludeOptional /nonexistent/*.conf\nIncludeOptionalX y\nB";
    std::string out = waf::rewrite_include_optional(text);
    CHECK(out == "A\nInclude " + present.path +
                     "\n# (absent) IncludeOptional /nonexistent/*.conf\nIncludeOptionalX y\nB");
}

TEST_CASE("waf: option errors are reported at the waf key's values") {
    CHECK(errors(site("{ mode = \"block\" }")) ==
          std::vector<std::string>{
              "waf.toml:5:7: waf.rules: expected a list of ModSecurity rule files, like "
              "[\"/etc/wraith/modsecurity.conf\", \"/usr/share/modsecurity-crs/owasp-crs.load\"]"});
    auto e = errors(site("{ rules = [\"" + kBase + "\"], mode = \"learn\" }"));
    REQUIRE(e.size() == 1);
    CHECK(e[0].rfind("waf.toml:5:", 0) == 0);
    CHECK(e[0].find("mode") != std::string::npos);
    e = errors(site("{ rules = [\"" + kBase + "\"], body_limit = 0 }"));
    REQUIRE(e.size() == 1);
    CHECK(e[0].find("body_limit: must be between 1 byte and 64m") != std::string::npos);
    e = errors(site("{ rules = [\"" + kBase + "\"], audit = \"x\" }"));
    REQUIRE(!e.empty());
    CHECK(e[0].find("unknown key \"audit\"") != std::string::npos);
}

TEST_CASE("waf: a broken rule file is reported at its line and at the waf key") {
    TempFile bad("SecRuleEngine On\n\nSecNoSuchDirective 1\n");
    auto e = errors(site("{ rules = [\"" + bad.path + "\"] }"));
    // wraith.toml's problems come first (Diagnostics::sort_by_position), then the rule file's.
    REQUIRE(e.size() == 2);
    CHECK(e[0] == "waf.toml:5:7: waf: rule file \"" + bad.path + "\" did not load: " + bad.path +
                      ":3:21: invalid directive:  SecNoSuchDirective 1");
    CHECK(e[1] == bad.path + ":3:21: waf: invalid directive:  SecNoSuchDirective 1");
    e = errors(site("{ rules = [\"/nonexistent/rules.conf\"] }"));
    CHECK(e == std::vector<std::string>{
                   "waf.toml:5:7: waf: cannot read rule file \"/nonexistent/rules.conf\""});
}

TEST_CASE("waf: scopes with the same options share one engine; others get their own") {
    TempFile rules("SecRule ARGS:x \"@streq y\" \"id:10,phase:1,deny\"\n");
    Diagnostics diag;
    const std::string waf = "{ rules = [\"" + rules.path + "\"] }";
    auto cfg = load_config_text(kListen + "[server]\nwaf = " + waf + "\n" + site(waf) +
                                    "[[site]]\nhosts = [\"b\"]\nwaf = { rules = [\"" + rules.path +
                                    "\"], mode = \"detect\" }\n  [[site.route]]\n  path = "
                                    "\"/\"\n  respond = { body = \"ok\" }\n",
                                "waf.toml", "/tmp", diag);
    for (const auto& d : diag.list())
        FAIL(d.text());
    REQUIRE(cfg);
    std::vector<const waf::Engine*> engines;
    auto collect = [&](const FilterScope& scope) {
        for (const auto& [spec, f] : scope.own)
            if (auto* w = dynamic_cast<const waf::WafFilter*>(f.get()))
                engines.push_back(&w->engine());
    };
    collect(cfg->filters);
    for (const auto& s : cfg->sites)
        collect(s->filters);
    REQUIRE(engines.size() == 3);
    CHECK(engines[0] == engines[1]);
    CHECK(engines[0] != engines[2]);
    CHECK_FALSE(engines[2]->options().block);
}

TEST_CASE("waf: measured cost of one CRS evaluation of a 128 KiB body") {
    modsecurity::ModSecurity ms;
    modsecurity::RulesSet rules;
    ms.setServerLogCb([](void*, const void*) {}, modsecurity::TextLogProperty);
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(rules.load("SecRuleEngine On\nSecRequestBodyLimit 131072\n", "test") >= 0);
    for (const std::string& f : {kBase, kCrs}) {
        std::ifstream in(f);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        INFO(rules.getParserError());
        REQUIRE(rules.load(waf::rewrite_include_optional(text).c_str(), f) >= 0);
    }
    auto load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);

    // Benign bodies of 128 KiB (under the base config's 1,000-argument limit): a form of 200
    // fields of prose, a JSON document of 200 objects of the same prose.
    std::string prose;
    while (prose.size() < 600)
        prose += "the+quick+brown+fox+jumps+over+the+lazy+dog+";
    std::string form, json = "{\"items\":[";
    for (int i = 0; form.size() < 131072 - 700; ++i)
        form += (i ? "&" : "") + std::string("field") + std::to_string(i) + "=" + prose;
    for (int i = 0; json.size() < 131072 - 800; ++i)
        json += (i ? "," : "") + std::string("{\"id\":") + std::to_string(i) + ",\"text\":\"" +
                prose + "\"}";
    json += "]}";
    auto run = [&](const std::string& body, const char* type) {
        double best = 1e9;
        for (int round = 0; round < 3; ++round) {
            auto start = std::chrono::steady_clock::now();
            modsecurity::Transaction tx(&ms, &rules, nullptr);
            tx.processConnection("127.0.0.1", 40000, "127.0.0.1", 80);
            tx.processURI("/api/submit", "POST", "1.1");
            tx.addRequestHeader("host", "app.test");
            tx.addRequestHeader("user-agent", "Mozilla/5.0");
            tx.addRequestHeader("accept", "*/*");
            tx.addRequestHeader("content-type", type);
            tx.addRequestHeader("content-length", std::to_string(body.size()));
            tx.processRequestHeaders();
            tx.appendRequestBody(reinterpret_cast<const unsigned char*>(body.data()), body.size());
            tx.processRequestBody();
            modsecurity::ModSecurityIntervention it;
            modsecurity::intervention::clean(&it);
            bool blocked = tx.intervention(&it);
            INFO((it.log ? it.log : ""));
            CHECK_FALSE(blocked);
            modsecurity::intervention::free(&it);
            best = std::min(best, std::chrono::duration<double, std::milli>(
                                      std::chrono::steady_clock::now() - start)
                                      .count());
        }
        return best;
    };
    double form_ms = run(form, "application/x-www-form-urlencoded");
    double json_ms = run(json, "application/json");
    std::printf("[waf] CRS 3.3.4 load: %.0f ms; one evaluation of a 128 KiB body (best of 3): "
                "form (%zu B) %.1f ms, JSON (%zu B) %.1f ms\n",
                load_ms.count(), form.size(), form_ms, json.size(), json_ms);
}
