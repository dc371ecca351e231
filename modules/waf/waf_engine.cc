#include "modules/waf/waf_engine.h"

#include <fstream>
#include <glob.h>
#include <map>
#include <mutex>
#include <sstream>

#include <modsecurity/modsecurity.h>
#include <modsecurity/rules_set.h>

#include "common/log.h"

namespace wraith::waf {

std::string WafOptions::key() const {
    std::string k;
    for (const std::string& r : rules) {
        k += r;
        k += '\n';
    }
    k += block ? "block\n" : "detect\n";
    k += std::to_string(body_limit);
    k += reject_over_limit ? " reject\n" : " partial\n";
    k += audit_log;
    return k;
}

Engine::Engine(WafOptions options)
    : options_(std::move(options)), modsec_(std::make_unique<modsecurity::ModSecurity>()),
      rules_(std::make_unique<modsecurity::RulesSet>()) {
    modsec_->setConnectorInformation("wraith/" WRAITH_VERSION);
    // Without a callback ModSecurity prints every rule match on stdout. Matches reach the access
    // log (the rule IDs) and the audit log; the text goes to the error log at debug level.
    modsec_->setServerLogCb(
        [](void*, const void* text) {
            if (ErrorLog::enabled(LogLevel::debug))
                WLOG_DEBUG("waf: %s", static_cast<const char*>(text));
        },
        modsecurity::TextLogProperty);
}

Engine::~Engine() = default;

bool parse_rules_error(const std::string& text, SourcePos& pos, std::string& message) {
    static constexpr std::string_view kFile = "File: ", kLine = ". Line: ", kColumn = ". Column: ";
    size_t f = text.find(kFile);
    size_t l = text.find(kLine, f == std::string::npos ? 0 : f);
    size_t c = text.find(kColumn, l == std::string::npos ? 0 : l);
    if (f == std::string::npos || l == std::string::npos || c == std::string::npos)
        return false;
    pos.file = text.substr(f + kFile.size(), l - f - kFile.size());
    pos.line = std::atoi(text.c_str() + l + kLine.size());
    pos.column = std::atoi(text.c_str() + c + kColumn.size());
    size_t rest = text.find(". ", c + kColumn.size());
    message = rest == std::string::npos ? std::string() : text.substr(rest + 2);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    size_t start = message.find_first_not_of(' ');
    message = start == std::string::npos ? std::string() : message.substr(start);
    if (message.rfind("Invalid input:", 0) == 0)
        message = "invalid directive:" + message.substr(14);
    return pos.line > 0;
}

std::string rewrite_include_optional(const std::string& text) {
    static constexpr std::string_view kDirective = "IncludeOptional";
    std::string out;
    out.reserve(text.size());
    size_t at = 0;
    while (at < text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos)
            end = text.size();
        std::string_view line(text.data() + at, end - at);
        size_t indent = line.find_first_not_of(" \t");
        if (indent != std::string_view::npos &&
            line.substr(indent, kDirective.size()) == kDirective &&
            indent + kDirective.size() < line.size() &&
            (line[indent + kDirective.size()] == ' ' || line[indent + kDirective.size()] == '\t')) {
            std::string_view pattern = line.substr(indent + kDirective.size());
            size_t b = pattern.find_first_not_of(" \t\"");
            size_t e = pattern.find_last_not_of(" \t\r\"");
            std::string p = b == std::string_view::npos ? std::string()
                                                        : std::string(pattern.substr(b, e - b + 1));
            glob_t g{};
            bool found = !p.empty() && glob(p.c_str(), 0, nullptr, &g) == 0 && g.gl_pathc > 0;
            globfree(&g);
            out += found ? "Include " + p : "# (absent) IncludeOptional " + p;
        } else {
            out += line;
        }
        if (end < text.size())
            out += '\n';
        at = end + 1;
    }
    return out;
}

namespace {

bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return false;
    std::ostringstream text;
    text << in.rdbuf();
    out = text.str();
    return !in.bad();
}

