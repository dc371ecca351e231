// A request body read whole before the upstream is contacted (proxy.buffer_request_body), for
// backends that need a Content-Length: the first 64 KiB in memory, the rest in an unlinked
// temporary file (O_TMPFILE: never visible, gone when closed or when the worker dies), so a
// large upload does not grow the worker. Kept until the exchange ends, so a retry can send it
// again to another server.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/http.h"

namespace wraith::proxy {

class BodySpool {
public:
    static constexpr size_t kMemory = 64 * 1024;

    explicit BodySpool(std::string dir) : dir_(std::move(dir)) {}
    ~BodySpool();
    BodySpool(const BodySpool&) = delete;
    BodySpool& operator=(const BodySpool&) = delete;

    // False with `error` set when the temporary file cannot be made or written.
    bool append(std::string_view data, std::string& error);
    uint64_t size() const { return size_; }
    // Takes what the client's body has delivered: `more` (not finished yet), `done` (all of it
    // is here), or `failed` (`error` says why).
    enum class Fill { more, done, failed };
    Fill fill(BodyReader& body, std::string& error);
    // Appends up to `max` bytes from `offset` to `out`.
    bool read(uint64_t offset, size_t max, std::string& out, std::string& error) const;

private:
    std::string dir_;
    std::string memory_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

} // namespace wraith::proxy
