// Typed, position-aware access to TOML tables for the config loader and for modules that parse
// their own options. Every problem becomes a Diagnostic "FILE:LINE:COL: message"; reading
// never throws, so one pass reports every error in a file.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace toml {
inline namespace v3 {
class node;
class table;
class array;
} // namespace v3
} // namespace toml

namespace wraith {

using Duration = std::chrono::milliseconds;

struct SourcePos {
    std::string file;
    int line = 0;
    int column = 0;
};

struct Diagnostic {
    SourcePos pos;
    std::string message;
    std::string text() const; // "FILE:LINE:COL: message" ("FILE: message" when line is 0)
};

// Collects every problem found while loading one config.
class Diagnostics {
public:
    void error(const SourcePos& pos, std::string message);
    void error(const toml::node* node, std::string message); // uses node's source position
    // `node`'s source position; this collector's file (line 0) when node is null or has none.
    SourcePos pos(const toml::node* node) const;
    bool ok() const { return list_.empty(); }
    size_t count() const { return list_.size(); }
    // Orders the problems of file() by line and column (others keep their order, after them),
    // so a user reads them top to bottom whatever order the loader checked things in.
    void sort_by_position();
    // Problems from index `from` on that have no line (about a table the file does not have)
    // point at `pos` instead.
    void place_unplaced(size_t from, const SourcePos& pos);
    const std::vector<Diagnostic>& list() const { return list_; }
    const std::string& file() const { return file_; }
    void set_file(std::string f) { file_ = std::move(f); }

private:
    std::vector<Diagnostic> list_;
    std::string file_;
};

// "250ms", "30s", "5m", "1h", "2d" -> milliseconds. Nullopt if malformed.
std::optional<Duration> parse_duration(std::string_view s);
// "512", "64k", "10m", "1g" (binary multiples) -> bytes. Nullopt if malformed or overflowing.
std::optional<uint64_t> parse_size(std::string_view s);

// How a value reads in a message: strings quoted ("10 parsecs"), numbers and booleans as
// written, "a table" / "an array" / "a date" for the rest.
std::string describe_value(const toml::node& node);

// "\"text\"": how messages quote a value.
std::string in_quotes(std::string_view s);
// "FILE:LINE:COL", for messages that point at another place ("... already listed at ...").
std::string pos_text(const SourcePos& p);

// Reads one TOML table. Every getter marks its key as known; finish() reports the others as
// "unknown key". `where` names the table in messages ("server", "site.route"): a problem with
// key K reads "WHERE.K: ..." (just "K: ..." when `where` is empty).
class TableReader {
public:
    TableReader(const toml::table& table, Diagnostics& diag, std::string where);
    ~TableReader(); // calls finish() if the caller did not

    bool has(std::string_view key) const;
    const toml::node* node(std::string_view key); // marks known
    SourcePos pos(std::string_view key) const;    // of the value, or of the table if absent
    SourcePos table_pos() const;

    std::optional<std::string> string(std::string_view key);
    std::string string(std::string_view key, std::string_view fallback);
    std::optional<bool> boolean(std::string_view key);
    bool boolean(std::string_view key, bool fallback);
    // Integer in [min, max].
    std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max);
    int64_t integer(std::string_view key, int64_t fallback, int64_t min, int64_t max);
    // Duration string; a bare integer is seconds.
    Duration duration(std::string_view key, Duration fallback);
    std::optional<Duration> duration(std::string_view key);
    // Size string; a bare integer is bytes.
    uint64_t size(std::string_view key, uint64_t fallback);
    std::optional<uint64_t> size(std::string_view key);
    // Array of strings; a single string is accepted as a one-element list.
    std::optional<std::vector<std::string>> strings(std::string_view key);
    // One of `choices`; reports the allowed values otherwise.
    std::string choice(std::string_view key, std::string_view fallback,
                       std::initializer_list<std::string_view> choices);
    const toml::table* table(std::string_view key); // reports a type error if not a table
    const toml::array* array(std::string_view key); // reports a type error if not an array

    // At the key's value; prefixes "WHERE.KEY: " unless `message` already starts with it.
    void error(std::string_view key, std::string message);
    // How finish() names the table: defaults to "[WHERE]", or "WHERE" for an inline table.
    // The loader sets "[[listen]]", "[[site]]", "[[site.route]]" for arrays of tables.
    void set_heading(std::string heading) { heading_ = std::move(heading); }
    // Reports every key no getter asked for: `unknown key "K" in HEADING (expected one of: ...)`
    // at the key, listing the asked-for keys in the order they were asked.
    void finish();
    Diagnostics& diag() { return diag_; }
    const toml::table& raw() const { return table_; }

private:
    const toml::table& table_;
    Diagnostics& diag_;
    std::string where_;
    std::string heading_;
    std::set<std::string, std::less<>> known_;
    std::vector<std::string> known_order_; // known_ in the order the getters asked
    bool finished_ = false;

    void mark(std::string_view key);
    std::string name(std::string_view key) const; // "WHERE.KEY"
    void type_error(std::string_view key, const toml::node& n, std::string_view expected);
};

// A duration that must be longer than 0: read into `out`, left as it is when absent or wrong.
void read_positive(TableReader& r, std::string_view key, Duration& out);

// A file the server reads at start (certificates, keys, CA bundles), resolved against
// `base_dir`: it must be readable now, so `wraith check` refuses a config that would fail to
// start. Returns the resolved path (reported when unreadable).
std::string readable_file(TableReader& r, std::string_view key, const std::string& value,
                          const std::string& base_dir);

// Resolves `p` against `base_dir` unless it is absolute.
std::string resolve_path(const std::string& base_dir, const std::string& p);

} // namespace wraith
