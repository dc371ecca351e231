#include "modules/static/autoindex.h"

#include <algorithm>
#include <cstdio>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/http_date.h"

namespace wraith::static_files {

namespace {

void append_html(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
}

// Percent-encodes everything but unreserved characters (RFC 3986 §2.3), so a name becomes
// one path segment whatever it contains (':' in a first segment, '?', '#', '%', quotes).
void append_uri_segment(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
}

} // namespace

std::string render_autoindex(std::string_view dir_path, std::vector<DirEntry>& entries) {
    std::sort(entries.begin(), entries.end(), [](const DirEntry& a, const DirEntry& b) {
        if (a.is_dir != b.is_dir)
            return a.is_dir;
        return a.name < b.name;
    });
    std::string out;
    out.reserve(512 + entries.size() * 160);
    out += "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>Index of ";
    append_html(out, dir_path);
    out += "</title>\n</head>\n<body>\n<h1>Index of ";
    append_html(out, dir_path);
    out += "</h1>\n<hr>\n<table>\n";
    if (dir_path != "/")
        out += "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n";
    for (const DirEntry& e : entries) {
        out += "<tr><td><a href=\"./";
        append_uri_segment(out, e.name);
        if (e.is_dir)
            out += '/';
        out += "\">";
        append_html(out, e.name);
        if (e.is_dir)
            out += '/';
        out += "</a></td><td>";
        char date[http_date_size];
        if (format_http_date(e.mtime, date) > 0)
            out += date;
        out += "</td><td>";
        if (e.is_dir) {
            out += '-';
        } else {
            char num[24];
            int n = std::snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(e.size));
            out.append(num, static_cast<size_t>(n));
        }
        out += "</td></tr>\n";
    }
    out += "</table>\n<hr>\n</body>\n</html>\n";
    return out;
}

bool read_directory(int dir_fd, bool hide_dotfiles, std::vector<DirEntry>& out) {
    // fdopendir takes ownership of its descriptor; read through a fresh one.
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    DIR* dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return false;
    }
    while (dirent* d = readdir(dir)) {
        std::string_view name = d->d_name;
        if (name == "." || name == "..")
            continue;
        if (hide_dotfiles && name.front() == '.')
            continue;
        struct stat st {};
        // Lists what a request would see: a symlink shows as its target (or is skipped when
        // dangling); whether it may be followed is decided when it is requested.
        if (fstatat(fd, d->d_name, &st, 0) != 0)
            continue;
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue;
        DirEntry e;
        e.name.assign(name);
        e.is_dir = S_ISDIR(st.st_mode);
        e.size = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
        e.mtime = st.st_mtim.tv_sec;
        out.push_back(std::move(e));
    }
    closedir(dir);
    return true;
}

} // namespace wraith::static_files
