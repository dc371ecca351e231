// The HTML directory listing served when a directory has no index file and autoindex is on.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace wraith::static_files {

// One entry of a listing.
struct DirEntry {
    std::string name; // file name as stored (any bytes but '/' and NUL)
    bool is_dir = false;
    uint64_t size = 0; // bytes, for regular files
    time_t mtime = 0;
};

// Renders "Index of PATH" for `dir_path` (the decoded request path, ending in '/'): a parent
// link unless at "/", then directories first and files, each group sorted by name bytes.
// Names are HTML-escaped in text and percent-encoded in links. Sorts `entries` in place.
std::string render_autoindex(std::string_view dir_path, std::vector<DirEntry>& entries);

// Reads the directory open at `dir_fd` (not consumed) into `out`, skipping "." and "..", and
// names starting with '.' when `hide_dotfiles`. False if the directory cannot be read.
bool read_directory(int dir_fd, bool hide_dotfiles, std::vector<DirEntry>& out);

} // namespace wraith::static_files
