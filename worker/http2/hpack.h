// HPACK (RFC 7541) for the HTTP/2 server: a decoder for request header blocks and an encoder
// for response header blocks.
//
// The decoder keeps the dynamic table compactly, because an idle connection holds nothing else
// of its own: the entries' bytes (name then value, no padding) in one buffer sized to what the
// client actually inserted (it grows up to SETTINGS_HEADER_TABLE_SIZE, never preallocated), and
// an 8-byte descriptor per entry. Huffman strings are decoded with a nibble-driven state machine
// (hpack_huffman.cc) into a per-thread scratch, so decoding allocates nothing per field.
//
// The encoder uses no dynamic table (as NGINX): every field is a static-table reference or a
// literal without indexing, Huffman-coded when that is shorter. It opens the first block with a
// size update to 0 so the client's decoder keeps no table for us either (docs/decisions.md,
// "HTTP/2": the choice and its measurement).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wraith::http2 {

// Receives the fields of one header block, in order.
class HpackSink {
public:
    virtual ~HpackSink() = default;
    virtual void field(std::string_view name, std::string_view value) = 0;
    // A name or value longer than the decoder's max_string: skipped (not decoded), the block
    // goes on; the receiver answers 431 or resets.
    virtual void oversized() = 0;
};

class HpackDecoder {
public:
    // `max_table`: the SETTINGS_HEADER_TABLE_SIZE we announced (RFC 7541 §4.2).
    explicit HpackDecoder(uint32_t max_table = 4096) : limit_(max_table), max_size_(max_table) {}
    ~HpackDecoder();
    HpackDecoder(const HpackDecoder&) = delete;
    HpackDecoder& operator=(const HpackDecoder&) = delete;

    // Decodes one complete header block. False: a decoding error (RFC 9113 §4.3:
    // COMPRESSION_ERROR for the connection); the table state is then undefined.
    bool decode(const uint8_t* data, size_t len, HpackSink& sink);
    // Longest name or value decoded (at least the table limit, so a skipped string can never
    // be one the table would keep).
    void set_max_string(size_t n) { max_string_ = n > limit_ ? n : limit_ + 1; }

    // RFC 7541 §4.1 size of the table (entries' bytes + 32 each), and its entry count.
    uint32_t table_size() const { return size_; }
    uint32_t entries() const { return count_; }
    // Heap bytes held (buffers' capacities), for tests and the idle-memory budget.
    size_t memory() const;
    // Shrinks the buffers to the live entries (an idle connection keeps no slack).
    void compact();

    // Decoded Huffman string (RFC 7541 §5.2) into `out` (room for len * 8 / 5 + 1 bytes): its
    // length, or -1 for invalid code (EOS, padding longer than 7 bits or not all ones).
    static long huffman_decode(const uint8_t* in, size_t len, char* out);

private:
    // The entry ring re-made with `cap` (a power of two, at least count_) slots, oldest
    // first; false when there is no memory for it (the ring is unchanged).
    bool move_entries(uint32_t cap);
    // One dynamic table entry: where its bytes start (a running position over every byte
    // ever inserted, so eviction moves no descriptor) and its lengths (each below the table
    // size limit, which is at most 64 KiB here).
    struct Entry {
        uint32_t pos;
        uint16_t name_len;
        uint16_t value_len;
    };

    bool lookup(uint32_t index, std::string_view& name, std::string_view& value) const;
    void insert(std::string_view name, std::string_view value);
    void evict_oldest();
    void set_max_size(uint32_t size);
    const Entry& entry(uint32_t k) const { // k = 0: the newest
        return entries_[(head_ + count_ - 1 - k) & (entry_cap_ - 1)];
    }

    uint32_t limit_;    // SETTINGS_HEADER_TABLE_SIZE we announced
    uint32_t max_size_; // the table size the encoder last chose (≤ limit_)
    uint32_t size_ = 0; // RFC 7541 §4.1 size
    size_t max_string_ = 64 * 1024;
    char* bytes_ = nullptr; // entries' bytes, oldest first, at [begin_, end_)
    uint32_t bytes_cap_ = 0;
    uint32_t begin_ = 0;
    uint32_t end_ = 0;
    uint32_t base_pos_ = 0;    // running position of bytes_[begin_]
    Entry* entries_ = nullptr; // ring of descriptors, oldest at head_
    uint32_t entry_cap_ = 0;   // a power of two
    uint32_t head_ = 0;
    uint32_t count_ = 0;
};

// Response header blocks with no dynamic table. Callers reserve `bound()` bytes and write
// with the functions below; each returns the end of what it wrote.
class HpackEncoder {
public:
    // Most bytes one field can take.
    static size_t bound(std::string_view name, std::string_view value) {
        return name.size() + value.size() + 16;
    }
    // RFC 7541 §6.3 dynamic table size update to 0 (the first block of a connection).
    static uint8_t* table_size_zero(uint8_t* out);
    static uint8_t* status(uint8_t* out, int status);
    // `name` may have capitals: HTTP/2 sends lowercase (RFC 9113 §8.2), the encoder folds.
    static uint8_t* field(uint8_t* out, std::string_view name, std::string_view value);

    // Huffman (RFC 7541 §5.2, Appendix B): the coded length of `s` (optionally folding
    // capitals), and the coding itself; `out` has room for huffman_length().
    static size_t huffman_length(std::string_view s, bool lower = false);
    static uint8_t* huffman_encode(uint8_t* out, std::string_view s, bool lower = false);
    // RFC 7541 §5.1 integer with an n-bit prefix; `first` holds the bits above the prefix.
    static uint8_t* integer(uint8_t* out, uint64_t value, int prefix_bits, uint8_t first);
};

// RFC 7541 Appendix A: the static table, 1-based (entry 0 is empty).
struct StaticEntry {
    std::string_view name;
    std::string_view value;
};
inline constexpr uint32_t kStaticTableSize = 61;
extern const StaticEntry kStaticTable[kStaticTableSize + 1];

} // namespace wraith::http2
