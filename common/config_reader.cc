// Typed, position-aware reading of TOML tables (see config_reader.h).
#include "common/config_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <unistd.h>

#include <toml++/toml.h>

namespace wraith {

std::string Diagnostic::text() const {
    std::string out;
    if (!pos.file.empty()) {
        out += pos.file;
        if (pos.line > 0)
            out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
        out += ": ";
    }
    out += message;
    return out;
}

void Diagnostics::error(const SourcePos& pos, std::string message) {
    list_.push_back({pos, std::move(message)});
}

SourcePos Diagnostics::pos(const toml::node* node) const {
    SourcePos p{file_, 0, 0};
    if (!node)
        return p;
    const toml::source_region& src = node->source();
    if (src.path && !src.path->empty())
        p.file = *src.path;
    p.line = static_cast<int>(src.begin.line);
    p.column = static_cast<int>(src.begin.column);
    return p;
}

void Diagnostics::error(const toml::node* node, std::string message) {
    error(pos(node), std::move(message));
}

void Diagnostics::sort_by_position() {
    std::stable_sort(list_.begin(), list_.end(), [this](const Diagnostic& a, const Diagnostic& b) {
        bool a_other = a.pos.file != file_;
        bool b_other = b.pos.file != file_;
        if (a_other || b_other)
            return !a_other && b_other; // this file first; other files keep their order
        if (a.pos.line != b.pos.line)
            return a.pos.line < b.pos.line;
        return a.pos.column < b.pos.column;
    });
}

namespace {

// Leading decimal digits of `s` as an unsigned number; nullopt when there are none or they
// overflow. `rest` receives what follows them.
std::optional<uint64_t> leading_number(std::string_view s, std::string_view& rest) {
    size_t i = 0;
    uint64_t value = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        uint64_t digit = static_cast<uint64_t>(s[i] - '0');
        if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10)
            return std::nullopt;
        value = value * 10 + digit;
        ++i;
    }
    if (i == 0)
        return std::nullopt;
    rest = s.substr(i);
    return value;
}

std::optional<uint64_t> checked_multiply(uint64_t value, uint64_t factor, uint64_t limit) {
    if (value > limit / factor)
        return std::nullopt;
    return value * factor;
}

constexpr uint64_t max_duration_ms = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

} // namespace

std::optional<Duration> parse_duration(std::string_view s) {
    std::string_view unit;
    std::optional<uint64_t> n = leading_number(s, unit);
    if (!n)
        return std::nullopt; // empty, negative, or not starting with a digit
    uint64_t factor = 0;
    if (unit == "ms")
        factor = 1;
    else if (unit == "s")
        factor = 1000;
    else if (unit == "m")
        factor = 60 * 1000;
    else if (unit == "h")
        factor = 60 * 60 * 1000;
    else if (unit == "d")
        factor = 24 * 60 * 60 * 1000;
    else
        return std::nullopt; // no unit, fraction ("1.5s"), spaces or an unknown unit
    std::optional<uint64_t> ms = checked_multiply(*n, factor, max_duration_ms);
    if (!ms)
        return std::nullopt;
    return Duration{static_cast<int64_t>(*ms)};
}

std::optional<uint64_t> parse_size(std::string_view s) {
    std::string_view unit;
    std::optional<uint64_t> n = leading_number(s, unit);
    if (!n)
        return std::nullopt;
    uint64_t factor = 1;
    if (unit.size() > 1)
        return std::nullopt;
    if (unit.size() == 1) {
        switch (unit[0]) {
        case 'k':
        case 'K':
            factor = uint64_t{1} << 10;
            break;
        case 'm':
        case 'M':
            factor = uint64_t{1} << 20;
            break;
        case 'g':
        case 'G':
            factor = uint64_t{1} << 30;
            break;
        default:
            return std::nullopt;
        }
    }
    return checked_multiply(*n, factor, std::numeric_limits<uint64_t>::max());
}

