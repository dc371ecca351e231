// The WAF's rule engine: libmodsecurity3 with the rule files a `waf` key names (the OWASP CRS).
// Rules load at config time, in the process that loads the config (the master, or `wraith
// check`), once per distinct set of options in a generation; workers inherit them across fork
// and only read them. docs/decisions.md, "WAF (ModSecurity)".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config_reader.h"

namespace modsecurity {
class ModSecurity;
class RulesSet;
} // namespace modsecurity

namespace wraith::waf {

// What a `waf = { ... }` table says.
struct WafOptions {
    std::vector<std::string> rules;   // rule files, absolute, loaded in order
    bool block = true;                // mode "block" (SecRuleEngine On), else "detect"
    uint64_t body_limit = 128 * 1024; // request body bytes inspected and held until the verdict
    bool reject_over_limit = true;    // body_limit_action "reject" (413), else "partial"
    std::string audit_log;            // ModSecurity's JSON audit log ("" : none)

    // Two scopes with the same key share one engine.
    std::string key() const;
};

// One loaded rule set: immutable once built, shared by every filter of a generation that has
// the same options.
class Engine {
public:
    explicit Engine(WafOptions options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    const WafOptions& options() const { return options_; }
    modsecurity::ModSecurity& modsec() const { return *modsec_; }
    modsecurity::RulesSet& rules() const { return *rules_; }

private:
    friend std::shared_ptr<const Engine> load_engine(const WafOptions&, const void*, Diagnostics&,
                                                     const SourcePos&);
    WafOptions options_;
    std::unique_ptr<modsecurity::ModSecurity> modsec_;
    std::unique_ptr<modsecurity::RulesSet> rules_;
};

// The engine for `options` in the config being built (`generation` identifies it: the Config's
// address), loading it on first use. A rule file that does not load is reported at its own
// FILE:LINE:COL when ModSecurity names one, and at `at` (the `waf` key in wraith.toml);
// returns null then.
std::shared_ptr<const Engine> load_engine(const WafOptions& options, const void* generation,
                                          Diagnostics& diag, const SourcePos& at);

// ModSecurity's parser error, "Rules error. File: F. Line: L. Column: C. MESSAGE", as a position
// and a message; false when the text names no position (a file that does not open).
bool parse_rules_error(const std::string& text, SourcePos& pos, std::string& message);

// A rule file's text for ModSecurity, line for line: libmodsecurity3 does not know
// `IncludeOptional` (Apache's ModSecurity does; the CRS package's owasp-crs.load uses it), so
// each becomes `Include` when its pattern names a file, else a comment.
std::string rewrite_include_optional(const std::string& text);

} // namespace wraith::waf
