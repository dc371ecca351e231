// Emptied containers (std::string, std::vector) kept with their capacity for the next user of
// that type. A connection needs its output queue only while a response goes out: handing the
// buffers back when it goes idle keeps an idle connection small (nothing of it is left in the
// heap between other connections' objects), and taking a kept one for the next response costs
// no malloc. A worker is one thread, so a plain array serves, as in KeptMemory.
#pragma once

#include <cstddef>

namespace wraith {

template <class T, size_t Kept, size_t MaxBytes> class Spares {
public:
    // Gives `into` a kept container's capacity when it has none of its own.
    static void take(T& into) {
        if (count_ > 0 && into.capacity() <= empty_capacity())
            into.swap(kept_[--count_]);
    }
    // Empties `from`; keeps its capacity for the next take(), or frees it when enough are kept
    // or it grew large (a big response's buffer should not stay behind).
    static void give(T& from) {
        from.clear();
        if (from.capacity() <= empty_capacity())
            return;
        if (count_ < Kept && from.capacity() * sizeof(*from.data()) <= MaxBytes) {
            kept_[count_++].swap(from); // from gets that slot's empty container
            return;
        }
        T().swap(from);
    }
    static size_t kept() { return count_; }

private:
    // What a default-constructed T holds without allocating (std::string's inline buffer).
    static size_t empty_capacity() {
        static const size_t capacity = T().capacity();
        return capacity;
    }
    static inline T kept_[Kept];
    static inline size_t count_ = 0;
};

} // namespace wraith
