// JSON text the server writes (access logs, `wraith status --json`, the dashboard's data).
#pragma once

#include <string>
#include <string_view>

namespace wraith {

// `s` as a JSON string: quotes, backslashes and control characters escaped; other bytes
// (UTF-8, or not) pass through.
inline void append_json_string(std::string& out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
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
    out += '"';
}

} // namespace wraith
