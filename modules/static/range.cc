#include "modules/static/range.h"
#include "common/strings.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>

namespace wraith::static_files {

namespace {

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

// Reads 1*DIGIT at s[i]; false on none or overflow.
bool read_number(std::string_view s, size_t& i, uint64_t& v) {
    const char* begin = s.data() + i;
    const char* end = s.data() + s.size();
    if (begin == end || *begin < '0' || *begin > '9')
        return false;
    auto [p, ec] = std::from_chars(begin, end, v);
    if (ec != std::errc())
        return false;
    i += static_cast<size_t>(p - begin);
    return true;
}

// A random-ish boundary: not guessable from the content, so a file cannot forge a delimiter.
void random_boundary(char out[24]) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    uint64_t a = rng(), b = rng();
    for (int i = 0; i < 16; ++i)
        out[i] = kHex[(a >> (i * 4)) & 15];
    for (int i = 16; i < 24; ++i)
        out[i] = kHex[(b >> ((i - 16) * 4)) & 15];
}

} // namespace

RangeOutcome parse_range(std::string_view field, uint64_t size, ByteRange* ranges, size_t& count) {
    count = 0;
    size_t eq = field.find('=');
    if (eq == std::string_view::npos)
        return RangeOutcome::ignore;
    std::string_view unit = field.substr(0, eq);
    while (!unit.empty() && is_ows(unit.back()))
        unit.remove_suffix(1);
    // RFC 9110 §14.2: a server ignores a Range with a unit it does not support.
    if (!iequals(unit, "bytes"))
        return RangeOutcome::ignore;
    std::string_view s = field.substr(eq + 1);

    ByteRange specs[max_range_specs];
    size_t nspecs = 0;
    bool any_spec = false;
    size_t i = 0;
    while (true) {
        // #rule: empty list elements and OWS around commas are allowed.
        while (i < s.size() && (is_ows(s[i]) || s[i] == ','))
            ++i;
        if (i >= s.size())
            break;
        if (nspecs == max_range_specs)
            return RangeOutcome::ignore;
        uint64_t first = 0, last = 0;
        bool satisfiable = false;
        if (s[i] == '-') {
            ++i;
            uint64_t suffix;
            if (!read_number(s, i, suffix))
                return RangeOutcome::ignore;
            // suffix-range: the last `suffix` bytes; zero selects nothing.
            if (suffix > 0 && size > 0) {
                first = suffix >= size ? 0 : size - suffix;
                last = size - 1;
                satisfiable = true;
            }
        } else {
            if (!read_number(s, i, first) || i >= s.size() || s[i] != '-')
                return RangeOutcome::ignore;
            ++i;
            last = UINT64_MAX;
            if (i < s.size() && s[i] >= '0' && s[i] <= '9') {
                if (!read_number(s, i, last))
                    return RangeOutcome::ignore;
                // §14.1.1: last < first makes the whole header invalid.
                if (last < first)
                    return RangeOutcome::ignore;
            }
            if (first < size) {
                last = std::min(last, size - 1);
                satisfiable = true;
            }
        }
        while (i < s.size() && is_ows(s[i]))
            ++i;
        if (i < s.size() && s[i] != ',')
            return RangeOutcome::ignore;
        any_spec = true;
        if (satisfiable)
            specs[nspecs++] = {first, last};
    }
    if (!any_spec)
        return RangeOutcome::ignore;
    // An empty representation has no bytes to select; answer it whole.
    if (size == 0)
        return RangeOutcome::ignore;
    if (nspecs == 0)
        return RangeOutcome::unsatisfiable;

    std::sort(specs, specs + nspecs,
              [](const ByteRange& a, const ByteRange& b) { return a.first < b.first; });
    for (size_t k = 0; k < nspecs; ++k) {
        if (count > 0 && specs[k].first <= ranges[count - 1].last + 1) {
            ranges[count - 1].last = std::max(ranges[count - 1].last, specs[k].last);
            continue;
        }
        if (count == max_range_parts)
            return RangeOutcome::ignore;
        ranges[count++] = specs[k];
    }
    return RangeOutcome::satisfiable;
}

std::string_view content_range(const ByteRange& r, uint64_t size, Arena& arena) {
    char buf[80];
    int n = std::snprintf(
        buf, sizeof buf, "bytes %llu-%llu/%llu", static_cast<unsigned long long>(r.first),
        static_cast<unsigned long long>(r.last), static_cast<unsigned long long>(size));
    return arena.copy(std::string_view(buf, static_cast<size_t>(n)));
}

std::string_view unsatisfied_range(uint64_t size, Arena& arena) {
    char buf[40];
    int n = std::snprintf(buf, sizeof buf, "bytes */%llu", static_cast<unsigned long long>(size));
    return arena.copy(std::string_view(buf, static_cast<size_t>(n)));
}

Multipart make_multipart(const ByteRange* ranges, size_t count, uint64_t size,
                         std::string_view type, Arena& arena) {
    Multipart m;
    char b[24];
    random_boundary(b);
    m.boundary = arena.copy(std::string_view(b, sizeof b));

    static constexpr std::string_view kCtPrefix = "multipart/byteranges; boundary=";
    char* ct = static_cast<char*>(arena.alloc(kCtPrefix.size() + m.boundary.size(), 1));
    std::memcpy(ct, kCtPrefix.data(), kCtPrefix.size());
    std::memcpy(ct + kCtPrefix.size(), m.boundary.data(), m.boundary.size());
    m.content_type = {ct, kCtPrefix.size() + m.boundary.size()};

    m.part_heads = static_cast<std::string_view*>(
        arena.alloc(sizeof(std::string_view) * count, alignof(std::string_view)));
    for (size_t k = 0; k < count; ++k) {
        // The CRLF before each delimiter belongs to it (RFC 2046 §5.1.1); the first part's is
        // harmless preamble-free framing that every client accepts.
        char buf[512];
        int n = std::snprintf(
            buf, sizeof buf,
            "%s--%.*s\r\ncontent-type: %.*s\r\ncontent-range: bytes "
            "%llu-%llu/%llu\r\n\r\n",
            k == 0 ? "" : "\r\n", static_cast<int>(m.boundary.size()), m.boundary.data(),
            static_cast<int>(std::min<size_t>(type.size(), 300)), type.data(),
            static_cast<unsigned long long>(ranges[k].first),
            static_cast<unsigned long long>(ranges[k].last), static_cast<unsigned long long>(size));
        std::string_view head(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
        new (&m.part_heads[k]) std::string_view(arena.copy(head));
        m.content_length += head.size() + ranges[k].length();
    }
    char buf[64];
    int n = std::snprintf(buf, sizeof buf, "\r\n--%.*s--\r\n", static_cast<int>(m.boundary.size()),
                          m.boundary.data());
    m.closing = arena.copy(std::string_view(buf, static_cast<size_t>(n)));
    m.content_length += m.closing.size();
    return m;
}

} // namespace wraith::static_files
