#include "modules/geo/database.h"

#include <cerrno>
#include <cstring>

namespace wraith::geo {

bool identify(const std::string& path, FileIdentity& out) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        return false;
    out.dev = st.st_dev;
    out.ino = st.st_ino;
    out.size = st.st_size;
    out.mtime = st.st_mtim;
    return true;
}

std::shared_ptr<const Database> Database::open(const std::string& path, std::string* error) {
    std::shared_ptr<Database> db(new Database);
    db->path_ = path;
    // Identity before the open: a replacement racing with us is then seen as a change later.
    if (!identify(path, db->identity_)) {
        *error = "cannot open \"" + path + "\": " + std::strerror(errno);
        return nullptr;
    }
    int rc = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &db->mmdb_);
    if (rc != MMDB_SUCCESS) {
        if (rc == MMDB_IO_ERROR)
            *error = "cannot open \"" + path + "\": " + std::strerror(errno);
        else
            *error = "\"" + path + "\" is not a valid MaxMind DB file: " + MMDB_strerror(rc);
        db->mmdb_ = MMDB_s{}; // MMDB_open cleans up after itself on failure
        return nullptr;
    }
    return db;
}

Database::~Database() {
    if (mmdb_.file_content)
        MMDB_close(&mmdb_);
}

std::string Database::type() const {
    return mmdb_.metadata.database_type ? mmdb_.metadata.database_type : "";
}

} // namespace wraith::geo
