#include "modules/compress/accept_encoding.h"
#include "common/strings.h"

#include <array>

namespace wraith {

namespace {

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

bool is_token(std::string_view s) {
    if (s.empty())
        return false;
    for (char c : s)
        if (!is_tchar(c))
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_ows(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back()))
        s.remove_suffix(1);
    return s;
}

// Splits `s` at the first `sep` that is not inside a quoted string. Returns the part before
// it and leaves the rest (after the separator) in `s`; consumes everything if there is none.
std::string_view split_unquoted(std::string_view& s, char sep) {
    bool quoted = false;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (quoted) {
            if (c == '\\')
                ++i; // quoted-pair
            else if (c == '"')
                quoted = false;
        } else if (c == '"') {
            quoted = true;
        } else if (c == sep) {
            std::string_view head = s.substr(0, i);
            s.remove_prefix(i + 1);
            return head;
        }
    }
    std::string_view head = s;
    s = {};
    return head;
}

// One list element "coding *( OWS ; OWS param )": its coding and q in thousandths, or false if
// the element is empty or malformed.
bool parse_element(std::string_view element, std::string_view& coding, int& q) {
    std::string_view rest = element;
    coding = trim(split_unquoted(rest, ';'));
    if (!is_token(coding))
        return false;
    q = 1000;
    while (!rest.empty()) {
        std::string_view param = trim(split_unquoted(rest, ';'));
        if (param.empty())
            continue;
        size_t eq = param.find('=');
        if (eq == std::string_view::npos)
            return false;
        std::string_view name = trim(param.substr(0, eq));
        std::string_view value = trim(param.substr(eq + 1));
        if (!is_token(name))
            return false;
        if (iequals(name, "q")) {
            q = parse_qvalue(value);
            if (q < 0)
                return false;
        }
        // Other parameters carry nothing for Accept-Encoding; tolerate them.
    }
    return true;
}

bool same_coding(std::string_view client, std::string_view server) {
    if (iequals(client, server))
        return true;
    return iequals(server, "gzip") && iequals(client, "x-gzip");
}

} // namespace

int parse_qvalue(std::string_view s) {
    if (s.empty() || s.size() > 5)
        return -1;
    if (s[0] != '0' && s[0] != '1')
        return -1;
    int whole = s[0] - '0';
    if (s.size() == 1)
        return whole * 1000;
    if (s[1] != '.')
        return -1;
    int frac = 0;
    int digits = 0;
    for (size_t i = 2; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        frac = frac * 10 + (s[i] - '0');
        ++digits;
    }
    for (; digits < 3; ++digits)
        frac *= 10;
    if (whole == 1 && frac != 0)
        return -1; // "1.5" is not a qvalue
    return whole * 1000 + frac;
}

std::string_view choose_encoding(std::string_view accept_encoding,
                                 std::span<const std::string> server_order) {
    // Explicit q per server coding (-1: not named); codings past the array are never chosen,
    // which no real server list reaches.
    constexpr size_t max_codings = 16;
    std::array<int, max_codings> named;
    named.fill(-1);
    const size_t n = server_order.size() < max_codings ? server_order.size() : max_codings;
    int star = -1;
    int identity = -1;

    std::string_view rest = accept_encoding;
    while (!rest.empty()) {
        std::string_view coding;
        int q = 0;
        if (!parse_element(split_unquoted(rest, ','), coding, q))
            continue;
        if (iequals(coding, "identity")) {
            identity = identity < 0 ? q : (q < identity ? q : identity);
            continue;
        }
        if (coding == "*") {
            star = star < 0 ? q : (q < star ? q : star);
            continue;
        }
        for (size_t i = 0; i < n; ++i) {
            if (same_coding(coding, server_order[i]))
                named[i] = named[i] < 0 ? q : (q < named[i] ? q : named[i]);
        }
    }

    // A coding the client likes less than identity loses to it. Identity's weight is its own
    // entry, else "*"'s; unnamed, it does not compete (clients that list "gzip;q=0.8" alone
    // still want gzip).
    if (identity < 0)
        identity = star;
    std::string_view best;
    int best_q = 0;
    for (size_t i = 0; i < n; ++i) {
        int q = named[i] >= 0 ? named[i] : star;
        if (q > best_q && q >= identity) {
            best_q = q;
            best = server_order[i];
        }
    }
    return best;
}

} // namespace wraith
