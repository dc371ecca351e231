// NGINX configuration reader for `wraith convert`: a hand-written tokenizer with NGINX's rules
// (words, '…' and "…" strings with \" \' \\ \t \r \n escapes, ${var} in words, # comments,
// ';' '{' '}') and a parser into a tree of directives, with `include` followed (globs sorted,
// paths relative to the main file's directory, as Debian's nginx resolves them). Input is
// untrusted: every limit below is checked, every problem is an error with FILE:LINE, nothing
// recurses without a bound (tests/fuzz/fuzz_nginx_conf.cc).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wraith::convert {

// Where a directive was read.
struct SourceRef {
    std::string file;
    int line = 0;
    std::string text() const { return file + ":" + std::to_string(line); }
};

struct NginxDirective {
    std::string name;
    std::vector<std::string> args; // unescaped
    SourceRef at;
    bool block = false; // followed by { ... }
    std::vector<NginxDirective> children;
    std::string included_from; // the file whose `include` brought it in, "" for the main
};

struct NginxLimits {
    size_t max_file_size = 16 << 20;
    size_t max_token = 64 << 10;
    size_t max_args = 1024;
    size_t max_depth = 64; // nested blocks
    size_t max_include_depth = 16;
    size_t max_files = 1024;
    size_t max_directives = 200000;
};

struct NginxConf {
    std::vector<NginxDirective> top; // the main context
    std::vector<std::string> files;  // every file read, main first
    std::vector<std::string> errors; // "FILE:LINE: message"
    bool ok() const { return errors.empty(); }
};

// Reads `path` and what it includes. `follow_includes = false` keeps `include` as a plain
// directive (the fuzzer: no file-system access).
NginxConf read_nginx_conf(const std::string& path, const NginxLimits& limits = {},
                          bool follow_includes = true);

// Parses `text` as if it were the file `name`; includes resolve against `base_dir`.
NginxConf parse_nginx_conf(std::string_view text, const std::string& name,
                           const std::string& base_dir, const NginxLimits& limits = {},
                           bool follow_includes = true);

} // namespace wraith::convert