std::string describe_value(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::string:
        return "\"" + node.as_string()->get() + "\"";
    case toml::node_type::integer:
        return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: {
        std::ostringstream out;
        out << node.as_floating_point()->get();
        return out.str();
    }
    case toml::node_type::boolean:
        return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::table:
        return "a table";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
        return "a date/time";
    default:
        return "nothing";
    }
}

TableReader::TableReader(const toml::table& table, Diagnostics& diag, std::string where)
    : table_(table), diag_(diag), where_(std::move(where)) {
    if (where_.empty())
        heading_ = "the top level";
    else if (table_.is_inline())
        heading_ = where_;
    else
        heading_ = "[" + where_ + "]";
}

TableReader::~TableReader() {
    if (!finished_)
        finish();
}

void TableReader::mark(std::string_view key) {
    if (known_.insert(std::string(key)).second)
        known_order_.emplace_back(key);
}

std::string TableReader::name(std::string_view key) const {
    if (where_.empty())
        return std::string(key);
    return where_ + "." + std::string(key);
}

void TableReader::type_error(std::string_view key, const toml::node& n, std::string_view expected) {
    diag_.error(&n,
                name(key) + ": expected " + std::string(expected) + ", got " + describe_value(n));
}

bool TableReader::has(std::string_view key) const {
    return table_.contains(key);
}

const toml::node* TableReader::node(std::string_view key) {
    mark(key);
    return table_.get(key);
}

SourcePos TableReader::pos(std::string_view key) const {
    if (const toml::node* n = table_.get(key))
        return diag_.pos(n);
    return table_pos();
}

SourcePos TableReader::table_pos() const {
    return diag_.pos(&table_);
}

std::optional<std::string> TableReader::string(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    if (const auto* s = n->as_string())
        return s->get();
    type_error(key, *n, "a string");
    return std::nullopt;
}

std::string TableReader::string(std::string_view key, std::string_view fallback) {
    std::optional<std::string> v = string(key);
    return v ? *v : std::string(fallback);
}

std::optional<bool> TableReader::boolean(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    if (const auto* b = n->as_boolean())
        return b->get();
    type_error(key, *n, "true or false");
    return std::nullopt;
}

bool TableReader::boolean(std::string_view key, bool fallback) {
    std::optional<bool> v = boolean(key);
    return v ? *v : fallback;
}

std::optional<int64_t> TableReader::integer(std::string_view key, int64_t min, int64_t max) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    const auto* i = n->as_integer();
    if (!i || i->get() < min || i->get() > max) {
        type_error(key, *n,
                   "an integer between " + std::to_string(min) + " and " + std::to_string(max));
        return std::nullopt;
    }
    return i->get();
}

int64_t TableReader::integer(std::string_view key, int64_t fallback, int64_t min, int64_t max) {
    std::optional<int64_t> v = integer(key, min, max);
    return v ? *v : fallback;
}

std::optional<Duration> TableReader::duration(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    std::optional<Duration> d;
    if (const auto* s = n->as_string()) {
        d = parse_duration(s->get());
    } else if (const auto* i = n->as_integer()) {
        // A bare integer is seconds.
        if (i->get() >= 0) {
            std::optional<uint64_t> ms =
                checked_multiply(static_cast<uint64_t>(i->get()), 1000, max_duration_ms);
            if (ms)
                d = Duration{static_cast<int64_t>(*ms)};
        }
    }
    if (!d)
        type_error(key, *n, "a duration like \"250ms\", \"30s\", \"5m\"");
    return d;
}

Duration TableReader::duration(std::string_view key, Duration fallback) {
    std::optional<Duration> v = duration(key);
    return v ? *v : fallback;
}

std::optional<uint64_t> TableReader::size(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    std::optional<uint64_t> bytes;
    if (const auto* s = n->as_string()) {
        bytes = parse_size(s->get());
    } else if (const auto* i = n->as_integer()) {
        if (i->get() >= 0)
            bytes = static_cast<uint64_t>(i->get());
    }
    if (!bytes)
        type_error(key, *n, "a size like \"512\", \"64k\", \"10m\", \"1g\"");
    return bytes;
}

