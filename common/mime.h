// File extension -> media type, from an nginx-format mime.types file or a built-in table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_reader.h"

namespace wraith {

// An immutable extension -> media type table, shared by every route of a config generation.
class MimeTypes {
public:
    static constexpr std::string_view default_type = "application/octet-stream";

    // Parses nginx syntax: `types { text/html html htm; image/png png; }` with `#` comments
    // and optional quotes. A later mapping of an extension replaces an earlier one, as in nginx.
    // Problems are reported as "NAME:LINE:COL: message"; returns nullptr if there were any.
    static std::shared_ptr<const MimeTypes> parse(std::string_view text, const std::string& name,
                                                  Diagnostics& diag);
    // Reads and parses `path`; a missing or unreadable file is reported as "PATH: message".
    static std::shared_ptr<const MimeTypes> load(const std::string& path, Diagnostics& diag);
    // A small table of the common web types, used when no mime.types file is around.
    static std::shared_ptr<const MimeTypes> builtin();

    // `ext` without the dot, any case ("HTML", "woff2"); default_type when unknown.
    std::string_view lookup(std::string_view ext) const;
    // The type for the extension of the last segment of `path` ("/a/b.tar.gz" -> "gz").
    std::string_view for_path(std::string_view path) const;
    size_t size() const { return entries_.size(); }

private:
    struct Entry {
        std::string ext; // lower-case, no dot
        std::string type;
    };
    std::vector<Entry> entries_; // sorted by ext, unique
    std::vector<uint32_t> slots_; // entries_ index + 1 by ext_hash, 0 empty (seal builds it)
    static uint32_t ext_hash(std::string_view lower_ext);

    void add(std::string_view type, std::string_view ext);
    void seal(); // sorts; for duplicate extensions keeps the last one added
};

} // namespace wraith
