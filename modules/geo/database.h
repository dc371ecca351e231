// One open .mmdb file and what identifies its version on disk, so a worker can tell when the
// file was replaced (modules/geo/geo.cc).
#pragma once

#include <sys/stat.h>

#include <memory>
#include <string>

#include <maxminddb.h>

namespace wraith::geo {

// The identity of a file's content as stat(2) sees it: a replacement (rename over it, or a copy
// into it) changes at least one of these.
struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const FileIdentity& o) const {
        return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
               mtime.tv_nsec == o.mtime.tv_nsec;
    }
};

// False when `path` cannot be stat'ed (errno tells why).
bool identify(const std::string& path, FileIdentity& out);

class Database {
public:
    // Opens and checks `path`; nullptr with the reason in *error ("cannot open ...: No such
    // file", "... is not a valid MaxMind DB: ...").
    static std::shared_ptr<const Database> open(const std::string& path, std::string* error);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    const MMDB_s* mmdb() const { return &mmdb_; }
    const std::string& path() const { return path_; }
    const FileIdentity& identity() const { return identity_; }
    // The database type from its metadata ("GeoLite2-City", "GeoLite2-ASN" ...).
    std::string type() const;

private:
    Database() = default;
    MMDB_s mmdb_{};
    std::string path_;
    FileIdentity identity_;
};

} // namespace wraith::geo
