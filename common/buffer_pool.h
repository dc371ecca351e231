// Fixed-size buffers recycled per worker, so connections hold memory only while they have
// bytes in flight and a busy connection does not touch malloc.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <vector>

namespace wraith {

class BufferPool {
public:
    explicit BufferPool(size_t buffer_size, size_t keep = 256) : size_(buffer_size), keep_(keep) {}
    ~BufferPool() {
        for (char* b : free_)
            std::free(b);
    }
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    char* get() {
        if (!free_.empty()) {
            char* b = free_.back();
            free_.pop_back();
            return b;
        }
        return static_cast<char*>(std::malloc(size_));
    }
    void put(char* b) {
        if (!b)
            return;
        if (free_.size() < keep_)
            free_.push_back(b);
        else
            std::free(b);
    }
    size_t buffer_size() const { return size_; }
    size_t idle() const { return free_.size(); }
    // Frees idle buffers beyond `keep` (after a burst, so an idle worker stays small).
    void shrink(size_t keep) {
        while (free_.size() > keep) {
            std::free(free_.back());
            free_.pop_back();
        }
    }

private:
    size_t size_;
    size_t keep_; // buffers kept for reuse; beyond that they go back to malloc
    std::vector<char*> free_;
};

} // namespace wraith