// The engines of the generations being built or serving, by options: a generation's filters
// hold theirs, so an entry lives while its generation does. The config loader may run on a
// reload while old generations serve, never on two threads at once; the lock is cheap insurance.
struct EngineCache {
    std::mutex lock;
    std::map<std::pair<const void*, std::string>, std::weak_ptr<const Engine>> engines;
};

EngineCache& cache() {
    static EngineCache c;
    return c;
}

} // namespace

std::shared_ptr<const Engine> load_engine(const WafOptions& options, const void* generation,
                                          Diagnostics& diag, const SourcePos& at) {
    EngineCache& c = cache();
    std::lock_guard<std::mutex> guard(c.lock);
    for (auto it = c.engines.begin(); it != c.engines.end();)
        it = it->second.expired() ? c.engines.erase(it) : std::next(it);
    auto key = std::make_pair(generation, options.key());
    if (auto it = c.engines.find(key); it != c.engines.end())
        if (auto e = it->second.lock())
            return e;

    auto engine = std::make_shared<Engine>(options);
    modsecurity::RulesSet& rules = *engine->rules_;
    // What the `waf` table decides overrides the rule files. ModSecurity keeps the first value
    // a rule set gives the engine and body settings, so these load before the files; the audit
    // log's settings it takes from the last one that names them, so they load after.
    std::string ours;
    ours += options.block ? "SecRuleEngine On\n" : "SecRuleEngine DetectionOnly\n";
    ours += "SecRequestBodyAccess On\n";
    ours += "SecRequestBodyLimit " + std::to_string(options.body_limit) + "\n";
    ours += "SecRequestBodyLimitAction ProcessPartial\n";
    if (rules.load(ours.c_str(), "waf options") < 0) {
        std::string error = rules.getParserError();
        while (!error.empty() && error.back() == '\n')
            error.pop_back();
        diag.error(at, "waf: " + error);
        return nullptr;
    }
    // Every unreadable file is reported; none is loaded then.
    std::vector<std::string> texts(options.rules.size());
    bool ok = true;
    for (size_t i = 0; i < options.rules.size(); ++i)
        if (!read_file(options.rules[i], texts[i])) {
            diag.error(at, "waf: cannot read rule file \"" + options.rules[i] + "\"");
            ok = false;
        }
    for (size_t i = 0; ok && i < options.rules.size(); ++i) {
        const std::string& file = options.rules[i];
        const std::string& text = texts[i];
        if (rules.load(rewrite_include_optional(text).c_str(), file) >= 0)
            continue;
        ok = false;
        std::string error = rules.getParserError();
        SourcePos pos;
        std::string message;
        if (parse_rules_error(error, pos, message)) {
            diag.error(pos, "waf: " + message);
            diag.error(at, "waf: rule file \"" + file + "\" did not load: " + pos.file + ":" +
                               std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": " +
                               message);
        } else {
            while (!error.empty() && error.back() == '\n')
                error.pop_back();
            diag.error(at, "waf: rule file \"" + file + "\" did not load: " + error);
        }
        break; // later files may depend on what failed (the CRS needs its setup file)
    }
    if (!ok)
        return nullptr;
    std::string audit;
    if (!options.audit_log.empty()) {
        audit += "SecAuditEngine RelevantOnly\n";
        audit += "SecAuditLogRelevantStatus \"^(?:5|4(?!04))\"\n";
        audit += "SecAuditLogParts ABFHZ\n";
        audit += "SecAuditLogType Serial\n";
        audit += "SecAuditLogFormat JSON\n";
        audit += "SecAuditLog \"" + options.audit_log + "\"\n";
    }
    if (!audit.empty() && rules.load(audit.c_str(), "waf audit_log") < 0) {
        std::string error = rules.getParserError();
        while (!error.empty() && error.back() == '\n')
            error.pop_back();
        diag.error(at, "waf: audit_log: " + error);
        return nullptr;
    }
    c.engines[key] = engine;
    return engine;
}

} // namespace wraith::waf
