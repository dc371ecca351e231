// Memory of freed objects of one type, kept for the next objects of that type: an exchange or
// a stream per request is too frequent to ask malloc each time, and a worker is one thread, so
// a plain array serves. A class routes its operator new/delete here.
#pragma once

#include <cstddef>
#include <new>

namespace wraith {

template <class T, size_t Kept> class KeptMemory {
public:
    static void* take(size_t size) {
        if (size == sizeof(T) && count_ > 0)
            return kept_[--count_];
        return ::operator new(size);
    }
    static void give(void* p, size_t size) {
        if (size == sizeof(T) && count_ < Kept) {
            kept_[count_++] = p;
            return;
        }
        ::operator delete(p);
    }

private:
    static inline void* kept_[Kept];
    static inline size_t count_ = 0;
};

} // namespace wraith