uint64_t TableReader::size(std::string_view key, uint64_t fallback) {
    std::optional<uint64_t> v = size(key);
    return v ? *v : fallback;
}

std::optional<std::vector<std::string>> TableReader::strings(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    if (const auto* s = n->as_string())
        return std::vector<std::string>{s->get()};
    const auto* arr = n->as_array();
    if (!arr) {
        type_error(key, *n, "an array of strings");
        return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (const toml::node& element : *arr) {
        if (const auto* s = element.as_string()) {
            out.push_back(s->get());
        } else {
            type_error(key, element, "an array of strings");
            ok = false;
        }
    }
    if (!ok)
        return std::nullopt;
    return out;
}

std::string TableReader::choice(std::string_view key, std::string_view fallback,
                                std::initializer_list<std::string_view> choices) {
    const toml::node* n = node(key);
    if (!n)
        return std::string(fallback);
    if (const auto* s = n->as_string()) {
        for (std::string_view c : choices)
            if (s->get() == c)
                return s->get();
    }
    std::string expected = "one of ";
    bool first = true;
    for (std::string_view c : choices) {
        if (!first)
            expected += ", ";
        expected += "\"" + std::string(c) + "\"";
        first = false;
    }
    type_error(key, *n, expected);
    return std::string(fallback);
}

const toml::table* TableReader::table(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return nullptr;
    if (const auto* t = n->as_table())
        return t;
    type_error(key, *n, "a table");
    return nullptr;
}

const toml::array* TableReader::array(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return nullptr;
    if (const auto* a = n->as_array())
        return a;
    type_error(key, *n, "an array");
    return nullptr;
}

void TableReader::error(std::string_view key, std::string message) {
    mark(key);
    std::string prefix = name(key) + ":";
    if (message.compare(0, prefix.size(), prefix) != 0)
        message = prefix + " " + message;
    diag_.error(pos(key), std::move(message));
}

void TableReader::finish() {
    finished_ = true;
    for (const auto& [key, value] : table_) {
        if (known_.count(key.str()))
            continue;
        std::string message = "unknown key \"" + std::string(key.str()) + "\" in " + heading_;
        if (known_order_.empty()) {
            message += " (it takes no keys)";
        } else {
            message += " (expected one of: ";
            for (size_t i = 0; i < known_order_.size(); ++i)
                message += (i ? ", " : "") + known_order_[i];
            message += ")";
        }
        SourcePos p{diag_.file(), static_cast<int>(key.source().begin.line),
                    static_cast<int>(key.source().begin.column)};
        if (key.source().path && !key.source().path->empty())
            p.file = *key.source().path;
        if (p.line == 0)
            p = diag_.pos(&value);
        diag_.error(p, std::move(message));
    }
}

void Diagnostics::place_unplaced(size_t from, const SourcePos& pos) {
    for (size_t i = from; i < list_.size(); ++i)
        if (list_[i].pos.line == 0)
            list_[i].pos = pos;
}

std::string in_quotes(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::string pos_text(const SourcePos& p) {
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

void read_positive(TableReader& r, std::string_view key, Duration& out) {
    if (std::optional<Duration> d = r.duration(key)) {
        if (d->count() <= 0)
            r.error(key, "must be longer than 0");
        else
            out = *d;
    }
}

std::string resolve_path(const std::string& base_dir, const std::string& p) {
    if (p.empty() || p.front() == '/' || base_dir.empty())
        return p;
    return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

std::string readable_file(TableReader& r, std::string_view key, const std::string& value,
                          const std::string& base_dir) {
    std::string path = resolve_path(base_dir, value);
    if (::access(path.c_str(), R_OK) != 0)
        r.error(key, "cannot read " + in_quotes(path) + ": " + std::strerror(errno));
    return path;
}

} // namespace wraith
