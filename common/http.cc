#include "common/http.h"

#include <chrono>
#include <sys/random.h>
#include <unistd.h>

namespace wraith {

bool is_token(std::string_view s) {
    if (s.empty())
        return false;
    for (char c : s) {
        bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!tchar)
            return false;
    }
    return true;
}

bool is_field_value(std::string_view s) {
    for (char c : s)
        if (c == '\r' || c == '\n' || c == '\0')
            return false;
    return true;
}

bool is_clean_field_value(std::string_view s) {
    for (unsigned char c : s)
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    return true;
}

Method method_from(std::string_view m) {
    switch (m.size()) {
    case 3:
        if (m == "GET")
            return Method::get;
        if (m == "PUT")
            return Method::put;
        break;
    case 4:
        if (m == "HEAD")
            return Method::head;
        if (m == "POST")
            return Method::post;
        break;
    case 5:
        if (m == "TRACE")
            return Method::trace;
        if (m == "PATCH")
            return Method::patch;
        break;
    case 6:
        if (m == "DELETE")
            return Method::del;
        break;
    case 7:
        if (m == "OPTIONS")
            return Method::options;
        if (m == "CONNECT")
            return Method::connect;
        break;
    }
    return Method::other;
}

const char* status_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 200   ? "Informational"
               : status < 300 ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

namespace {

// xoshiro256** per thread of each process, seeded lazily from getrandom on first use, which
// happens in a worker after fork. No syscall per request.
struct Prng {
    uint64_t s[4]{};
    pid_t pid = 0;

    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    void seed() {
        pid = getpid();
        size_t got = 0;
        auto* p = reinterpret_cast<unsigned char*>(s);
        while (got < sizeof s) {
            ssize_t n = getrandom(p + got, sizeof s - got, 0);
            if (n <= 0)
                break;
            got += static_cast<size_t>(n);
        }
        if (got < sizeof s) { // should not happen; mix time and pid rather than fail
            uint64_t t =
                static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
            s[0] ^= t;
            s[1] ^= static_cast<uint64_t>(pid) * 0x9e3779b97f4a7c15ull;
            s[2] ^= ~t;
            s[3] ^= 0x2545f4914f6cdd1dull;
        }
        if (!(s[0] | s[1] | s[2] | s[3]))
            s[0] = 1;
    }
    uint64_t next() {
        const uint64_t result = rotl(s[1] * 5, 7) * 9;
        const uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
};

thread_local Prng prng;

} // namespace

void generate_request_id(char out[32]) {
    if (prng.pid == 0)
        prng.seed();
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; ++half) {
        uint64_t v = prng.next();
        for (int i = 0; i < 16; ++i) {
            out[half * 16 + i] = hex[v & 15];
            v >>= 4;
        }
    }
}

std::string_view request_id_of(const Request& req) {
    if (req.request_id.empty() && req.arena) {
        char* id = static_cast<char*>(req.arena->alloc(32, 1));
        generate_request_id(id);
        req.request_id = {id, 32};
    }
    return req.request_id;
}

std::optional<std::string_view> find_cookie(std::string_view field, std::string_view name) {
    while (!field.empty()) {
        size_t semi = field.find(';');
        std::string_view crumb = field.substr(0, semi);
        while (!crumb.empty() && (crumb.front() == ' ' || crumb.front() == '\t'))
            crumb.remove_prefix(1);
        size_t eq = crumb.find('=');
        if (eq != std::string_view::npos && crumb.substr(0, eq) == name)
            return crumb.substr(eq + 1);
        if (semi == std::string_view::npos)
            break;
        field.remove_prefix(semi + 1);
    }
    return std::nullopt;
}

} // namespace wraith
