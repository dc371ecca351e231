#include "modules/proxy/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace wraith::proxy {

BodySpool::~BodySpool() {
    if (fd_ >= 0)
        ::close(fd_);
}

bool BodySpool::append(std::string_view data, std::string& error) {
    if (fd_ < 0 && memory_.size() + data.size() <= kMemory) {
        memory_.append(data);
        size_ += data.size();
        return true;
    }
    if (fd_ < 0) {
        fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd_ < 0) {
            error = "cannot make a temporary file in " + dir_ + ": " + std::strerror(errno);
            return false;
        }
    }
    // A local file in the page cache: these writes do not wait on the disk.
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd_, data.data(), data.size(),
                             static_cast<off_t>(size_ - memory_.size()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error = "cannot write a temporary file in " + dir_ + ": " +
                    (n < 0 ? std::strerror(errno) : "short write");
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
        size_ += static_cast<uint64_t>(n);
    }
    return true;
}

BodySpool::Fill BodySpool::fill(BodyReader& body, std::string& error) {
    for (std::string_view data = body.peek(); !data.empty(); data = body.peek()) {
        if (!append(data, error))
            return Fill::failed;
        body.consume(data.size());
    }
    return body.finished() ? Fill::done : Fill::more;
}

bool BodySpool::read(uint64_t offset, size_t max, std::string& out, std::string& error) const {
    if (offset < memory_.size()) {
        size_t n = std::min<uint64_t>(max, memory_.size() - offset);
        out.append(memory_, static_cast<size_t>(offset), n);
        offset += n;
        max -= n;
    }
    if (max == 0 || offset >= size_)
        return true;
    size_t want = static_cast<size_t>(std::min<uint64_t>(max, size_ - offset));
    size_t at = out.size();
    out.resize(at + want);
    ssize_t n;
    do
        n = ::pread(fd_, out.data() + at, want, static_cast<off_t>(offset - memory_.size()));
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        out.resize(at);
        error = "cannot read back the buffered request body: " +
                std::string(n < 0 ? std::strerror(errno) : "short read");
        return false;
    }
    out.resize(at + static_cast<size_t>(n));
    return true;
}

} // namespace wraith::proxy
