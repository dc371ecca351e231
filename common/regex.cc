#include "common/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace wraith {

namespace {

// One match-data block per thread, sized for every group a pattern may report. Workers are
// single-threaded; the master and the CLI match only while loading or explaining.
pcre2_match_data* match_data() {
    struct Holder {
        pcre2_match_data* data = pcre2_match_data_create(kMaxCaptures * 3, nullptr);
        ~Holder() { pcre2_match_data_free(data); }
    };
    thread_local Holder holder;
    return holder.data;
}

// The literal a "^..." pattern starts with, up to its first metacharacter. Conservative: a
// quantifier after the last literal character makes that character optional, so it is dropped.
std::string anchored_prefix(std::string_view p) {
    std::string out;
    // A top-level alternative ("^/a|/b") is not anchored as a whole: no prefix then.
    if (p.empty() || p.front() != '^' || p.find('|') != std::string_view::npos)
        return out;
    for (size_t i = 1; i < p.size(); ++i) {
        char c = p[i];
        if (c == '\\') {
            // An escaped punctuation character is that character; \d, \w and friends stop.
            if (i + 1 < p.size() &&
                std::string_view("./-_~:@!$&'()*+,;=?[]{}|^#%").find(p[i + 1]) !=
                    std::string_view::npos) {
                out.push_back(p[++i]);
                continue;
            }
            break;
        }
        if (std::string_view(".[]()|*+?{}^$").find(c) != std::string_view::npos) {
            if ((c == '*' || c == '?' || c == '{') && !out.empty())
                out.pop_back();
            break;
        }
        out.push_back(c);
    }
    return out;
}

} // namespace

std::shared_ptr<const Regex> Regex::compile(std::string_view pattern, unsigned flags,
                                            std::string* error) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    if (flags & caseless)
        options |= PCRE2_CASELESS;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &code, &offset, nullptr);
    if (!re) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(code, buf, sizeof buf);
        *error = std::string(reinterpret_cast<char*>(buf)) + " at offset " +
                 std::to_string(static_cast<size_t>(offset));
        return nullptr;
    }
    // JIT is an optimisation: a pattern it cannot take still matches through the interpreter.
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    uint32_t groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    std::shared_ptr<Regex> r(new Regex);
    r->code_ = re;
    r->groups_ = static_cast<int>(groups);
    r->caseless_ = flags & caseless;
    r->pattern_ = std::string(pattern);
    if (!r->caseless_)
        r->prefix_ = anchored_prefix(pattern);
    return r;
}

Regex::~Regex() {
    pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool Regex::search(std::string_view subject, Captures* caps) const {
    if (!prefix_.empty() && !subject.starts_with(prefix_))
        return false;
    pcre2_match_data* md = match_data();
    int rc = pcre2_match(static_cast<const pcre2_code*>(code_),
                         reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0, md,
                         nullptr);
    if (rc < 0)
        return false; // no match, or the engine's limits (never an error the client sees)
    if (caps) {
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        int n = rc == 0 ? kMaxCaptures : rc; // 0: the ovector was too small for every group
        caps->count = n > kMaxCaptures ? kMaxCaptures : n;
        for (int i = 0; i < caps->count; ++i) {
            if (ov[2 * i] == PCRE2_UNSET)
                caps->group[i] = {};
            else
                caps->group[i] = subject.substr(ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        }
    }
    return true;
}

} // namespace wraith
