// A small open-addressing map from non-zero 64-bit keys to 32-bit values (slots of a slab):
// linear probing, deletion by backward shift, so no tombstones pile up. The limit module keeps
// one entry per live connection in it; it grows by doubling and never allocates otherwise.
#pragma once

#include <cstdint>
#include <vector>

#include "common/hash.h"

namespace wraith::limit {

class FlatMap {
public:
    static constexpr uint32_t kMissing = 0xffffffffu;

    uint32_t find(uint64_t key) const {
        if (slots_.empty())
            return kMissing;
        for (size_t i = home(key);; i = (i + 1) & mask()) {
            if (slots_[i].key == key)
                return slots_[i].value;
            if (slots_[i].key == 0)
                return kMissing;
        }
    }

    void insert(uint64_t key, uint32_t value) {
        if ((size_ + 1) * 4 > slots_.size() * 3)
            grow();
        for (size_t i = home(key);; i = (i + 1) & mask()) {
            if (slots_[i].key == key) {
                slots_[i].value = value;
                return;
            }
            if (slots_[i].key == 0) {
                slots_[i] = {key, value};
                ++size_;
                return;
            }
        }
    }

    void erase(uint64_t key) {
        if (slots_.empty())
            return;
        size_t i = home(key);
        while (slots_[i].key != key) {
            if (slots_[i].key == 0)
                return;
            i = (i + 1) & mask();
        }
        // Backward shift: later entries of the same probe run move up into the hole.
        for (size_t j = (i + 1) & mask();; j = (j + 1) & mask()) {
            if (slots_[j].key == 0)
                break;
            size_t h = home(slots_[j].key);
            // Entry j may fill hole i if its home is not cyclically in (i, j].
            bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (!stays) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i] = {};
        --size_;
    }

    size_t size() const { return size_; }

    template <class F> void for_each(F&& f) const {
        for (const Slot& s : slots_)
            if (s.key)
                f(s.key, s.value);
    }

private:
    struct Slot {
        uint64_t key = 0;
        uint32_t value = 0;
    };
    size_t mask() const { return slots_.size() - 1; }
    size_t home(uint64_t key) const { return static_cast<size_t>(mix64(key)) & mask(); }
    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
        size_ = 0;
        for (const Slot& s : old)
            if (s.key)
                insert(s.key, s.value);
    }

    std::vector<Slot> slots_;
    size_t size_ = 0;
};

} // namespace wraith::limit
