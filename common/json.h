// JSON text the server writes (access logs, `wraith status --json`, the dashboard's data).
#pragma once

#include <string>
#include <string_view>

namespace wraith {

// `s` escaped for the inside of a JSON string: quotes, backslashes and control characters;
// other bytes (UTF-8, or not) pass through.
inline void append_json_escaped(std::string& out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += static_cast<char>(c); // UTF-8 passes through; invalid bytes too
            }
        }
    }
}

// `s` as a JSON string, in its quotes.
inline void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    append_json_escaped(out, s);
    out += '"';
}

} // namespace wraith
