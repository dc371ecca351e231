#include "common/http_date.h"

#include <cstdint>

namespace wraith {

namespace {

constexpr const char* kDays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kLongDays[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                      "Thursday", "Friday", "Saturday"};
constexpr const char* kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
    static constexpr int kLen[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : kLen[m - 1];
}

void put2(char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

// A cursor over the input; every reader returns false on mismatch.
struct Scanner {
    std::string_view s;
    size_t i = 0;

    bool literal(std::string_view lit) {
        if (s.substr(i, lit.size()) != lit)
            return false;
        i += lit.size();
        return true;
    }
    // Exactly `width` digits.
    bool digits(int width, int& v) {
        if (i + width > s.size())
            return false;
        v = 0;
        for (int k = 0; k < width; ++k) {
            char c = s[i + k];
            if (c < '0' || c > '9')
                return false;
            v = v * 10 + (c - '0');
        }
        i += width;
        return true;
    }
    // One of `names` (case-sensitive, as the grammar is); sets the index.
    template <size_t N> bool name(const char* const (&names)[N], int& idx) {
        for (size_t k = 0; k < N; ++k) {
            if (literal(names[k])) {
                idx = static_cast<int>(k);
                return true;
            }
        }
        return false;
    }
    // "HH:MM:SS"
    bool time_of_day(int& h, int& m, int& sec) {
        return digits(2, h) && literal(":") && digits(2, m) && literal(":") && digits(2, sec);
    }
    bool done() const { return i == s.size(); }
};

std::optional<time_t> make_time(int year, int month, int day, int h, int m, int sec) {
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return std::nullopt;
    // RFC 9110 §5.6.7 allows a leap second (60).
    if (h > 23 || m > 59 || sec > 60)
        return std::nullopt;
    const int64_t days =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    return static_cast<time_t>(days * 86400 + h * 3600 + m * 60 + sec);
}

// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
std::optional<time_t> parse_imf(std::string_view s) {
    Scanner sc{s};
    int wd, day, mon, year, h, m, sec;
    if (!sc.name(kDays, wd) || !sc.literal(", ") || !sc.digits(2, day) || !sc.literal(" ") ||
        !sc.name(kMonths, mon) || !sc.literal(" ") || !sc.digits(4, year) || !sc.literal(" ") ||
        !sc.time_of_day(h, m, sec) || !sc.literal(" GMT") || !sc.done())
        return std::nullopt;
    return make_time(year, mon + 1, day, h, m, sec);
}

// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
std::optional<time_t> parse_rfc850(std::string_view s) {
    Scanner sc{s};
    int wd, day, mon, yy, h, m, sec;
    if (!sc.name(kLongDays, wd) || !sc.literal(", ") || !sc.digits(2, day) || !sc.literal("-") ||
        !sc.name(kMonths, mon) || !sc.literal("-") || !sc.digits(2, yy) || !sc.literal(" ") ||
        !sc.time_of_day(h, m, sec) || !sc.literal(" GMT") || !sc.done())
        return std::nullopt;
    // RFC 9110 §5.6.7: a two-digit year that appears more than 50 years in the future is in
    // the past century.
    tm now{};
    time_t t = time(nullptr);
    gmtime_r(&t, &now);
    const int this_year = now.tm_year + 1900;
    int year = this_year / 100 * 100 + yy;
    if (year > this_year + 50)
        year -= 100;
    else if (year < this_year - 49)
        year += 100;
    return make_time(year, mon + 1, day, h, m, sec);
}

// asctime: "Sun Nov  6 08:49:37 1994" (day space-padded to two characters)
std::optional<time_t> parse_asctime(std::string_view s) {
    Scanner sc{s};
    int wd, day, mon, year, h, m, sec;
    if (!sc.name(kDays, wd) || !sc.literal(" ") || !sc.name(kMonths, mon) || !sc.literal(" "))
        return std::nullopt;
    if (sc.literal(" ")) {
        if (!sc.digits(1, day))
            return std::nullopt;
    } else if (!sc.digits(2, day)) {
        return std::nullopt;
    }
    if (!sc.literal(" ") || !sc.time_of_day(h, m, sec) || !sc.literal(" ") || !sc.digits(4, year) ||
        !sc.done())
        return std::nullopt;
    return make_time(year, mon + 1, day, h, m, sec);
}

} // namespace

size_t format_http_date(time_t t, char out[http_date_size]) {
    tm g{};
    if (!gmtime_r(&t, &g))
        return 0;
    const int year = g.tm_year + 1900;
    if (year < 0 || year > 9999) {
        out[0] = '\0';
        return 0;
    }
    char* p = out;
    for (int k = 0; k < 3; ++k)
        *p++ = kDays[g.tm_wday][k];
    *p++ = ',';
    *p++ = ' ';
    put2(p, g.tm_mday);
    p += 2;
    *p++ = ' ';
    for (int k = 0; k < 3; ++k)
        *p++ = kMonths[g.tm_mon][k];
    *p++ = ' ';
    put2(p, year / 100);
    put2(p + 2, year % 100);
    p += 4;
    *p++ = ' ';
    put2(p, g.tm_hour);
    put2(p + 3, g.tm_min);
    put2(p + 6, g.tm_sec);
    p[2] = p[5] = ':';
    p += 8;
    *p++ = ' ';
    *p++ = 'G';
    *p++ = 'M';
    *p++ = 'T';
    *p = '\0';
    return static_cast<size_t>(p - out);
}

std::optional<time_t> parse_http_date(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    if (s.size() < 4)
        return std::nullopt;
    // The character after the day name tells the forms apart.
    if (s[3] == ',')
        return parse_imf(s);
    if (s[3] == ' ')
        return parse_asctime(s);
    return parse_rfc850(s);
}

} // namespace wraith
