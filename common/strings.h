// Small ASCII helpers for protocol text (field names, tokens): no locale, no allocation.
#pragma once

#include <string_view>

namespace wraith {

constexpr char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

// a == b ignoring ASCII case (RFC 9110 field names, tokens, schemes).
constexpr bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

} // namespace wraith
