// Regular expressions for config values (route paths, host names, match conditions, rewrites):
// PCRE2, the dialect NGINX configurations are written in, JIT-compiled once at config time.
// Matching allocates nothing: a worker is single-threaded, so one match-data block per thread
// serves every search.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace wraith {

// Up to $9, as NGINX: the whole match is group 0.
constexpr int kMaxCaptures = 10;

// The groups of one successful search, as views into the subject.
struct Captures {
    std::string_view group[kMaxCaptures];
    int count = 0; // groups set, the whole match included
};

class Regex {
public:
    enum Flags : unsigned { none = 0, caseless = 1 };

    // Compiles `pattern`; nullptr with the message in *error ("missing ) at offset 3").
    static std::shared_ptr<const Regex> compile(std::string_view pattern, unsigned flags,
                                                std::string* error);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Whether `subject` contains a match; with `caps`, its groups.
    bool search(std::string_view subject, Captures* caps = nullptr) const;
    // Capturing groups in the pattern (not counting the whole match).
    int groups() const { return groups_; }
    const std::string& pattern() const { return pattern_; }
    // A literal every match starts with when the pattern is anchored ("^/api/v1" -> "/api/v1"):
    // subjects that do not start with it are rejected with a compare, without the engine.
    const std::string& literal_prefix() const { return prefix_; }

private:
    Regex() = default;
    void* code_ = nullptr; // pcre2_code*
    int groups_ = 0;
    bool caseless_ = false;
    std::string pattern_;
    std::string prefix_;
};

} // namespace wraith
