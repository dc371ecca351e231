// The bytes an HTTP/2 connection has serialised and not yet written: frames the session wrote
// and DATA payloads copied in by streams (also the session's partial-frame and header-block
// buffers). One contiguous buffer, so a whole batch of frames goes out in one
// Transport::write; it never zero-fills, so a file range can be pread() straight into it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace wraith::http2 {

class OutputBuffer {
public:
    // `min_capacity`: the first allocation (the connection's output batches frames in 64 KiB;
    // the session's partial-frame and header-block buffers start small).
    explicit OutputBuffer(size_t min_capacity = 64 * 1024) : min_capacity_(min_capacity) {}
    ~OutputBuffer() { std::free(data_); }
    OutputBuffer(const OutputBuffer&) = delete;
    OutputBuffer& operator=(const OutputBuffer&) = delete;

    size_t pending() const { return tail_ - head_; }
    const char* data() const { return data_ + head_; }
    // Room for n more bytes at the end; commit() what was written there.
    char* reserve(size_t n) {
        if (cap_ - tail_ < n)
            make_room(n);
        return data_ + tail_;
    }
    void commit(size_t n) { tail_ += n; }
    void append(const void* p, size_t n) {
        if (n == 0)
            return;
        std::memcpy(reserve(n), p, n);
        commit(n);
    }
    // n bytes from the front were written.
    void consume(size_t n) {
        head_ += std::min(n, pending());
        if (head_ == tail_)
            head_ = tail_ = 0;
    }
    // Gives the memory back (an idle connection keeps none); only when empty.
    void release() {
        if (pending() == 0) {
            std::free(data_);
            data_ = nullptr;
            cap_ = head_ = tail_ = 0;
        }
    }

private:
    void make_room(size_t n) {
        if (head_ > 0) {
            std::memmove(data_, data_ + head_, pending());
            tail_ -= head_;
            head_ = 0;
            if (cap_ - tail_ >= n)
                return;
        }
        size_t cap = std::max({cap_ * 2, tail_ + n, min_capacity_});
        char* p = static_cast<char*>(std::realloc(data_, cap));
        if (!p)
            std::abort(); // as operator new would
        data_ = p;
        cap_ = cap;
    }

    char* data_ = nullptr;
    size_t cap_ = 0;
    size_t min_capacity_;
    size_t head_ = 0; // first unwritten byte
    size_t tail_ = 0; // end of the bytes
};

} // namespace wraith::http2
