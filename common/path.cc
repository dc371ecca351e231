#include "common/path.h"

#include "common/strings.h"

namespace wraith {

namespace {

// Already canonical, as nearly every request path is: absolute, nothing to decode or reject,
// no empty, "." or ".." segment (any segment starting with '.' takes the full path), and no
// trailing slash to keep or drop differently.
bool canonical(std::string_view p) {
    if (p.empty() || p[0] != '/')
        return false;
    for (size_t i = 0; i < p.size(); ++i) {
        char c = p[i];
        if (c == '%' || c == '\\' || c == '\0')
            return false;
        if (c == '/' && i + 1 < p.size() && (p[i + 1] == '/' || p[i + 1] == '.'))
            return false;
    }
    return true;
}

} // namespace

bool normalize_path(std::string_view raw_path, Arena& arena, std::string_view& out) {
    if (canonical(raw_path)) {
        out = arena.copy(raw_path);
        return true;
    }
    // Decoding never lengthens the path; +1 for the leading '/' a relative input gets.
    const size_t cap = raw_path.size() + 1;
    char* decoded = static_cast<char*>(arena.alloc(cap, 1));
    size_t n = 0;
    for (size_t i = 0; i < raw_path.size(); ++i) {
        char c = raw_path[i];
        if (c == '%') {
            if (i + 2 >= raw_path.size())
                return false;
            int hi = hex_digit_value(raw_path[i + 1]);
            int lo = hex_digit_value(raw_path[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = static_cast<char>(hi << 4 | lo);
            i += 2;
            // An encoded slash would let "a%2F..%2F" mean something else after decoding, and
            // files never contain '/' in a name anyway.
            if (c == '/')
                return false;
        }
        if (c == '\0' || c == '\\')
            return false;
        decoded[n++] = c;
    }

    // Segment resolution writes into a second buffer: output length <= decoded length + 1.
    char* res = static_cast<char*>(arena.alloc(n + 2, 1));
    size_t len = 0;
    res[len++] = '/';
    bool trailing_slash = false; // the path ends in a directory reference
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && decoded[j] != '/')
            ++j;
        std::string_view seg(decoded + i, j - i);
        const bool last = j >= n;
        if (seg.empty()) {
            trailing_slash = true; // "//" collapses; a final '/' is kept
        } else if (seg == ".") {
            trailing_slash = true;
        } else if (seg == "..") {
            if (len == 1)
                return false; // would climb above "/"
            // res ends with '/': drop the last segment and its slash.
            --len;
            while (len > 0 && res[len - 1] != '/')
                --len;
            trailing_slash = true;
        } else {
            for (char c : seg)
                res[len++] = c;
            res[len++] = '/';
            trailing_slash = !last;
        }
        i = j + 1;
    }
    if (n > 0 && decoded[n - 1] == '/')
        trailing_slash = true;
    if (!trailing_slash && len > 1)
        --len; // the last segment named a file, not a directory
    out = std::string_view(res, len);
    return true;
}

} // namespace wraith
