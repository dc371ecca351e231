#include "common/arena.h"

#include <cstdlib>

#include "common/buffer_pool.h"

namespace wraith {

Arena::Arena(size_t first_block) : first_size_(first_block) {}

Arena::Arena(BufferPool* pool) : first_size_(pool->buffer_size() - sizeof(Block)), pool_(pool) {}

Arena::~Arena() {
    release();
}

Arena::Block* Arena::new_block(size_t min_size) {
    size_t size = first_size_;
    while (size < min_size)
        size *= 2;
    auto* b = static_cast<Block*>(std::malloc(sizeof(Block) + size));
    if (!b)
        throw std::bad_alloc();
    b->next = nullptr;
    b->size = size;
    b->used = 0;
    return b;
}

void* Arena::alloc_slow(size_t n, size_t align) {
    if (!head_) {
        if (!first_) {
            if (pool_ && n + align <= first_size_) {
                first_ = static_cast<Block*>(static_cast<void*>(pool_->get()));
                first_->next = nullptr;
                first_->size = first_size_;
                first_->used = 0;
            } else {
                first_ = new_block(n + align);
            }
        }
        head_ = first_;
    }
    size_t off = (head_->used + align - 1) & ~(align - 1);
    if (off + n > head_->size) {
        Block* b = new_block(n + align);
        b->next = head_;
        head_ = b;
        off = 0;
    }
    head_->used = off + n;
    return head_->data + off;
}

void Arena::defer(void (*fn)(void*), void* arg) {
    auto* c = static_cast<Cleanup*>(alloc(sizeof(Cleanup), alignof(Cleanup)));
    c->fn = fn;
    c->arg = arg;
    c->next = cleanups_;
    cleanups_ = c;
}

void Arena::reset() {
    // Cleanups may allocate nothing; walk the list before freeing blocks.
    for (Cleanup* c = cleanups_; c; c = c->next)
        c->fn(c->arg);
    cleanups_ = nullptr;
    while (head_ && head_ != first_) {
        Block* next = head_->next;
        std::free(head_);
        head_ = next;
    }
    if (first_)
        first_->used = 0;
    head_ = nullptr;
}

void Arena::release() {
    reset();
    if (first_ && pool_ && first_->size == first_size_)
        pool_->put(reinterpret_cast<char*>(first_));
    else
        std::free(first_);
    first_ = nullptr;
}

} // namespace wraith
